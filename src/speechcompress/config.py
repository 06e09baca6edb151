"""Config helpers shared by train.py, the CLI and the tests: the project root and resolvers."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

# src/speechcompress/config.py → the repository root (the package is installed in editable mode).
PROJECT_ROOT = Path(os.environ.get("SPEECHCOMPRESS_ROOT", Path(__file__).resolve().parents[2]))
CONFIG_DIR = PROJECT_ROOT / "conf"
# More config folders, searched after conf/ (os.pathsep-separated): recipes, models or export formats
# of your own, outside the repository, for train.py and the CLI alike.
CONFIG_PATH_VARIABLE = "SPEECHCOMPRESS_CONFIG_PATH"


def config_dirs() -> list[Path]:
    """conf/, then the folders of $SPEECHCOMPRESS_CONFIG_PATH."""
    extra = os.environ.get(CONFIG_PATH_VARIABLE, "")
    return [CONFIG_DIR, *(Path(folder) for folder in extra.split(os.pathsep) if folder)]


def _search_path() -> list[str]:
    """Hydra's `hydra.searchpath` for the extra config folders (conf/train.yaml reads it)."""
    return [f"file://{folder.resolve()}" for folder in config_dirs()[1:]]


def compose_config(overrides: list[str]) -> DictConfig:
    """The training config (conf/train.yaml) with Hydra `overrides`, composed outside a Hydra run
    (its `${sc_root:}` paths resolve: the resolvers are registered)."""
    from hydra import compose, initialize_config_dir

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def tracking_uri(configured: str | None = None, root: Path = PROJECT_ROOT) -> str:
    """`configured` (logger.tracking_uri), else $MLFLOW_TRACKING_URI, else SQLite under experiments/."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root / 'experiments' / 'mlflow.db'}"


def run_folder(run_name: str | None, time_format: str = "%Y-%m-%d_%H-%M-%S") -> str:
    """The name of a run's folder: `run_name` when given; under SLURM the job's id (an array task's
    `<job>_<task>`), which a requeued job keeps; else the start time. The first two are stable, so
    a restarted run finds its own folder and `resume=auto` continues it."""
    if run_name:
        return str(run_name)
    if os.environ.get("SLURM_ARRAY_JOB_ID") and os.environ.get("SLURM_ARRAY_TASK_ID"):
        return f"slurm-{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    if os.environ.get("SLURM_JOB_ID"):
        return f"slurm-{os.environ['SLURM_JOB_ID']}"
    return datetime.now().strftime(time_format)


def register_resolvers() -> None:
    """`${sc_root:}` anchors paths at the project root, whatever Hydra's working directory is;
    `${sc_run_folder:${run_name}}` names a run's folder (`run_folder`), resolved once per run;
    `${sc_search_path:}` is Hydra's search path for $SPEECHCOMPRESS_CONFIG_PATH."""
    if not OmegaConf.has_resolver("sc_root"):
        OmegaConf.register_new_resolver("sc_root", lambda: str(PROJECT_ROOT))
    if not OmegaConf.has_resolver("sc_run_folder"):
        OmegaConf.register_new_resolver("sc_run_folder", run_folder, use_cache=True)
    if not OmegaConf.has_resolver("sc_search_path"):
        OmegaConf.register_new_resolver("sc_search_path", _search_path)


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


def instantiate_checked(node, **kwargs):
    """Hydra's `instantiate`; a ConfigError the object itself raised (its message names the key
    and the fix) is passed on as it is, not wrapped."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, ConfigError):
            raise error.__cause__ from None
        raise
