"""An exported file opened for inference, with the task settings it carries: what `enhance`, `vad`
and a run's MLflow Model run. Imports neither Hydra nor Lightning, so a served model needs neither."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from speechcompress.evaluation.vad_segments import SegmentConfig
from speechcompress.export.exporter import Exporter
from speechcompress.inference import Windows


@dataclass
class Deployed:
    """An exported file with the settings its task kept."""

    model: nn.Module  # what the file's format loads (`Exporter.load`)
    windows: Windows
    segment_config: SegmentConfig

    @property
    def sample_rate(self) -> int:
        return self.model.sample_rate


def open_deployed(fmt: type[Exporter], path: str | Path, kind: str, threads: int | None = None) -> Deployed:
    """The file at `path`, read by format `fmt`, as a `kind` ("denoiser" or "vad") model; a file of
    the other kind is refused."""
    model = fmt.load(path, threads)
    if model.kind != kind:
        raise ValueError(f"{path} holds a {model.kind} model, but this needs a {kind}: pass a file of the other kind")
    return Deployed(model, Windows(**model.meta.get("windows", {})), SegmentConfig(**model.meta.get("segments", {})))
