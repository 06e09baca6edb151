"""The training progress bar in the unit a run is planned in: optimizer steps out of `max_steps`."""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar


class StepProgressBar(TQDMProgressBar):
    """Lightning's bar counts the batches of an epoch, and a step-based run (`max_steps`, no epoch
    limit) has epochs of whatever its dataset's length makes them. This one counts optimizer steps
    across epochs, from the step a resumed run starts at, out of `max_steps`; a run without a step
    limit keeps Lightning's bar."""

    def on_train_epoch_start(self, trainer: pl.Trainer, *args) -> None:
        if trainer.max_steps <= 0:
            super().on_train_epoch_start(trainer, *args)
            return
        bar = self.train_progress_bar
        if bar.total != trainer.max_steps:  # the first epoch of this process: later ones go on counting
            bar.reset(total=trainer.max_steps)
            bar.n = trainer.global_step
            bar.set_description("steps")
            bar.refresh()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int
                           ) -> None:
        if trainer.max_steps <= 0:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
            return
        bar = self.train_progress_bar
        if self._should_update(trainer.global_step, bar.total):
            bar.n = trainer.global_step
            bar.set_postfix(self.get_metrics(trainer, pl_module))
            bar.refresh()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.max_steps <= 0:
            super().on_train_epoch_end(trainer, pl_module)
        # otherwise the bar runs on into the next epoch: it closes when training ends
