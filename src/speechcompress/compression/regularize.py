"""Sparse (group-lasso) regularisation: Σ over groups of ‖w_g‖₂, added to the training loss so whole
units or 8×4 blocks shrink towards zero and a pruning step can remove them at little cost."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn

from speechcompress.compression.blocks import DEFAULT_BLOCK, block_energy
from speechcompress.compression.callback import CompressionCallback
from speechcompress.compression.structured import channel_groups, channel_norms
from speechcompress.config import ConfigError
from speechcompress.xiph_format import as_matrix


def block_lasso(weight: torch.Tensor) -> torch.Tensor:
    """Σ over 8×4 blocks of ‖w_block‖₂ (differentiable; the epsilon keeps sqrt smooth at 0)."""
    return torch.sqrt(block_energy(as_matrix(weight), DEFAULT_BLOCK) + 1e-12).sum()


def unit_lasso(model: nn.Module) -> torch.Tensor:
    """Σ over every channel of the model's channel groups of the L2 norm of the weights computing it:
    the units that structured pruning removes whole."""
    params = dict(model.named_parameters())
    return sum(channel_norms(group, params).sum() for group in channel_groups(model))


class GroupLassoCallback(CompressionCallback):
    """Adds `train/group_lasso` = weight · ramp · Σ group norms through the task's loss-term protocol.

    Groups: `units` (channels: conv output channels, GRU units, linear outputs, never the model's
    outputs; pair with structured pruning) or `blocks` (8×4 blocks of every weight matrix; pair
    with block sparsification). The weight ramps linearly from 0 over `warmup_steps`, so the model
    first learns the task.
    """

    def __init__(self, weight: float = 1e-4, warmup_steps: int = 200, groups: str = "units",
                 keys: dict[str, str] | None = None) -> None:
        super().__init__(keys)
        if groups not in ("units", "blocks"):
            raise ConfigError(f"compression.groups must be 'units' or 'blocks', got {groups!r}")
        self.weight, self.warmup_steps, self.groups = weight, warmup_steps, groups

    def penalty(self, model: nn.Module) -> torch.Tensor:
        if self.groups == "units":
            return unit_lasso(model)
        return sum(block_lasso(p) for p in model.parameters() if p.dim() >= 2)

    def check(self, pl_module: pl.LightningModule, total_steps: int) -> None:
        """Refuses, before the run exists, `units` for a model that does not describe its channels."""
        if self.groups == "units":
            channel_groups(pl_module.model)

    def loss_terms(self, task: pl.LightningModule, batch: dict, output) -> dict[str, torch.Tensor]:
        ramp = min(1.0, task.global_step / self.warmup_steps) if self.warmup_steps > 0 else 1.0
        return {"group_lasso": self.weight * ramp * self.penalty(task.model)}
