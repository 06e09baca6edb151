"""DenoiseTask: trains any denoiser (`model(noisy [B, T]) -> output with .enhanced [B, T]`).

Loss, optimizer and schedule come from config. Validation scores PESQ / STOI / SI-SDR on the
first `val_quality_items` items of the val split; test scores the whole test split, for the
enhanced output and the noisy input alike, and keeps a few examples for the run's artifacts.
Test items go through `inference.enhance_batch` with the task's `inference` windows, as
`speechcompress enhance` and `evaluate` run files: an item longer than a window is processed in
cross-faded windows there too.
Scores are `SpeechQuality` metrics: the same figures on one process or many.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from torch import nn

from speechcompress.checkpoints import load_task
from speechcompress.config import ConfigError
from speechcompress.evaluation.speech_quality import MEASURES, SpeechQuality
from speechcompress.inference import Windows, enhance_batch
from speechcompress.tasks.base import SpeechTask
from speechcompress.tasks.examples import write_examples
from speechcompress.test_splits import TEST, TEST_SPLITS


class DenoiseTask(SpeechTask):
    headline = ("pesq", "PESQ-wb")  # the quality figure summaries put first
    kind = "denoiser"

    def __init__(
        self,
        model: dict,
        loss: dict,
        optimizer: dict,
        lr_decay: float = 5e-5,
        val_quality_items: int = 16,
        examples: int = 3,
        inference: dict | None = None,
    ) -> None:
        """`model` and `loss` are Hydra configs (`_target_` + arguments) kept in the checkpoint,
        so a checkpoint alone rebuilds the model. `optimizer` holds AdamW's arguments; the learning
        rate follows xiph's 1 / (1 + lr_decay · step). `inference`: the `inference.Windows` that
        long audio is cut into (kept in the checkpoint, so `enhance` runs files the same way)."""
        super().__init__()
        self.save_hyperparameters()
        self.model: nn.Module = instantiate(model)
        self.loss_fn = instantiate(loss)
        self.windows = Windows(**(inference or {}))
        try:  # refuses impossible windows before anything runs
            self.windows.samples(self.model.sample_rate)
        except ValueError as error:
            raise ConfigError(f"task.inference: {error}") from None
        self.sample_rate: int = self.model.sample_rate
        self.examples: list[dict[str, np.ndarray]] = []
        self.val_quality = SpeechQuality(self.sample_rate, with_noisy=False)
        self.test_quality: dict[str, SpeechQuality] = {}  # per test split, made when testing starts

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        return self.model(noisy).enhanced

    def infer(self, noisy: torch.Tensor) -> torch.Tensor:
        """Enhanced [B, T] of noisy [B, T], as files are enhanced: in the task's windows."""
        return enhance_batch(self.model, noisy, self.windows)

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], output=None) -> torch.Tensor:
        output = output if output is not None else model(batch["noisy"])
        return self.loss_fn(model, output, batch)["loss"]

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        # what the loader's workers computed of the model's front-end (`training_inputs`), if anything
        computed = {name: batch[name] for name in getattr(self.model, "training_input_names", ()) if name in batch}
        output = self.model(batch["noisy"], **computed)
        return self.log_training_loss(batch, output, self.loss_fn(self.model, output, batch))

    # --- evaluation ----------------------------------------------------------------------------
    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        output = self.model(batch["noisy"])
        self.log_validation_loss(batch, self.loss(self.model, batch, output))
        chosen = batch["index"] < self.hparams.val_quality_items  # the same items whatever the number of processes
        if chosen.any():
            self.val_quality.update(batch["clean"][chosen], output.enhanced[chosen], batch["length"][chosen],
                                    batch["index"][chosen])

    def on_validation_epoch_end(self) -> None:
        self.log_scores("val", self.val_quality, names=MEASURES, prog_bar="pesq")

    def on_test_epoch_start(self) -> None:
        self.examples = []
        self.test_quality = {split: SpeechQuality(self.sample_rate, with_noisy=True).to(self.device)
                             for split in self.test_splits()}

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        enhanced = self.infer(batch["noisy"])
        split = self.test_splits()[dataloader_idx]
        self.test_quality[split].update(batch["clean"], enhanced, batch["length"], batch["index"], batch["noisy"])
        for i, length in enumerate(batch["length"].tolist()):
            if dataloader_idx == 0 and len(self.examples) < self.hparams.examples:
                self.examples.append({name: t[i, :length].float().cpu().numpy() for name, t in
                                      (("noisy", batch["noisy"]), ("enhanced", enhanced), ("clean", batch["clean"]))})

    def on_test_epoch_end(self) -> None:
        for split, quality in self.test_quality.items():
            self.log_scores(split, quality)

    def score(self, model: nn.Module, batches) -> dict[str, float]:
        return score_denoiser(model, batches, self.windows, self.sample_rate)

    # --- reporting ----------------------------------------------------------------------------------
    def deploy_settings(self) -> dict[str, object]:
        return {"windows": dataclasses.asdict(self.windows)}

    def summary_lines(self, metrics: dict[str, float]) -> list[str]:
        lines = []
        for split, (title, apart) in TEST_SPLITS.items():
            if split != TEST and f"{split}/pesq" not in metrics:
                continue
            lines.append(f"{title:<12}{'enhanced':>10}{'noisy':>10}{'gain':>10}{f'   ({apart})' if apart else ''}")
            for name, label in (("pesq", "PESQ-wb"), ("stoi", "STOI"), ("si_sdr", "SI-SDR dB")):
                enhanced, noisy = metrics.get(f"{split}/{name}", math.nan), metrics.get(f"{split}/{name}_noisy", math.nan)
                lines.append(f"{label:<12}{enhanced:>10.3f}{noisy:>10.3f}{enhanced - noisy:>+10.3f}")
        lines.append(f"PESQ errors     {int(metrics.get('test/pesq_errors', 0))} enhanced, "
                     f"{int(metrics.get('test/pesq_errors_noisy', 0))} noisy, of {int(metrics.get('test/items', 0))} items "
                     f"(left out of the PESQ means)")
        return lines

    def write_examples(self, folder: Path) -> list[Path]:
        return write_examples(self.examples, self.sample_rate, folder)


def score_denoiser(model: nn.Module, batches, windows: Windows, sample_rate: int, with_noisy: bool = False
                   ) -> dict[str, float]:
    """PESQ / STOI / SI-SDR of `model` (a task's, or an exported file's) on `batches` of `noisy`,
    `clean`, `length`, `index`, enhanced in `windows` as files are; `with_noisy`: the noisy input's
    figures too (`NAME_noisy`, `si_sdr_i`)."""
    quality = SpeechQuality(sample_rate, with_noisy=with_noisy, sync_on_compute=False)
    for batch in batches:
        enhanced = enhance_batch(model, batch["noisy"], windows)
        quality.update(batch["clean"], enhanced, batch["length"], batch["index"], batch["noisy"] if with_noisy else None)
    return {name: float(value) for name, value in quality.compute().items()}


def load_denoiser(checkpoint: str | Path, device: str = "cpu") -> DenoiseTask:
    """The denoising task of a speechcompress checkpoint (its `model` and inference `windows`), in
    eval mode on `device`."""
    return load_task(checkpoint, device, DenoiseTask)
