"""Structured compression on whole channels: rank them, mask them, and rebuild the model without them.

A channel is a unit of a model's channel group (`model.channel_groups()`, see models/channels.py):
a conv output channel, a GRU hidden unit (its rows in all three gates of both weight matrices and
biases), a linear output. Pruning a channel zeroes its producers and its readers; shrinking drops
the channels whose producers are all zero and rebuilds the model with the smaller sizes, which
leaves every output unchanged.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from hydra.utils import instantiate
from torch import nn

from speechcompress.config import ConfigError
from speechcompress.models.channels import ChannelGroup


def channel_groups(model: nn.Module) -> list[ChannelGroup]:
    if not hasattr(model, "channel_groups"):
        raise ConfigError(f"{type(model).__name__} does not describe its channels (channel_groups), so it cannot be "
                          f"pruned or shrunk by channel: use compression.structure=unstructured")
    return model.channel_groups()


def _channel_squares(group: ChannelGroup, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """[group.size] sum of squares of each channel's producer weights and biases (differentiable)."""
    squares = 0.0
    for s in group.producers:
        param = params[s.param]
        rows = param.index_select(s.dim, s.indices(torch.arange(group.size), group.size).to(param.device))
        squares = squares + rows.movedim(s.dim, 0).reshape(s.copies, group.size, -1).square().sum(dim=(0, 2))
    return squares


def channel_norms(group: ChannelGroup, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """[group.size] L2 norm of each channel's producer weights and biases (differentiable; the
    epsilon keeps the root smooth at zero)."""
    return torch.sqrt(_channel_squares(group, params) + 1e-12)


def channel_masks(model: nn.Module, keep: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Boolean masks of every parameter a group touches: False on the producers and readers of the
    channels not in `keep` (group name → bool [size])."""
    params = dict(model.named_parameters())
    masks: dict[str, torch.Tensor] = {}
    for group in channel_groups(model):
        if group.name not in keep:
            continue
        dropped = torch.nonzero(~keep[group.name].cpu()).flatten()
        for s in group.slices():
            mask = masks.setdefault(s.param, torch.ones_like(params[s.param], dtype=torch.bool, device="cpu"))
            mask.index_fill_(s.dim, s.indices(dropped, group.size), False)
    return masks


@torch.no_grad()
def live_channels(model: nn.Module) -> dict[str, torch.Tensor]:
    """Per group, a bool [size]: True where any producer weight or bias of the channel is non-zero
    (at least one channel stays, so that every layer can still be built)."""
    params = dict(model.named_parameters())
    live = {}
    for group in channel_groups(model):
        alive = (_channel_squares(group, params) > 0).cpu()
        if not alive.any():
            alive[0] = True
        live[group.name] = alive
    return live


def shrink_model(model: nn.Module, config: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """A copy of `model` (built from its Hydra `config`) without the channels whose producers are all
    zero, and the config that builds the smaller model (`channels` holds every group's new size)."""
    groups, live = channel_groups(model), live_channels(model)
    state = {name: value.detach().clone() for name, value in model.state_dict().items()}
    dropped: dict[tuple[str, int], set[int]] = {}
    for group in groups:
        dead = torch.nonzero(~live[group.name]).flatten()
        for s in group.slices():
            dropped.setdefault((s.param, s.dim), set()).update(s.indices(dead, group.size).tolist())
    for (name, dim), positions in dropped.items():
        kept = [i for i in range(state[name].shape[dim]) if i not in positions]
        state[name] = state[name].index_select(dim, torch.tensor(kept, dtype=torch.long, device=state[name].device))
    channels = {**(config.get("channels") or {}), **{g.name: int(live[g.name].sum()) for g in groups}}
    smaller_config = {**config, "channels": channels}
    smaller = instantiate(smaller_config)
    smaller.load_state_dict(state)
    return smaller.to(next(model.parameters()).device).train(model.training), smaller_config


@torch.no_grad()
def largest_difference(first: nn.Module, second: nn.Module, seconds: float = 1.0) -> float:
    """Largest absolute difference between any tensor output of two models on the same noise."""
    device = next(first.parameters()).device
    noise = torch.randn(2, int(seconds * first.sample_rate), generator=torch.Generator().manual_seed(0)) * 0.1
    a, b = first.eval()(noise.to(device)), second.eval()(noise.to(device))
    fields = [f.name for f in dataclasses.fields(a)] if dataclasses.is_dataclass(a) else [None]
    pairs = [(getattr(a, f), getattr(b, f)) if f else (a, b) for f in fields]
    return max(float((x - y).abs().max()) for x, y in pairs if torch.is_tensor(x) and x.numel())


def shrink_task(task: Any) -> tuple[Any, float]:
    """A task like `task` whose model is shrunk (see `shrink_model`), and the largest difference of
    their outputs on a probe signal (0 up to float rounding). `task` keeps its model config in
    `hparams.model`; its class is called again with the new one."""
    model, config = shrink_model(task.model, task.hparams["model"])
    smaller = type(task)(**{**task.hparams, "model": config})
    smaller.model.load_state_dict(model.state_dict())
    smaller = smaller.to(task.device)
    return smaller, largest_difference(task.model, smaller.model)
