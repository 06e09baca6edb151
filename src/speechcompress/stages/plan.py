"""The first stage of a run: everything built from the config and every refusal, nothing written.

A refused setting (a missing `???`, an unreachable tracking server, a compression schedule longer
than the run, a model no configured export format can ship) is a `ConfigError` raised here, so it
leaves no run folder and no MLflow run behind.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from speechcompress.checkpoints import read_checkpoint
from speechcompress.compression.callback import CompressionCallback
from speechcompress.config import ConfigError, instantiate_checked, run_folder, tracking_uri
from speechcompress.export.exporter import Exporter
from speechcompress.export.registry import exporters_for
from speechcompress.run_layout import RunFolder
from speechcompress.tasks.base import SpeechTask, build_task
from speechcompress.tracking.mlflow import RUN_ID_KEY, check_reachable


@dataclass
class Plan:
    cfg: DictConfig
    folder: RunFolder
    datamodule: pl.LightningDataModule
    task: SpeechTask
    compression: list[CompressionCallback]
    exporters: list[Exporter]  # those of `cfg.export` that apply to the model, in order
    resume_path: Path | None  # the checkpoint a resumed run continues
    resume_run_id: str | None  # its MLflow run


def plan(cfg: DictConfig) -> Plan:
    """Builds the run's parts from `cfg` and checks them against each other; writes nothing."""
    refuse_missing(cfg)
    try:  # before any data is generated or any step trained
        check_reachable(tracking_uri(cfg.logger.tracking_uri))
    except ConnectionError as error:
        raise ConfigError(str(error)) from None
    threads = parallel_job_threads()
    if threads:
        torch.set_num_threads(threads)
    pl.seed_everything(cfg.seed, workers=True)
    folder = RunFolder(output_dir(cfg))
    resume_path, resume_run_id = resume_state(cfg, folder)
    datamodule = instantiate(cfg.data)
    task = build_task(cfg)
    # a model's training front-end (xiph's analysis) runs in the training loader's workers
    datamodule.training_inputs = getattr(task.model, "training_inputs", None)
    if cfg.get("init") and not resume_path:
        start_from(task, cfg.init)
    compression, steps = build_compression(cfg), planned_steps(cfg, datamodule)  # a run without an end is refused
    for callback in compression:  # schedules, patterns, teachers against the model and the run's length
        callback.check(task, steps)
    exporters = build_exporters(cfg.export, task.model)
    if resume_path:
        folder = RunFolder.of_checkpoint(resume_path)
    return Plan(cfg, folder, datamodule, task, compression, exporters, resume_path, resume_run_id)


def output_dir(cfg: DictConfig) -> Path:
    """Hydra's job folder when launched by Hydra; otherwise runs/NAME/RUN_FOLDER under experiments/
    (`run_name`, the SLURM job id, or a fresh time stamp)."""
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    folder = run_folder(cfg.get("run_name"), time_format="%Y-%m-%d_%H-%M-%S-%f")  # runs in one process: µs apart
    return Path(cfg.paths.experiments_dir) / "runs" / str(cfg.name) / folder


def parallel_job_threads() -> int | None:
    """Torch threads for one job of a parallel local sweep (`hydra/launcher=joblib`): the cores
    shared out among the jobs that run at once, so n jobs on n cores do not oversubscribe them.
    None outside such a sweep (torch's default: every core)."""
    if not HydraConfig.initialized():
        return None
    launcher = HydraConfig.get().launcher
    if "joblib" not in str(launcher.get("_target_", "")):
        return None
    cores = os.cpu_count() or 1
    n_jobs = int(launcher.get("n_jobs") or -1)
    parallel = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)  # joblib's meaning of −1, −2, ...
    return max(1, cores // parallel)


def resume_state(cfg: DictConfig, folder: RunFolder) -> tuple[Path | None, str | None]:
    """The checkpoint to continue and its MLflow run id: `resume=auto` takes this run folder's
    checkpoints/last.ckpt when there is one (a requeued job, an interrupted run started again with
    its run_name), a path takes that checkpoint; otherwise (None, None), a fresh run."""
    if not cfg.resume:
        return None, None
    if cfg.resume == "auto":
        path = folder.last_checkpoint
        if not path.is_file():
            return None, None
        print(f"[speechcompress] resume=auto: continuing {path}")
    else:
        path = Path(cfg.resume)
    try:
        checkpoint = read_checkpoint(path)
    except FileNotFoundError:
        raise ConfigError(f"resume={path}: no such checkpoint. Pass the path of a .ckpt file, e.g. "
                          f"experiments/runs/<name>/<time>/checkpoints/last.ckpt, or resume=auto") from None
    except ValueError as error:
        raise ConfigError(f"resume={path}: {error}") from None
    return path, checkpoint.get(RUN_ID_KEY)


def _typed_key(raw: object, fallback: str) -> str:
    """The key a user types to set a callback argument: the one it interpolates (`${compression.x}`), else its own."""
    if isinstance(raw, str) and raw.startswith("${") and raw.endswith("}") and ":" not in raw:
        return raw[2:-1]
    return fallback


def build_compression(cfg: DictConfig) -> list[CompressionCallback]:
    """The compression callbacks of `cfg.compression.callbacks`, each given as `keys` the
    command-line key of each of its arguments, for its messages; a refused setting is a ConfigError."""
    callbacks = []
    for name, node in (cfg.compression.get("callbacks") or {}).items():
        raw = OmegaConf.to_container(node, resolve=False)
        keys = {arg: _typed_key(value, f"compression.callbacks.{name}.{arg}") for arg, value in raw.items()
                if arg != "_target_"}
        if not issubclass(get_class(node._target_), CompressionCallback):
            raise ConfigError(f"compression.callbacks.{name}: {node._target_} is not a "
                              f"speechcompress.compression.callback.CompressionCallback, which the run asks "
                              f"for its checks and figures: derive it from that class")
        callbacks.append(instantiate_checked(node, keys=keys))
    return callbacks


def build_exporters(export: DictConfig, model: torch.nn.Module) -> list[Exporter]:
    """`export.registry.exporters_for`, its refusals as ConfigErrors (`export=none` ships nothing)."""
    try:
        return exporters_for(export, model)
    except ValueError as error:
        raise ConfigError(f"{error}; or export=none") from None


def planned_steps(cfg: DictConfig, datamodule) -> int:
    """The optimizer steps the run will take: trainer.max_steps, or max_epochs × batches per epoch."""
    if cfg.trainer.get("max_steps", -1) >= 0:
        return int(cfg.trainer.max_steps)
    if cfg.trainer.get("max_epochs", -1) <= 0:
        raise ConfigError("set trainer.max_steps (or trainer.max_epochs): the run needs an end")
    batches = len(datamodule.dataset("train")) // datamodule.batch_size
    return int(cfg.trainer.max_epochs) * batches // int(cfg.trainer.get("accumulate_grad_batches") or 1)


def refuse_missing(cfg: DictConfig) -> None:
    """Keys left at `???` (OmegaConf's "must be set") are refused, naming them."""
    # OmegaConf.missing_keys resolves interpolations as it walks, and fails on one that points at a
    # missing key (omegaconf #1118): it reads a copy whose interpolations are escaped, kept as text
    missing = sorted(OmegaConf.missing_keys(OmegaConf.create(OmegaConf.to_yaml(cfg).replace("${", "\\${"))))
    if missing:
        raise ConfigError(f"{', '.join(missing)} must be set for this recipe: add {missing[0]}=... to the command "
                          f"line (the comment beside it in conf/ says what it takes)")


def start_from(task: SpeechTask, checkpoint: str) -> None:
    """`+init=CKPT` (`init=` in a recipe that sets `init: ???`): the run's model starts from the
    weights of CKPT's model (e.g. `import-rnnoise`'s), which must have the same layers and sizes."""
    try:
        saved = read_checkpoint(checkpoint)["state_dict"]
    except (FileNotFoundError, ValueError) as error:
        raise ConfigError(f"init={checkpoint}: {error}") from None
    weights = {name.removeprefix("model."): value for name, value in saved.items() if name.startswith("model.")}
    try:
        task.model.load_state_dict(weights)
    except RuntimeError as error:
        raise ConfigError(f"init={checkpoint}: its model does not fit this run's model.*: "
                          f"{str(error).splitlines()[0]} ...") from None
