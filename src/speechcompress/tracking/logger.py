"""The run's MLflow logger: Lightning's, with writes that never wait for the server."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from omegaconf import DictConfig
from pytorch_lightning.loggers import MLFlowLogger
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from speechcompress.config import tracking_uri
from speechcompress.tracking.mlflow import (
    artifact_location,
    is_server,
    parent_tag,
    run_name,
    sweep_tags,
)
from speechcompress.tracking.outbox import Outbox
from speechcompress.tracking.system_metrics import SystemMetrics
from speechcompress.tracking.ui import headline, tag_experiment

# with a server: MLflow's own HTTP retries (minutes a call) would hold the outbox's thread, which tries again itself
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
