"""VADTask: trains any frame classifier (`model(noisy [B, T]) -> output with .logits [B, F, classes]`).

The loss is cross-entropy against the 10 ms labels of the clean speech, over each item's own
frames. CMVN statistics are estimated from training items once, before the first step, and kept
in the model's buffers. Validation and test report frame F1 / precision / recall / AUC / DCF, the
false-alarm rate on noise-only items and segment precision / recall after post-processing.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from speechcompress.checkpoints import load_task
from speechcompress.evaluation.vad_metrics import FrameVAD, SegmentVAD
from speechcompress.evaluation.vad_segments import SegmentConfig
from speechcompress.tasks.base import SpeechTask
from speechcompress.tasks.examples import write_vad_examples
from speechcompress.test_splits import TEST, TEST_SPLITS


def frame_mask(model: nn.Module, lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """[B, frames] True where a frame lies inside its item (items are zero-padded to the longest)."""
    valid = torch.tensor([model.frames(int(n)) for n in lengths], device=lengths.device)
    return torch.arange(frames, device=lengths.device)[None, :] < valid[:, None]


class VADTask(SpeechTask):
    headline = ("f1", "frame F1")  # the quality figure summaries put first
    kind = "vad"

    def __init__(
        self,
        model: dict,
        optimizer: dict,
        lr_decay: float = 0.0,
        segments: dict | None = None,
        collar: float = 0.25,
        cmvn_items: int = 256,
        examples: int = 3,
    ) -> None:
        """`model` is a Hydra config kept in the checkpoint. `segments` configures post-processing
        (SegmentConfig; its threshold is also the frame decision threshold); `collar` is the
        seconds around each reference boundary that segment detection scores leave out (half before,
        half after, as pyannote.metrics); `cmvn_items` training items estimate CMVN."""
        super().__init__()
        self.save_hyperparameters()
        self.model: nn.Module = instantiate(model)
        self.sample_rate: int = self.model.sample_rate
        self.segment_config = SegmentConfig(**(segments or {}))
        self.examples: list[dict[str, np.ndarray]] = []
        threshold = self.segment_config.threshold
        self.val_frames = FrameVAD(threshold)
        self.test_metrics: dict[str, tuple[FrameVAD, SegmentVAD]] = {}  # per test split, made when testing starts

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        return self.model(noisy).speech_probability()

    def _aligned(self, batch: dict[str, torch.Tensor], logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        frames = min(logits.shape[1], batch["vad"].shape[1])
        mask = frame_mask(self.model, batch["length"], frames)
        return logits[:, :frames], batch["vad"][:, :frames], mask

    def valid_logits(self, batch: dict[str, torch.Tensor], output) -> torch.Tensor:
        """[N, classes] logits of the frames that lie inside their items (what losses average over)."""
        logits, _, mask = self._aligned(batch, output.logits)
        return logits[mask]

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], output=None) -> torch.Tensor:
        """Frame cross-entropy of `model` on `batch` (its output, if already computed)."""
        output = output if output is not None else model(batch["noisy"])
        logits, labels, mask = self._aligned(batch, output.logits)
        return F.cross_entropy(logits[mask], labels[mask].long())

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        output = self.model(batch["noisy"])
        return self.log_training_loss(batch, output, {"loss": self.loss(self.model, batch, output)})

    # --- CMVN, once per model ----------------------------------------------------------------------
    def on_fit_start(self) -> None:
        cmvn = getattr(self.model, "cmvn", None)
        if cmvn is None or cmvn.fitted:  # restored from a checkpoint, or a model without one
            return
        datamodule = self.trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "peek"):
            raise ValueError("VADTask estimates CMVN from training items: train it with an AudioDataModule")
        items = datamodule.peek("train", self.hparams.cmvn_items)
        features = [self.model.fbank(item["noisy"][None].to(self.device))[0] for item in items]
        cmvn.fit(torch.cat(features))
        # every DDP rank drew different items: all take rank 0's statistics
        for buffer in (cmvn.mean, cmvn.inv_std, cmvn.frames):
            buffer.copy_(self.trainer.strategy.broadcast(buffer.clone(), src=0))

    # --- evaluation ------------------------------------------------------------------------------
    def _probabilities(self, batch: dict[str, torch.Tensor], output) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, labels, valid = self._aligned(batch, output.logits)
        return logits.softmax(-1)[..., 1], labels, valid

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        output = self.model(batch["noisy"])
        self.log_validation_loss(batch, self.loss(self.model, batch, output))
        self.val_frames.update(*self._probabilities(batch, output), batch["index"])

    def on_validation_epoch_end(self) -> None:
        self.log_scores("val", self.val_frames, names=("f1", "auc", "dcf"), prog_bar="f1")

    def on_test_epoch_start(self) -> None:
        self.examples = []
        self.test_metrics = {split: (FrameVAD(self.segment_config.threshold).to(self.device),
                                     SegmentVAD(self.segment_config, self.hparams.collar).to(self.device))
                             for split in self.test_splits()}

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        probabilities, labels, valid = self._probabilities(batch, self.model(batch["noisy"]))
        for metric in self.test_metrics[self.test_splits()[dataloader_idx]]:
            metric.update(probabilities, labels, valid, batch["index"])
        for i in range(len(labels)):
            if dataloader_idx == 0 and len(self.examples) < self.hparams.examples:
                self.examples.append({"noisy": batch["noisy"][i, : batch["length"][i]].float().cpu().numpy(),
                                      "probability": probabilities[i, valid[i]].float().cpu().numpy(),
                                      "labels": labels[i, valid[i]].float().cpu().numpy()})

    def on_test_epoch_end(self) -> None:
        for split, metrics in self.test_metrics.items():
            for metric in metrics:
                self.log_scores(split, metric)

    @torch.no_grad()
    def score(self, model: nn.Module, batches) -> dict[str, float]:
        frames = FrameVAD(self.segment_config.threshold, sync_on_compute=False)
        segments = SegmentVAD(self.segment_config, self.hparams.collar, sync_on_compute=False)
        for batch in batches:
            probabilities, labels, valid = self._probabilities(batch, model(batch["noisy"]))
            frames.update(probabilities, labels, valid, batch["index"])
            segments.update(probabilities, labels, valid, batch["index"])
        return {name: float(value) for name, value in {**frames.compute(), **segments.compute()}.items()}

    # --- reporting ----------------------------------------------------------------------------------
    def deploy_settings(self) -> dict[str, object]:
        return {"segments": dataclasses.asdict(self.segment_config)}

    def summary_lines(self, metrics: dict[str, float]) -> list[str]:
        def get(name: str) -> float:
            return metrics.get(f"test/{name}", math.nan)

        return [
            f"test split      {int(get('items'))} items, {int(get('noise_items'))} of them noise only",
            f"frame F1        {get('f1'):.4f}  (precision {get('precision'):.4f}, recall {get('recall'):.4f}, "
            f"threshold {self.segment_config.threshold})",
            f"ROC-AUC         {get('auc'):.4f}",
            f"DCF             {get('dcf'):.4f}  (0.25 × false alarms {get('false_alarm_rate'):.4f} "
            f"+ 0.75 × misses {get('miss_rate'):.4f})",
            f"noise-only FA   {get('noise_false_alarm'):.4f} of frames called speech",
            f"segments        detection F {get('detection_f'):.3f} (precision {get('detection_precision'):.3f}, "
            f"recall {get('detection_recall'):.3f}), error rate {get('detection_error_rate'):.3f} "
            f"(collar {self.hparams.collar} s); events F {get('event_f'):.3f}",
        ] + [
            f"{title:<16}frame F1 {metrics[f'{split}/f1']:.4f}, ROC-AUC {metrics[f'{split}/auc']:.4f}, "
            f"noise-only FA {metrics[f'{split}/noise_false_alarm']:.4f} over {int(metrics[f'{split}/noise_items'])} items "
            f"({apart})"
            for split, (title, apart) in TEST_SPLITS.items() if split != TEST and f"{split}/f1" in metrics]

    def write_examples(self, folder: Path) -> list[Path]:
        return write_vad_examples(self.examples, self.sample_rate, self.segment_config, folder)


def load_vad(checkpoint: str | Path, device: str = "cpu") -> VADTask:
    """The VADTask (model and post-processing config) of a speechcompress checkpoint, in eval mode."""
    return load_task(checkpoint, device, VADTask)
