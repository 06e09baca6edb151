"""Training speed, logged beside the losses: what a GPU (or a cluster) buys, per run."""

from __future__ import annotations

import time

import pytorch_lightning as pl


class Throughput(pl.Callback):
    """Logs `train/steps_per_second` and `train/audio_seconds_per_second` (seconds of training audio
    per second of wall time) every `log_every_n_steps`, over the batches since the last log: data
    loading, forward, backward and the optimizer step, validation left out. The first window
    (warm-up: allocation, cuDNN's algorithm search, compilation) is not logged."""

    def __init__(self) -> None:
        self._clock: float | None = None
        self._steps = 0
        self._audio = 0.0
        self._warm = False

    def _restart(self) -> None:
        self._clock, self._steps, self._audio = time.perf_counter(), 0, 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restart()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restart()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._steps += 1
        noisy = batch["noisy"]
        self._audio += noisy.numel() * trainer.world_size / pl_module.sample_rate
        if trainer.global_step % trainer.log_every_n_steps or self._clock is None:
            return
        seconds = time.perf_counter() - self._clock
        if self._warm and seconds > 0:
            pl_module.log_dict({"train/steps_per_second": self._steps / seconds,
                                "train/audio_seconds_per_second": self._audio / seconds}, rank_zero_only=True)
        self._warm = True
        self._restart()
