"""The export formats a config names, and the one that opens a given file.

Every file of the `export` config group (conf/export/NAME.yaml, and the same folder on the config
path, `SPEECHCOMPRESS_CONFIG_PATH`) lists exporters under `formats:` by `_target_`. A run and
`speechcompress export --format NAME` instantiate one group's; `load(path)` asks the classes of
all of them which `reads` the file, so a format added in one class and one config file is also
what `enhance`, `vad`, `evaluate` and `benchmark` open its files with.
"""

from __future__ import annotations

from pathlib import Path

from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from speechcompress.config import config_dirs
from speechcompress.export.deployed import Deployed, open_deployed
from speechcompress.export.exporter import Exporter


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


def exporters_for(export: DictConfig, model: nn.Module) -> list[Exporter]:
    """The exporters of `export` that apply to `model`, each of which has checked that it can write
    it. A ValueError says what does not fit: an exporter's setting, a config whose formats all pass
    the model by (it would ship nothing; a config listing no formats ships nothing by design), or
    the model's own settings."""
    try:
        listed = exporters(export)
    except Exception as error:  # Hydra wraps the exporter's own ValueError, which names the key
        raise ValueError(str(error.__cause__ or error)) from None
    chosen = [exporter for exporter in listed if exporter.applies(model)]
    if listed and not chosen:
        raise ValueError(f"none of this export's formats ({', '.join(export.formats)}) ships a {model.family} "
                         f"model, which ships as {', '.join(model.formats)}: pick the export config that lists "
                         f"it (conf/export/: `export=NAME` for a run, `--format NAME` for `speechcompress export`)")
    for exporter in chosen:
        try:
            exporter.check(model)
        except ValueError as error:
            raise ValueError(f"model.*: {error}") from None
    return chosen


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


def required_reader(path: str | Path) -> type[Exporter]:
    """The format that opens `path`; a file no format reads is refused, naming the formats."""
    found = reader(path)
    if found is None:
        raise ValueError(f"{path} is not a file any export format reads (conf/export/: "
                         f"{', '.join(export_configs())}): pass a .ckpt or an exported file")
    return found


def load(path: str | Path, threads: int | None = None) -> nn.Module:
    """The exported file at `path` as a model (see `Exporter.load`)."""
    return required_reader(path).load(path, threads)


def load_deployed(path: str | Path, kind: str, threads: int | None = None) -> Deployed:
    """The file at `path` as a `kind` ("denoiser" or "vad") model, read by the format that reads it."""
    return open_deployed(required_reader(path), path, kind, threads)
