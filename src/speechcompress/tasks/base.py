"""What every task shares: AdamW with xiph's decaying learning rate, the training loss with the
callbacks' terms, and a checkpoint that names its task class so `checkpoints.load_task` can rebuild it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torchmetrics import Metric

from speechcompress.checkpoints import TASK_CLASS_KEY
from speechcompress.config import instantiate_checked
from speechcompress.tasks.loss_terms import combine_losses


class SpeechTask(pl.LightningModule):
    """Subclasses save `optimizer` (AdamW arguments) and `lr_decay` among their hyperparameters."""

    sample_rate: int
    headline: tuple[str, str]  # (metric name, label) of the quality figure summaries put first
    kind: str  # "denoiser" or "vad", as exported files say

    def log_training_loss(self, batch: dict[str, torch.Tensor], output: Any, terms: dict[str, torch.Tensor]
                          ) -> torch.Tensor:
        """`terms["loss"]` combined with the callbacks' terms; logs every part under train/."""
        loss, extra = combine_losses(self, batch, output, terms["loss"])
        size = batch["noisy"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"])
        for name, value in {**terms, **extra}.items():
            if name != "loss":
                self.log(f"train/{name}", value, batch_size=size)
        return loss

    def log_validation_loss(self, batch: dict[str, torch.Tensor], loss: torch.Tensor) -> None:
        """`val/loss`, averaged over every process's batches, so that all ranks pick the same best checkpoint."""
        self.log("val/loss", loss, prog_bar=True, batch_size=batch["noisy"].shape[0], sync_dist=True)

    def log_scores(self, stage: str, metric: Metric, names: tuple[str, ...] | None = None,
                   prog_bar: str | None = None) -> None:
        """Logs `stage/NAME` for the metric's figures over the whole split (`names`: only those; NaN
        for a name the metric has no figure for), then resets it."""
        scores = metric.compute()
        metric.reset()
        for name in names or scores:
            # compute() already gathered every process's items: sync_dist averages equal values,
            # which changes nothing but tells Lightning the figure is global
            self.log(f"{stage}/{name}", scores.get(name, math.nan), prog_bar=name == prog_bar, sync_dist=True)

    def test_splits(self) -> tuple[str, ...]:
        """The names of the splits `trainer.test` runs, by dataloader index (`test`, then
        `test_unseen` where the data has one); each split's figures are logged under its name."""
        return getattr(self.trainer.datamodule, "test_splits", ("test",))

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.AdamW(self.model.parameters(), **self.hparams.optimizer)
        decay = self.hparams.lr_decay
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1.0 + decay * step))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[TASK_CLASS_KEY] = f"{type(self).__module__}.{type(self).__qualname__}"

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], output: Any = None) -> torch.Tensor:
        """The task's own loss of `model` on `batch` (from `output`, if already computed)."""
        raise NotImplementedError

    @torch.inference_mode()
    def infer(self, noisy: torch.Tensor) -> torch.Tensor:
        """The model's answer to a noisy waveform [B, T] at deployment, as the CLI computes it
        (what `memory/peak_mb` is measured on): the forward pass, unless a task cuts long audio."""
        return self(noisy)

    def score(self, model: torch.nn.Module, batches) -> dict[str, float]:
        """The test split's figures for `model` in place of the task's own (an exported file run
        through `export.runtime.OnnxModel`, say), computed on this process alone and not logged."""
        raise NotImplementedError

    def deploy_settings(self) -> dict[str, object]:
        """What a runtime needs of the task besides the model, stored in exported files: a
        denoiser's inference windows, a VAD's segment post-processing."""
        raise NotImplementedError

    def summary_lines(self, metrics: dict[str, float]) -> list[str]:
        """The quality part of the end-of-run summary."""
        raise NotImplementedError

    def write_examples(self, folder: Path) -> list[Path]:
        """Files that let a person judge the model by ear or eye; returns them."""
        raise NotImplementedError


def build_task(cfg: DictConfig) -> SpeechTask:
    """The task of a composed training config (`cfg.task`) around its model (`cfg.model`)."""
    model = OmegaConf.to_container(cfg.model, resolve=True)
    return instantiate_checked(cfg.task, model=model, _recursive_=False, _convert_="all")
