"""One run: build everything from the config, fit, test the resulting model, measure, log, summarise.

    Hydra config → DataModule, Task(model), callbacks, MLflow logger → fit → test(best, or final if compressed)
                 → size and latency of that model → MLflow params / metrics / artifacts → summary
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.rank_zero import rank_zero_only
from tqdm import tqdm

from speechcompress.checkpoints import AtomicCheckpointIO, read_checkpoint, save_task
from speechcompress.compression.cluster import ClusterCallback, clustered_size
from speechcompress.compression.size import tensor_sizes, write_size_csv
from speechcompress.compression.structured import shrink_task
from speechcompress.config import ConfigError, run_folder
from speechcompress.evaluation.measure import peak_memory, real_time_factor, size_report
from speechcompress.export.pipeline import (
    QUANTIZE_MODES,
    calibration_inputs,
    export_files,
    task_settings,
)
from speechcompress.export.runtime import deployed_model
from speechcompress.export.xiph_weights import check_library_sizes
from speechcompress.interruption import BestAndLastCheckpoint, SaveOnSignal
from speechcompress.run_layout import RunFolder
from speechcompress.tasks.base import SpeechTask
from speechcompress.tracking.mlflow import (
    RUN_ID_KEY,
    RunIdInCheckpoint,
    build_logger,
    check_reachable,
    log_config,
    tracking_uri,
)


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


def _resume_state(cfg: DictConfig, folder: RunFolder) -> tuple[Path | None, str | None]:
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


def _instantiate(node, **kwargs):
    """Hydra's `instantiate`; a ConfigError the object itself raised (its message names the key
    and the fix) is passed on as it is, not wrapped."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, ConfigError):
            raise error.__cause__ from None
        raise


def build_task(cfg: DictConfig) -> SpeechTask:
    model = OmegaConf.to_container(cfg.model, resolve=True)
    return _instantiate(cfg.task, model=model, _recursive_=False, _convert_="all")


def _typed_key(raw: object, fallback: str) -> str:
    """The key a user types to set a callback argument: the one it interpolates (`${compression.x}`), else its own."""
    if isinstance(raw, str) and raw.startswith("${") and raw.endswith("}") and ":" not in raw:
        return raw[2:-1]
    return fallback


def build_compression(cfg: DictConfig) -> list[pl.Callback]:
    """The compression callbacks of `cfg.compression.callbacks`; a refused setting is a ConfigError.
    Each learns, as `keys`, the command-line key of each of its arguments, for its messages."""
    callbacks = []
    for name, node in (cfg.compression.get("callbacks") or {}).items():
        callback = _instantiate(node)
        raw = OmegaConf.to_container(node, resolve=False)
        callback.keys = {arg: _typed_key(value, f"compression.callbacks.{name}.{arg}") for arg, value in raw.items()}
        callbacks.append(callback)
    return callbacks


def planned_steps(cfg: DictConfig, datamodule) -> int:
    """The optimizer steps the run will take: trainer.max_steps, or max_epochs × batches per epoch."""
    if cfg.trainer.get("max_steps", -1) >= 0:
        return int(cfg.trainer.max_steps)
    if cfg.trainer.get("max_epochs", -1) <= 0:
        raise ConfigError("set trainer.max_steps (or trainer.max_epochs): the run needs an end")
    batches = len(datamodule.dataset("train")) // datamodule.batch_size
    return int(cfg.trainer.max_epochs) * batches // int(cfg.trainer.get("accumulate_grad_batches") or 1)


def check_compression(callbacks: list[pl.Callback], task: SpeechTask, total_steps: int) -> None:
    """Every callback checks its settings against the model and the run's length (schedules,
    patterns, teachers), before anything is written: a refused command leaves no run behind."""
    for callback in callbacks:
        if hasattr(callback, "check"):
            callback.check(task, total_steps)


def _result_checkpoint(trainer: pl.Trainer, checkpoint: BestAndLastCheckpoint) -> str:
    """The checkpoint a run is judged by: the best by val/loss, or with masks on, the final model;
    after no steps at all (a baseline run), the model it started from.

    A sparsified, pruned or clustered model is only finished once its schedule is (such callbacks
    say `final_model_only`); an earlier "best" checkpoint would be denser than the recipe, or not
    clustered, and report the wrong size. Callbacks that only add
    to the loss (distillation, group lasso) leave the best checkpoint a fair pick.
    """
    if trainer.global_step == 0:  # trainer.max_steps=0: the starting model (init=) is tested as it is
        start = Path(checkpoint.dirpath) / "start.ckpt"
        trainer.save_checkpoint(start)
        return str(start)
    if any(getattr(callback, "final_model_only", False) for callback in trainer.callbacks):
        final = Path(checkpoint.dirpath) / "final.ckpt"
        trainer.save_checkpoint(final)
        return str(final)
    return checkpoint.best_model_path or str(checkpoint.last_path)


def _missing_keys(node, prefix: str = "") -> list[str]:
    """Keys left at `???` (OmegaConf's "must be set"), read without resolving interpolations."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return []
    missing = []
    for key, value in items:
        missing += [f"{prefix}{key}"] if value == "???" else _missing_keys(value, f"{prefix}{key}.")
    return missing


def _refuse_missing(cfg: DictConfig) -> None:
    missing = _missing_keys(OmegaConf.to_container(cfg, resolve=False))
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


def run(cfg: DictConfig) -> dict[str, float]:
    """Train, test and measure one recipe; returns the metrics that were logged."""
    _refuse_missing(cfg)
    if cfg.export.enabled and cfg.export.quantize not in (None, *QUANTIZE_MODES):
        raise ConfigError(f"export.quantize={cfg.export.quantize} is not a quantization: use one of "
                          f"{', '.join(QUANTIZE_MODES)} or null")
    try:  # before any data is generated or any step trained
        check_reachable(tracking_uri(cfg.logger.tracking_uri))
    except ConnectionError as error:
        raise ConfigError(str(error)) from None
    threads = parallel_job_threads()
    if threads:
        torch.set_num_threads(threads)
    pl.seed_everything(cfg.seed, workers=True)
    folder = RunFolder(output_dir(cfg))
    resume_path, resume_run_id = _resume_state(cfg, folder)
    datamodule = instantiate(cfg.data)
    task = build_task(cfg)
    if cfg.get("init") and not resume_path:
        start_from(task, cfg.init)
    compression = build_compression(cfg)
    check_compression(compression, task, planned_steps(cfg, datamodule))
    if cfg.export.enabled:  # xiph's RNNoise ships a file that must load in librnnoise
        try:
            check_library_sizes(task.model)
        except ValueError as error:
            raise ConfigError(f"model.*: {error}") from None

    # nothing is written before this line: a refused setting leaves no folder and no MLflow run
    if resume_path:
        folder = RunFolder.of_checkpoint(resume_path)
    folder.root.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, folder.config, resolve=True)  # first, so tools like `sensitivity` find it beside any checkpoint
    checkpoint = BestAndLastCheckpoint(dirpath=folder.checkpoints, filename="best-{step}", monitor="val/loss",
                                       mode="min", save_top_k=1, auto_insert_metric_name=False)
    # One process logs. Under SLURM every rank starts at once, and MLflow's client creates a missing
    # SQLite store's tables as it opens it: two ranks doing so together race (one dies).
    logger = build_logger(cfg, resume_run_id) if rank_zero_only.rank == 0 else False
    if logger and resume_run_id is None:
        log_config(logger, cfg)
    interruption = SaveOnSignal(folder.last_checkpoint)
    trainer = pl.Trainer(**cfg.trainer, logger=logger,
                         callbacks=[checkpoint, RunIdInCheckpoint(), interruption, *compression],
                         plugins=[AtomicCheckpointIO()], default_root_dir=str(folder.root))
    trainer.fit(task, datamodule=datamodule, ckpt_path=str(resume_path) if resume_path else None, weights_only=True)
    interruption.exit_if_interrupted()

    result_path = _result_checkpoint(trainer, checkpoint)
    measured: dict[str, float] = {}
    if cfg.compression.get("shrink"):  # test, measure and ship the rebuilt model, not the masked one
        params_before = sum(p.numel() for p in task.model.parameters())
        task, difference = shrink_task(task)
        result_path = str(Path(result_path).with_name("final-shrunk.ckpt"))
        if trainer.is_global_zero:
            save_task(task, result_path)
        measured = {"shrink/params_before": float(params_before), "shrink/max_abs_difference": difference}
        test_metrics = trainer.test(task, datamodule=datamodule, verbose=False, weights_only=True)
    else:
        test_metrics = trainer.test(task, datamodule=datamodule, ckpt_path=result_path, verbose=False,
                                    weights_only=True)
    # one dict per test split; the splits' figures are logged under their own prefixes
    metrics = {k: float(v) for split_metrics in test_metrics for k, v in split_metrics.items()}
    if not trainer.is_global_zero:  # one process measures, logs and reports
        return metrics
    model = task.model
    measured |= {**size_report(model), **real_time_factor(model, task.sample_rate, cfg.measure.latency_seconds,
                                                          cfg.measure.latency_repeats),
                 **inference_memory(task, cfg.measure.memory_seconds)}
    for callback in compression:
        if isinstance(callback, ClusterCallback):
            measured["size/bytes_clustered"] = float(clustered_size(model, callback.bits))
    client, run_id = logger.experiment, logger.run_id
    if cfg.export.enabled:
        _, deployed = deploy(cfg, task, datamodule, folder.export)
        measured |= deployed
        client.log_artifacts(run_id, str(folder.export), "export")  # FSMN-VAD's funasr/ folder too
    logger.log_metrics(measured, step=trainer.global_step)
    client.log_artifact(run_id, str(folder.config))
    client.log_artifact(run_id, str(write_size_csv(tensor_sizes(model), folder.size_table)))
    client.log_artifact(run_id, result_path, "checkpoints")
    for path in task.write_examples(folder.examples):
        client.log_artifact(run_id, str(path), "examples")
    metrics |= measured
    print(summary(cfg, task, metrics, result_path, run_id))
    return metrics


def deploy(cfg: DictConfig, task: SpeechTask, datamodule, folder: Path) -> tuple[dict[str, Path], dict[str, float]]:
    """Exports the tested model (`cfg.export`) and measures each file as deployed, on the CPU:
    `size/bytes_KEY` (bytes on disk), `latency/rtf_KEY` (ONNX Runtime, one thread, the same audio
    as torch's `latency/rtf`) and `deploy/KEY/NAME` (the test split through the file), for KEY =
    onnx, onnx_int8, onnx_stream and onnx_stream_int8 (RNNoise's step graph, run hop by hop;
    FSMN-VAD's FunASR step graph, run on whole signals from empty caches), onnx_fp16 (its size
    only; fp16 is meant for GPUs, not this CPU measurement), and rnnoise_c (xiph's RNNoise as
    librnnoise's weights file, run by the C library)."""
    model = task.model
    calibration = None
    if cfg.export.quantize == "static-int8":
        calibration = calibration_inputs(model, datamodule.train_dataloader(), cfg.export.calibration_batches)
    files = export_files(model, folder, task_settings(task), cfg.export.quantize, cfg.export.fp16, calibration)
    metrics: dict[str, float] = {}
    for key, path in files.items():
        metrics[f"size/bytes_{key}"] = float(path.stat().st_size)
        if key == "onnx_fp16":
            continue
        deployed = deployed_model(path, threads=1)
        rtf = real_time_factor(deployed, task.sample_rate, cfg.measure.latency_seconds, cfg.measure.latency_repeats)
        metrics[f"latency/rtf_{key}"] = rtf["latency/rtf"]
        if cfg.export.evaluate:
            scores = task.score(deployed, tqdm(datamodule.split_loader("test"), desc=f"test split through {path.name}",
                                               unit="batch", leave=False))
            metrics |= {f"deploy/{key}/{name}": value for name, value in scores.items()}
    return files, metrics


def inference_memory(task: SpeechTask, seconds: float) -> dict[str, float]:
    """`memory/peak_mb` of the task's deployment inference (`task.infer`, in its windows) on
    `seconds` of noise, on the task's device; the input stays on the CPU, as a file's would."""

    noise = torch.randn(1, int(seconds * task.sample_rate)) * 0.05
    task.eval()
    with peak_memory(task.device) as memory:
        task.infer(noise)
    return memory


def summary(cfg: DictConfig, task: SpeechTask, metrics: dict[str, float], checkpoint: str, run_id: str) -> str:
    """The one screen a user reads at the end of a run."""
    rtf = metrics.get("latency/rtf", math.nan)
    sizes = (f"xiph's layout   {int(metrics['size/bytes_sparse']):,} bytes fp32, "
             f"{int(metrics['size/bytes_sparse_int8']):,} int8 (")
    if metrics.get("size/bytes_sparse_gru"):
        sizes += f"GRUs block-sparse, {int(metrics['size/bytes_sparse_gru']):,} fp32; other layers block-sparse where it pays"
    else:
        sizes += "every layer block-sparse where it pays"
    return "\n".join([
        "",
        f"── speechcompress run: {cfg.name} ──",
        f"checkpoint      {checkpoint}",
        f"MLflow run      {run_id}  (experiment {cfg.logger.experiment_name})",
        f"MLflow UI       mlflow ui --backend-store-uri {tracking_uri(cfg.logger.tracking_uri)}",
        "",
        *task.summary_lines(metrics),
        "",
        f"parameters      {int(metrics['size/params']):,} ({int(metrics['size/nonzero']):,} non-zero)"
        + (f", shrunk from {int(metrics['shrink/params_before']):,}; outputs within "
           f"{metrics['shrink/max_abs_difference']:.1e} of the masked model" if "shrink/params_before" in metrics else ""),
        f"checkpoint size {int(metrics['size/bytes_checkpoint']):,} bytes (fp32 weights)",
        sizes + ")",
        f"real-time factor {rtf:.4f} on 1 CPU thread ({1000 * rtf:.1f} ms per second of audio)",
        f"peak memory     {metrics.get('memory/peak_mb', math.nan):.0f} MiB for {cfg.measure.memory_seconds:g} s of audio "
        f"(deployment inference on {task.device.type})",
        *deployment_lines(cfg, task, metrics),
    ])


def deployment_lines(cfg: DictConfig, task: SpeechTask, metrics: dict[str, float]) -> list[str]:
    """torch, ONNX fp32 and ONNX INT8 side by side: bytes, real-time factor, the headline quality."""
    if "size/bytes_onnx" not in metrics and "size/bytes_rnnoise_c" not in metrics:
        return []
    name, label = task.headline
    rows = [("torch checkpoint", metrics["size/bytes_checkpoint"], metrics.get("latency/rtf"), metrics.get(f"test/{name}"))]
    for key, title in (("onnx", "ONNX fp32"), ("onnx_int8", f"ONNX {cfg.export.quantize}"), ("onnx_fp16", "ONNX fp16"),
                       ("onnx_stream", "ONNX step fp32"), ("onnx_stream_int8", "ONNX step dynamic-int8"),
                       ("rnnoise_c", "librnnoise int8")):
        if f"size/bytes_{key}" in metrics:
            rows.append((title, metrics[f"size/bytes_{key}"], metrics.get(f"latency/rtf_{key}"),
                         metrics.get(f"deploy/{key}/{name}")))

    def shown(value: float | None, form: str) -> str:
        return "-" if value is None or math.isnan(value) else format(value, form)

    return ["", f"{'deployed as':<22}{'bytes':>12}{'RTF, 1 thread':>15}{label:>12}",
            *(f"{title:<22}{int(size):>12,}{shown(rtf, '.4f'):>15}{shown(quality, '.3f'):>12}"
              for title, size, rtf, quality in rows)]
