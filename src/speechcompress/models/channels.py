"""How a model's hidden channels are wired: which weights compute each channel, which read it.

A model lists its channel groups (`channel_groups()`): a conv's output channels, a GRU's hidden
units, a linear layer's outputs. Each channel is computed by rows of its producers and read by
columns (or per-channel filters) of its readers. The groups are chosen so that a channel whose
producers are all zero outputs zero at every step (tanh, ReLU, identity and GRU units all map 0 to
0), so removing it, with its readers' columns, changes no output. Model outputs (band gains, VAD,
class logits) are never a group. A model accepts `channels={group: size}` to be built with other sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Slice:
    """The channels of a group inside one parameter: along `dim`, starting at `offset`, repeated
    `copies` times back to back (a GRU's three gates)."""

    param: str
    dim: int
    offset: int = 0
    copies: int = 1

    def indices(self, channels: torch.Tensor, size: int) -> torch.Tensor:
        """Positions along `dim` of the given channels of a group of `size` channels."""
        return torch.cat([self.offset + copy * size + channels for copy in range(self.copies)])


@dataclass(frozen=True)
class ChannelGroup:
    name: str  # the key of the model's `channels` argument that sets its size
    size: int
    producers: tuple[Slice, ...]  # compute the channels (weights and biases)
    readers: tuple[Slice, ...]  # read them: the next layers' input columns, per-channel filters

    def slices(self) -> tuple[Slice, ...]:
        return self.producers + self.readers


def gru_producers(name: str) -> tuple[Slice, ...]:
    """The rows of a GRU's hidden units: in all three gates of its input and recurrent weights and biases."""
    return tuple(Slice(f"{name}.{kind}_{part}_l0", 0, copies=3) for kind in ("weight", "bias") for part in ("ih", "hh"))


def linear_producers(name: str, bias: bool = True) -> tuple[Slice, ...]:
    """The output rows of a Linear or Conv1d (and its bias)."""
    return (Slice(f"{name}.weight", 0),) + ((Slice(f"{name}.bias", 0),) if bias else ())


def resized(sizes: dict[str, int], channels: dict[str, int] | None) -> dict[str, int]:
    """`sizes` (group → channels, in the model's order) with the groups named in `channels` changed."""
    unknown = sorted(set(channels or {}) - set(sizes))
    if unknown:
        raise ValueError(f"channels names groups this model does not have: {unknown}; it has {list(sizes)}")
    return {name: int((channels or {}).get(name, size)) for name, size in sizes.items()}
