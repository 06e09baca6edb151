"""The fourth stage: the tested model written in each export format of the run, and each file
measured as it ships, on the CPU.

For every file: its bytes (`size/bytes_KEY`), its real-time factor in its runtime on one thread
on the same audio as torch's `latency/rtf` (`latency/rtf_KEY`), and either its parity with torch
(`deploy/KEY/max_abs_difference`: a lossless file, whose test scores would be torch's) or, for a
lossy file (INT8, librnnoise's int8 weights), the test split through the file (`deploy/KEY/NAME`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig
from tqdm import tqdm

from speechcompress.evaluation.measure import real_time_factor
from speechcompress.evaluation.speech_quality import scored_in_workers
from speechcompress.export.exporter import ExportContext, Exporter, Written, write_all
from speechcompress.export.registry import load
from speechcompress.tasks.base import SpeechTask


@dataclass
class Deployment:
    files: list[Written] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def shipped(self) -> Written | None:
        """The file that ships: the first one written (export configs list the primary format
        first); None when nothing was exported."""
        return self.files[0] if self.files else None


def deploy(task: SpeechTask, exporters: list[Exporter], folder: Path, settings: DictConfig, evaluate: bool,
           test_batches: Callable[[], Iterable], training_batches: Callable[[], Iterable]) -> Deployment:
    """Writes the files of `exporters` into `folder` and measures each (`settings`: the run's
    `measure` config); `evaluate`: score the lossy ones on `test_batches()`."""
    if not exporters:
        return Deployment()
    files = write_all(task.model, exporters, folder, ExportContext(task.deploy_settings(), training_batches))
    metrics: dict[str, float] = {}
    for file in files:
        metrics |= measure_file(task, file, settings, test_batches if evaluate and file.lossy else None)
    return Deployment(files, metrics)


def measure_file(task: SpeechTask, file: Written, settings: DictConfig,
                 test_batches: Callable[[], Iterable] | None) -> dict[str, float]:
    """One file's figures (see the module's docstring)."""
    metrics = {f"size/bytes_{file.key}": float(file.path.stat().st_size),
               **{f"deploy/{file.key}/{name}": value for name, value in file.figures.items()}}
    if not file.timed:
        return metrics
    deployed = load(file.path, threads=1)
    rtf = real_time_factor(deployed, task.sample_rate, settings.latency_seconds, settings.latency_repeats)
    metrics[f"latency/rtf_{file.key}"] = rtf["latency/rtf"]
    if test_batches is not None:
        batches = tqdm(test_batches(), desc=f"test split through {file.path.name}", unit="batch", leave=False)
        with scored_in_workers():
            scores = task.score(deployed, batches)
        metrics |= {f"deploy/{file.key}/{name}": value for name, value in scores.items()}
    return metrics
