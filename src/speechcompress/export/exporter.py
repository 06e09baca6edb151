"""What every export format is: one `Exporter` class, chosen by the `export` config group.

A run (and `speechcompress export`) calls, for each exporter its config lists, `applies(model)`
(is this a format the model ships as: `model.formats`, a plain fact on the model), `check(model)`
before training (refuse what could not be written), then `write(model, folder, context)` after
testing. `speechcompress enhance | vad | evaluate | benchmark` open a file with the `load` of the
first format that `reads` it (`export.registry`). A new format is one class and one config file:
nothing else names it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn


@dataclass(frozen=True)
class Written:
    """One shipped file, and how the end of a run measures it."""

    key: str  # its figures: size/bytes_KEY, latency/rtf_KEY, deploy/KEY/*
    path: Path
    title: str  # its row in the run's summary, e.g. "ONNX dynamic-int8"
    lossy: bool  # scored on the test split; a lossless file's parity with torch stands for its scores
    timed: bool = True  # its real-time factor on one CPU thread is measured (fp16 files are for GPUs)
    figures: dict[str, float] = field(default_factory=dict)  # logged as deploy/KEY/NAME (e.g. max_abs_difference)
    fmt: type[Exporter] | None = None  # the format that wrote it (set by `write_all`), whose `load` reads it


@dataclass
class ExportContext:
    """What an exporter may need besides the model: the task's inference settings (stored in the
    file for `enhance` / `vad`), and the run's training batches (to calibrate static INT8 with)."""

    settings: dict[str, object] = field(default_factory=dict)
    training_batches: Callable[[], Iterable[dict[str, torch.Tensor]]] | None = None
    written: dict[str, Written] = field(default_factory=dict)  # what earlier exporters of this export wrote


class Exporter:
    """One format. Subclasses set `needs` (the entry of `model.formats` it writes), `suffix` (the
    files it writes and reads), `keys` (the figures it may report) and `runtime` (what a run's MLflow
    Model over its file requires), and define `write` and `load`."""

    needs: str = ""
    suffix: str = ""
    keys: tuple[str, ...] = ()
    runtime: tuple[str, ...] = ()  # pip packages running its files needs beyond onnx and ONNX Runtime

    def applies(self, model: nn.Module) -> bool:
        """Whether this run's model ships in this format (else the exporter is skipped)."""
        return self.needs in getattr(model, "formats", ())

    def check(self, model: nn.Module) -> None:
        """Raises ValueError (naming the key and the fix) for a model this format could not be
        written for, before any training; by default everything `applies` to is fine."""

    def write(self, model: nn.Module, folder: Path, context: ExportContext) -> list[Written]:
        raise NotImplementedError

    @classmethod
    def reads(cls, path: str | Path) -> bool:
        return Path(path).suffix.lower() == cls.suffix

    @classmethod
    def load(cls, path: str | Path, threads: int | None = None) -> nn.Module:
        """The file as a model the project runs like a torch one: `.kind` ("denoiser" / "vad"),
        `.sample_rate`, `.meta` (the task's settings), and the forward of that kind."""
        raise NotImplementedError


def write_all(model: nn.Module, exporters: list[Exporter], folder: str | Path, context: ExportContext) -> list[Written]:
    """Each exporter's files, in order, into `folder` (a later one may start from an earlier one's)."""
    files: list[Written] = []
    for exporter in exporters:
        for written in exporter.write(model, Path(folder), context):
            written = dataclasses.replace(written, fmt=type(exporter))
            context.written[written.key] = written
            files.append(written)
    return files
