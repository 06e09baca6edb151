"""How MLflow's UI shows the project's experiments: on their training runs, with the columns that matter.

MLflow 3.17's UI opens on its GenAI pages (traces, token usage, an assistant) until its "Model
training" switch is set; it keeps that switch in the browser and reads it from the URL
(`workflowType`), whatever the experiment's `mlflow.experimentKind` tag says (the UI goes by the
tag instead where that switch is turned off, so experiments get it too). Its runs table shows no metric by default; a
shared view (an experiment tag the UI applies when the URL names it) picks the columns and the order.
"""

from __future__ import annotations

import json

from omegaconf import DictConfig

from speechcompress.test_splits import TEST_SPLITS
from speechcompress.tracking.mlflow import SIZE

EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
VIEW = "speechcompress"  # the experiment's shared view of its runs table (see `experiment_url`)


def headline(cfg: DictConfig) -> str:
    """The quality figure a recipe's task puts first (pesq for denoisers, f1 for VADs)."""
    from hydra.utils import get_class

    return get_class(cfg.task._target_).headline[0]


def tag_experiment(client, experiment_id: str, swept: list[str] | None = None, quality: str = "pesq") -> None:
    """Tags that make MLflow's UI open the experiment on its training runs: its kind, and a shared
    view of the runs table (a sweep's swept keys, `quality` on each test split, bytes and RTF,
    sorted by bytes, a sweep's runs in one flat list). A sweep sets the view; a single run only
    when the experiment has none."""
    client.set_experiment_tag(experiment_id, *EXPERIMENT_KIND)
    view = f"mlflow.sharedViewState.{VIEW}"
    if swept is None and view in client.get_experiment(experiment_id).tags:
        return
    columns = [*(f"params.`{key}`" for key in swept or []),
               *(f"metrics.`{split}/{quality}`" for split in TEST_SPLITS),
               f"metrics.`{SIZE}`", "metrics.`latency/rtf`"]
    state = {"orderByKey": f"metrics.`{SIZE}`", "orderByAsc": True, "selectedColumns": columns}
    client.set_experiment_tag(experiment_id, view, json.dumps(state))


def experiment_url(server: str, experiment_id: str) -> str:
    """The experiment's runs in MLflow's UI on a server at `server`: the model-training pages and
    the project's shared view."""
    return f"{server.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning&viewStateShareKey={VIEW}"
