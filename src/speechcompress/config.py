"""Config helpers shared by train.py, the CLI and the tests: the project root and resolvers."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

# src/speechcompress/config.py → the repository root (the package is installed in editable mode).
PROJECT_ROOT = Path(os.environ.get("SPEECHCOMPRESS_ROOT", Path(__file__).resolve().parents[2]))
CONFIG_DIR = PROJECT_ROOT / "conf"


def register_resolvers() -> None:
    """`${sc_root:}` anchors paths at the project root, whatever Hydra's working directory is."""
    if not OmegaConf.has_resolver("sc_root"):
        OmegaConf.register_new_resolver("sc_root", lambda: str(PROJECT_ROOT))


def flatten(config: DictConfig | dict, prefix: str = "") -> dict[str, object]:
    """{"model": {"gru_size": 128}} → {"model.gru_size": 128}; lists become their string form."""
    container = OmegaConf.to_container(config, resolve=True) if isinstance(config, DictConfig) else config
    flat: dict[str, object] = {}
    for key, value in container.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


class ConfigError(ValueError):
    """A setting that cannot work; the message names the key and the fix. train.py prints it and exits."""
