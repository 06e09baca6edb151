"""One MLflow parent run per Hydra multirun, every job a child of it.

`SweepParentRun` is a Hydra callback (registered in conf/train.yaml). Before the sweeper launches
any job it creates the run's MLflow experiment and a parent run, named after the experiment and the
swept keys, holding the sweep's overrides as params; then it appends
`logger.parent_run_id=<id>` to the overrides every job is launched with. The id thus travels in
each job's config (to joblib workers and SLURM nodes alike), never through the environment, and
creating the experiment once, up front, keeps parallel jobs from racing to create the store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, open_dict, read_write

from speechcompress.config import tracking_uri
from speechcompress.tracking.mlflow import SWEEP_TAG, artifact_location, check_reachable
from speechcompress.tracking.ui import headline, tag_experiment

PARENT_KEY = "logger.parent_run_id"
ROLE_TAG = "speechcompress.role"


def swept_values(cfg: DictConfig) -> dict[str, str]:
    """The swept keys of a multirun and their value lists as typed: `hydra.sweeper.params` of the
    experiment, then the comma (or range/choice) overrides of the command line, which win."""
    swept = {str(k): str(v) for k, v in (cfg.hydra.sweeper.get("params") or {}).items()}
    parsed = OverridesParser.create().parse_overrides(list(cfg.hydra.overrides.task))
    for override in parsed:
        if override.is_sweep_override():
            swept[override.get_key_element()] = override.input_line.split("=", 1)[1]
    return swept


def parent_run_name(experiment: str, swept: dict[str, str]) -> str:
    keys = ", ".join(swept) if swept else "no swept keys"
    return f"{experiment} sweep: {keys}"


class SweepParentRun(Callback):
    def __init__(self) -> None:
        self.parent_id: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        cfg = config
        if cfg.logger.get("parent_run_id"):  # a parent given on the command line: the jobs join it
            return
        swept = swept_values(cfg)
        sweep_id = Path(cfg.hydra.sweep.dir).name
        uri = tracking_uri(cfg.logger.tracking_uri)
        check_reachable(uri)
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name(cfg.logger.experiment_name)
        if experiment is None:
            experiment_id = client.create_experiment(cfg.logger.experiment_name,
                                                     artifact_location=artifact_location(cfg))
        else:
            experiment_id = experiment.experiment_id
        tag_experiment(client, experiment_id, list(swept), headline(cfg))
        parent = client.create_run(experiment_id, run_name=parent_run_name(str(cfg.name), swept),
                                   tags={SWEEP_TAG: sweep_id, ROLE_TAG: "parent",
                                         "speechcompress.experiment": str(cfg.name)})
        for key, values in swept.items():
            client.log_param(parent.info.run_id, f"sweep.{key}", values)
        client.log_param(parent.info.run_id, "sweep.dir", str(cfg.hydra.sweep.dir))
        self.parent_id = parent.info.run_id
        with read_write(cfg.hydra.overrides), open_dict(cfg.hydra.overrides):
            cfg.hydra.overrides.task.append(f"{PARENT_KEY}={parent.info.run_id}")
        print(f"[speechcompress] sweep {sweep_id}: MLflow parent run {parent.info.run_id} "
              f"({parent_run_name(str(cfg.name), swept)})")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.parent_id:  # every job has ended (a failed job raises before this hook)
            MlflowClient(tracking_uri(config.logger.tracking_uri)).set_terminated(self.parent_id)
