"""The one protocol through which callbacks (distillation, group lasso) add to a task's loss.

A task never knows which compression is on: in `training_step` it asks every callback that has
`loss_terms(task, batch, output)` for named terms and adds them to its own loss.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import pytorch_lightning as pl
import torch


@runtime_checkable
class LossTermProvider(Protocol):
    def loss_terms(self, task: pl.LightningModule, batch: dict[str, torch.Tensor], output: Any) -> dict[str, torch.Tensor]:
        """Named scalar tensors to add to the training loss (already weighted)."""
        ...


def callback_loss_terms(task: pl.LightningModule, batch: dict, output: Any) -> dict[str, torch.Tensor]:
    terms: dict[str, torch.Tensor] = {}
    for callback in task.trainer.callbacks:
        if isinstance(callback, LossTermProvider):
            terms.update(callback.loss_terms(task, batch, output))
    return terms
