"""The export formats a config names, and the one that opens a given file.

Every file of the `export` config group (conf/export/NAME.yaml, and the same folder on the config
path, `SPEECHCOMPRESS_CONFIG_PATH`) lists exporters under `formats:` by `_target_`. A run and
`speechcompress export --format NAME` instantiate one group's; `load(path)` asks the classes of
all of them which `reads` the file, so a format added in one class and one config file is also
what `enhance`, `vad`, `evaluate` and `benchmark` open its files with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from speechcompress.config import config_dirs
from speechcompress.evaluation.vad_segments import SegmentConfig
from speechcompress.export.exporter import Exporter
from speechcompress.inference import Windows


def export_configs() -> dict[str, Path]:
    """{NAME: its file} for every config of the `export` group; an earlier folder of the config path wins."""
    found: dict[str, Path] = {}
    for folder in config_dirs():
        for path in sorted((folder / "export").glob("*.yaml")):
            found.setdefault(path.stem, path)
    return found


def exporters(export: DictConfig) -> list[Exporter]:
    """The exporters a composed `export` config lists, in order (an earlier file may feed a later one)."""
    return [instantiate(node) for node in (export.get("formats") or {}).values() if node is not None]


def format_classes() -> list[type[Exporter]]:
    """Every exporter class some `export` config names, once each, in config order."""
    classes: dict[str, type[Exporter]] = {}
    for path in export_configs().values():
        for node in (OmegaConf.load(path).get("formats") or {}).values():
            if node is not None and "_target_" in node:
                classes.setdefault(node["_target_"], get_class(node["_target_"]))
    return list(classes.values())


def reader(path: str | Path) -> type[Exporter] | None:
    """The format that opens `path`, or None for a file no format reads (e.g. a checkpoint)."""
    return next((cls for cls in format_classes() if cls.reads(path)), None)


def load(path: str | Path, threads: int | None = None) -> nn.Module:
    """The exported file at `path` as a model (see `Exporter.load`)."""
    found = reader(path)
    if found is None:
        raise ValueError(f"{path} is not a file any export format reads (conf/export/: "
                         f"{', '.join(export_configs())}): pass a .ckpt or an exported file")
    return found.load(path, threads)


@dataclass
class Deployed:
    """An exported file with the settings its task kept: what `enhance` and `vad` need."""

    model: nn.Module  # what the file's format loads (`Exporter.load`)
    windows: Windows
    segment_config: SegmentConfig

    @property
    def sample_rate(self) -> int:
        return self.model.sample_rate


def load_deployed(path: str | Path, kind: str, threads: int | None = None) -> Deployed:
    """The file at `path` as a `kind` ("denoiser" or "vad") model; a file of the other kind is refused."""
    model = load(path, threads)
    if model.kind != kind:
        raise ValueError(f"{path} holds a {model.kind} model, but this needs a {kind}: pass a file of the other kind")
    return Deployed(model, Windows(**model.meta.get("windows", {})), SegmentConfig(**model.meta.get("segments", {})))
