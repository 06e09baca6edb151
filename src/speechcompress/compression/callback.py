"""What every compression callback offers the run that holds it, beyond Lightning's hooks.

The run's stages ask each callback of `compression.callbacks` (all of them `CompressionCallback`s):
- `check(task, total_steps)` before anything is written (`stages.plan`): a setting the model or
  the run's length cannot honour is a `ConfigError` then, not a failure hours in;
- `final_model_only` after fitting (`stages.fit`): whether the run is judged by its final model
  (a mask or clustering schedule finishes there) instead of its best checkpoint;
- `figures(model)` at the end (`stages.measure`): what it alone can say of the tested model.
Messages name a setting by the key the user typed: `keys` maps each argument to it.
"""

from __future__ import annotations

import pytorch_lightning as pl
from torch import nn


class CompressionCallback(pl.Callback):
    final_model_only = False  # True: an earlier "best" checkpoint would be less compressed than the recipe
    task_loss_weight = 1.0  # what the task's own loss is multiplied by (`tasks.loss_terms`)

    def __init__(self, keys: dict[str, str] | None = None) -> None:
        """`keys`: argument → the command-line key that sets it (`stages.plan` passes them)."""
        self.keys = dict(keys or {})

    def key(self, argument: str) -> str:
        """The key a user types to set `argument`, for messages."""
        return self.keys.get(argument, f"compression.{argument}")

    def check(self, pl_module: pl.LightningModule, total_steps: int) -> None:
        """Refuses, with a `ConfigError`, what this callback cannot do to the model in `total_steps`."""

    def figures(self, model: nn.Module) -> dict[str, float]:
        """Figures of the tested model that the end of the run logs."""
        return {}
