"""MLflow conventions: where the store is, how runs are named, what every run records."""

from __future__ import annotations

import json
import subprocess
from importlib import metadata
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.loggers import MLFlowLogger

from speechcompress.config import PROJECT_ROOT, flatten, tracking_uri

LIBRARIES = ("torch", "torchaudio", "pytorch-lightning", "hydra-core", "mlflow", "torchmetrics", "numpy")
RUN_ID_KEY = "mlflow_run_id"
SWEEP_TAG = "speechcompress.sweep"  # a multirun's id, on its parent run and every job's run
SIZE = "size/bytes"  # every run's size as its model family is judged (the figure `model.size_metric` names)


def run_name(cfg: DictConfig) -> str:
    """A readable recipe name such as `rnnoise-none-s1`, `rnnoise-sparsify-d0.30-s1` or `fsmnvad-distill-T2.0-a0.5-s1`;
    a run that starts from a checkpoint says which (`xiphrnnoise-from-xiph-none-s1` for init=xiph.ckpt), and
    one of no steps says so in place of its seed (`xiphrnnoise-from-xiph-none-0steps`, a baseline)."""
    model = cfg.model._target_.rsplit(".", 1)[-1].lower()
    parts = [model] + ([f"from-{Path(str(cfg.init)).stem}"] if cfg.get("init") else [])
    parts.append(str(cfg.compression.get("name", "none")))
    if cfg.compression.get("density") is not None:
        parts.append(f"d{float(cfg.compression.density):.2f}")
    if cfg.compression.get("tag"):  # a recipe's own distinguishing settings, e.g. T2.0-a0.5
        parts.append(str(cfg.compression.tag))
    parts.append("0steps" if cfg.trainer.get("max_steps") == 0 else f"s{cfg.seed}")
    return "-".join(parts)


def git_commit(root: Path = PROJECT_ROOT) -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment_params() -> dict[str, str]:
    params = {"env.git_commit": git_commit(), "env.torch_threads": str(torch.get_num_threads())}
    for name in LIBRARIES:
        try:
            params[f"env.{name}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return params


def sweep_tags() -> dict[str, str]:
    """In a Hydra multirun: the sweep's id (its output folder's name) and this job's number."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return {}
    hydra_cfg = HydraConfig.get()
    return {SWEEP_TAG: Path(hydra_cfg.sweep.dir).name, "speechcompress.job": str(hydra_cfg.job.num)}


def parent_tag(cfg: DictConfig) -> dict[str, str]:
    """MLflow's own parent link, which nests the run under its sweep's parent in the UI."""
    parent = cfg.logger.get("parent_run_id")
    return {"mlflow.parentRunId": str(parent)} if parent else {}


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def artifact_location(cfg: DictConfig) -> str | None:
    """Where a new experiment keeps its artifacts: logger.artifact_location for a local store; a
    tracking server's own artifact store otherwise (None), so they travel through the server."""
    if is_server(tracking_uri(cfg.logger.tracking_uri)):
        return None
    return Path(cfg.logger.artifact_location).resolve().as_uri()


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fails within `timeout` seconds, naming `uri`, when a tracking server does not answer its
    health check (MLflow's own client would retry for minutes); local stores pass."""
    if not is_server(uri):
        return
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:
            if response.status == 200:
                return
            reason = f"HTTP {response.status}"
    except (urllib.error.URLError, OSError) as error:
        reason = str(getattr(error, "reason", error))
    raise ConnectionError(f"the MLflow tracking server {uri} does not answer ({reason}). Start it "
                          f"(mlflow server --host ... --port ...), or point logger.tracking_uri / "
                          f"MLFLOW_TRACKING_URI at a reachable one (unset, runs go to the local SQLite store)")


def log_config(logger: MLFlowLogger, cfg: DictConfig) -> None:
    """The flattened resolved config plus git commit and library versions, as run params."""
    params = {key: ("null" if value is None else value) for key, value in flatten(cfg).items()}
    logger.log_hyperparams({**params, **environment_params()})


class RunIdInCheckpoint(pl.Callback):
    """Stores the MLflow run id in every checkpoint, so resuming from it continues the same run."""

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        if isinstance(trainer.logger, MLFlowLogger):
            checkpoint[RUN_ID_KEY] = trainer.logger.run_id


LINEAGE_CONTEXTS = {"train": "training", "val": "validation"}  # test splits keep their names


def log_lineage(client, run_id: str, datamodule) -> None:
    """Each split's sources (`data.lineage`) as the run's MLflow dataset inputs, in the split's context."""
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    from speechcompress.data.lineage import split_sources

    inputs = []
    for split in ("train", "val", *datamodule.test_splits):
        for source in split_sources(datamodule.dataset(split)):
            profile = {"files": source.files, "bytes": source.bytes, "sha256": source.digest}
            dataset = Dataset(source.name, source.digest[:16], "local", json.dumps({"uri": source.uri}),
                              profile=json.dumps(profile))
            inputs.append(DatasetInput(dataset, [InputTag(MLFLOW_DATASET_CONTEXT, LINEAGE_CONTEXTS.get(split, split))]))
    if inputs:
        client.log_inputs(run_id, datasets=inputs)


def log_to_checkpoint_run(checkpoint: str | Path, figures: dict[str, float]) -> str | None:
    """Logs a benchmark's `figures` to the MLflow run that wrote `checkpoint` (in the default
    tracking store) and says so; returns the run's id, or None for a checkpoint of no run."""
    from mlflow.tracking import MlflowClient

    from speechcompress.checkpoints import read_checkpoint

    run_id = read_checkpoint(checkpoint).get(RUN_ID_KEY)
    if run_id:
        client = MlflowClient(tracking_uri(None))
        for name, value in figures.items():
            client.log_metric(run_id, name, value)
        print(f"logged to MLflow run {run_id}")
    return run_id
