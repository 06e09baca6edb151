"""Multiruns: one MLflow parent per sweep, every job its child, through the real launchers."""

import os
import subprocess
import sys

from mlflow.tracking import MlflowClient

from speechcompress.config import PROJECT_ROOT
from speechcompress.tracking.sweep import ROLE_TAG, SWEEP_TAG

from .conftest import TINY, compose_config, sandbox_overrides

QUICK = [o for o in TINY if not o.startswith(("trainer.max_steps", "trainer.val_check_interval"))] + [
    "trainer.max_steps=10", "trainer.val_check_interval=10", "measure.memory_seconds=1"]


def _sweep(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    overrides = ["+experiment=rnnoise", *QUICK, *sandbox_overrides(tmp_path), "seed=1,2", *extra]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "train.py", "-m", *overrides], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=900, env=environment)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _runs_of(tmp_path):
    cfg = compose_config(["+experiment=rnnoise", *sandbox_overrides(tmp_path)])
    client = MlflowClient(cfg.logger.tracking_uri)
    experiment = client.get_experiment_by_name("rnnoise")
    return client, client.search_runs([experiment.experiment_id])


def _check_parent_and_children(tmp_path):
    client, runs = _runs_of(tmp_path)
    (parent,) = [r for r in runs if r.data.tags.get(ROLE_TAG) == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 3 and len(children) == 2
    assert parent.info.run_name == "rnnoise sweep: seed" and parent.data.params["sweep.seed"] == "1,2"
    assert parent.info.status == "FINISHED"
    assert {c.data.tags[SWEEP_TAG] for c in children} == {parent.data.tags[SWEEP_TAG]}
    assert sorted(c.data.params["seed"] for c in children) == ["1", "2"]
    assert all("test/pesq" in c.data.metrics for c in children)
    return parent, children


def test_a_basic_multirun_has_one_parent_and_a_child_per_job(tmp_path):
    _sweep(tmp_path)
    _check_parent_and_children(tmp_path)


def test_parallel_joblib_jobs_share_the_cores(tmp_path):
    _sweep(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    _, children = _check_parent_and_children(tmp_path)
    cores = os.cpu_count() or 1
    assert all(c.data.params["env.torch_threads"] == str(max(1, cores // 2)) for c in children)
