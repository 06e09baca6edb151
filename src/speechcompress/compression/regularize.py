"""Sparse (group-lasso) regularisation: Σ over groups of ‖w_g‖₂, added to the training loss so whole
rows or 8×4 blocks shrink towards zero and a pruning step can remove them at little cost."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn

from speechcompress.compression.blocks import DEFAULT_BLOCK, as_matrix, block_energy
from speechcompress.config import ConfigError


def group_lasso(weight: torch.Tensor, groups: str = "rows") -> torch.Tensor:
    """Σ_g ‖w_g‖₂ over output rows or 8×4 blocks (differentiable; the epsilon keeps sqrt smooth at 0)."""
    matrix = as_matrix(weight)
    if groups == "rows":
        return torch.sqrt(matrix.square().sum(dim=1) + 1e-12).sum()
    return torch.sqrt(block_energy(matrix, DEFAULT_BLOCK) + 1e-12).sum()


class GroupLassoCallback(pl.Callback):
    """Adds `train/group_lasso` = weight · ramp · Σ group norms through the task's loss-term protocol.

    The weight ramps linearly from 0 over `warmup_steps`, so the model first learns the task.
    """

    def __init__(self, weight: float = 1e-4, warmup_steps: int = 200, groups: str = "rows") -> None:
        if groups not in ("rows", "blocks"):
            raise ConfigError(f"compression.groups must be 'rows' or 'blocks', got {groups!r}")
        self.weight, self.warmup_steps, self.groups = weight, warmup_steps, groups

    def penalty(self, model: nn.Module) -> torch.Tensor:
        return sum(group_lasso(p, self.groups) for p in model.parameters() if p.dim() >= 2)

    def loss_terms(self, task: pl.LightningModule, batch: dict, output) -> dict[str, torch.Tensor]:
        ramp = min(1.0, task.global_step / self.warmup_steps) if self.warmup_steps > 0 else 1.0
        return {"group_lasso": self.weight * ramp * self.penalty(task.model)}
