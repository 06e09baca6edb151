"""MLflow conventions: where the store is, how runs are named, what every run records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.loggers import MLFlowLogger
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from speechcompress.config import PROJECT_ROOT, flatten, tracking_uri
from speechcompress.tracking.outbox import Outbox
from speechcompress.tracking.system_metrics import SystemMetrics

LIBRARIES = ("torch", "torchaudio", "pytorch-lightning", "hydra-core", "mlflow", "torchmetrics", "numpy")
RUN_ID_KEY = "mlflow_run_id"


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
    return {"speechcompress.sweep": Path(hydra_cfg.sweep.dir).name, "speechcompress.job": str(hydra_cfg.job.num)}


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


EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}  # the UI opens on training runs, not GenAI
QUICK_FAILURE = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


class RunLogger(MLFlowLogger):
    """Lightning's MLFlowLogger whose writes go through an `Outbox` (they never wait for the server,
    and survive its absence: `tracking.outbox`), which samples the machine's load (`system/*`),
    and which tags the experiment so MLflow's UI opens it on its training runs."""

    def __init__(self, *args, journal: Path, system_metrics_seconds: float | None = None, quality: str = "pesq",
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._journal, self._system_seconds, self._quality = Path(journal), system_metrics_seconds, quality
        self._outbox: Outbox | None = None
        self._sampler: SystemMetrics | None = None

    @property
    @rank_zero_experiment
    def experiment(self) -> Outbox:
        if self._outbox is None:
            client = MLFlowLogger.experiment.fget(self)  # finds or creates the experiment and the run
            tag_experiment(client, self._experiment_id, quality=self._quality)
            self._outbox = Outbox(client, self._journal, self._tracking_uri)
            if self._system_seconds:
                self._sampler = SystemMetrics(self.log_metrics, self._system_seconds).start()
        return self._outbox

    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        """Marks the run ended (through the outbox: Lightning's own asks the server first)."""
        if self._outbox is not None:
            self._outbox.set_terminated(self.run_id, "FINISHED" if status in ("success", "finished") else "FAILED")

    def close(self, wait: float) -> int:
        """Stops sampling and waits up to `wait` seconds for the server to have every write; says
        what is left for `speechcompress sync`, and returns how many writes that is."""
        if self._sampler is not None:
            self._sampler.stop()
        if self._outbox is None:
            return 0
        left = self._outbox.close(wait)
        if left:
            print(f"[speechcompress] {left} MLflow writes could not be delivered to {self._tracking_uri}; they are "
                  f"kept in {self._journal}: `speechcompress sync {self._journal.parent}` sends them once the "
                  f"server is back (resuming the run does too)", file=sys.stderr)
        return left


def build_logger(cfg: DictConfig, journal: Path, resume_run_id: str | None = None) -> RunLogger:
    """The run's MLflow logger (writes journalled in `journal`); `resume_run_id` continues that run
    instead of starting one."""
    uri = tracking_uri(cfg.logger.tracking_uri)
    if is_server(uri):  # the outbox tries again itself, without holding training up
        for key, value in QUICK_FAILURE.items():
            os.environ.setdefault(key, value)
    return RunLogger(
        experiment_name=cfg.logger.experiment_name,
        run_name=cfg.logger.run_name or run_name(cfg),
        tracking_uri=uri,
        artifact_location=artifact_location(cfg),
        run_id=resume_run_id,
        tags={"speechcompress.experiment": str(cfg.name), **sweep_tags(), **parent_tag(cfg)},
        journal=journal,
        system_metrics_seconds=cfg.logger.get("system_metrics_seconds"),
        quality=headline(cfg),
    )


VIEW = "speechcompress"  # the experiment's shared view of its runs table (see `experiment_url`)
VIEW_COST = "size/bytes_sparse"


def headline(cfg: DictConfig) -> str:
    """The quality figure a recipe's task puts first (pesq for denoisers, f1 for VADs)."""
    from hydra.utils import get_class

    return get_class(cfg.task._target_).headline[0]


def tag_experiment(client, experiment_id: str, swept: list[str] | None = None, quality: str = "pesq") -> None:
    """Tags that make MLflow's UI open the experiment on its training runs: its kind, and a shared
    view of the runs table (a sweep's swept keys, `quality` on each test split, bytes and RTF,
    sorted by bytes, a sweep's runs in one flat list). A sweep sets the view; a single run only
    when the experiment has none."""
    for key, value in EXPERIMENT_KIND.items():
        client.set_experiment_tag(experiment_id, key, value)
    view = f"mlflow.sharedViewState.{VIEW}"
    if swept is None and view in client.get_experiment(experiment_id).tags:
        return
    columns = [*(f"params.`{key}`" for key in swept or []),
               *(f"metrics.`{split}/{quality}`" for split in ("test", "test_unseen", "test_real")),
               f"metrics.`{VIEW_COST}`", "metrics.`latency/rtf`"]
    state = {"orderByKey": f"metrics.`{VIEW_COST}`", "orderByAsc": True, "selectedColumns": columns}
    client.set_experiment_tag(experiment_id, view, json.dumps(state))


def experiment_url(server: str, experiment_id: str) -> str:
    """The experiment's runs in MLflow's UI with the project's view. MLflow 3.17's UI picks its GenAI
    or its model-training pages by a switch it keeps in the browser (GenAI at first), whatever the
    experiment's kind tag says; the URL sets the switch and opens the shared view."""
    return f"{server.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning&viewStateShareKey={VIEW}"


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
