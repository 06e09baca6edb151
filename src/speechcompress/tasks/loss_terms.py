"""The one protocol through which callbacks (distillation, group lasso) add to a task's loss.

A task never knows which compression is on: in `training_step` it asks every callback that has
`loss_terms(task, batch, output)` for named terms and adds them to its own loss, multiplied by
the callback's `task_loss_weight`: 1 for a term that only adds (group lasso), less for one that
replaces part of the task's loss (distillation: (1 − α) · CE + α · KD).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import pytorch_lightning as pl
import torch


@runtime_checkable
class LossTermProvider(Protocol):
    task_loss_weight: float

    def loss_terms(self, task: pl.LightningModule, batch: dict[str, torch.Tensor], output: Any) -> dict[str, torch.Tensor]:
        """Named scalar tensors to add to the training loss (already weighted)."""
        ...


def combine_losses(task: pl.LightningModule, batch: dict, output: Any, task_loss: torch.Tensor
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The training loss: the task's own loss, weighted as the callbacks ask, plus their terms."""
    weight, terms = 1.0, {}
    for callback in task.trainer.callbacks:
        if isinstance(callback, LossTermProvider):
            terms.update(callback.loss_terms(task, batch, output))
            weight *= callback.task_loss_weight
    return weight * task_loss + sum(terms.values()), terms
