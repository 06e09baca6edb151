"""Multiruns: one MLflow parent per sweep, every job its child, through the real launchers."""

import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient

from speechcompress.cli import main
from speechcompress.config import CONFIG_DIR, PROJECT_ROOT
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


def test_a_basic_multirun_has_one_parent_and_a_child_per_job_and_compare_reports_it(tmp_path, capsys):
    _sweep(tmp_path)
    parent, children = _check_parent_and_children(tmp_path)
    client, _ = _runs_of(tmp_path)
    out = tmp_path / "reports"
    assert main(["compare", "--experiment", "rnnoise", "--tracking-uri", client.tracking_uri, "--out", str(out)]) == 0
    table = [line for line in capsys.readouterr().out.splitlines() if "| rnnoise-none-s" in line]
    assert sorted(c.info.run_name for c in children) == ["rnnoise-none-s1", "rnnoise-none-s2"]
    assert len(table) == 2 and all(any(f"| {c.info.run_name} |" in row for row in table) for c in children)
    assert (out / "rnnoise.png").is_file()
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "reports")} == {"reports/rnnoise.md",
                                                                                     "reports/rnnoise.png"}


@pytest.mark.slow  # an infrastructure re-check: `make test-all`
def test_parallel_joblib_jobs_share_the_cores(tmp_path):
    _sweep(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    _, children = _check_parent_and_children(tmp_path)
    cores = os.cpu_count() or 1
    assert all(c.data.params["env.torch_threads"] == str(max(1, cores // 2)) for c in children)


@pytest.mark.slow  # an infrastructure re-check: `make test-all`
def test_the_cluster_path_runs_a_two_job_sweep_through_submitit(tmp_path):
    """submitit_local: the jobs are pickled and run in their own processes, as on SLURM."""
    _sweep(tmp_path, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=15")
    _check_parent_and_children(tmp_path)
    assert list((tmp_path / "experiments" / "multiruns" / "rnnoise").glob("*/.submitit/*"))


def test_the_slurm_launcher_config_carries_the_keys_users_set():
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", return_hydra_config=True,
                      overrides=["+experiment=rnnoise", "hydra/launcher=slurm", "trainer=ddp", "trainer.num_nodes=2",
                                 "hydra.launcher.partition=gpu", "hydra.launcher.account=speech",
                                 "hydra.launcher.gpus_per_node=4"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.account, launcher.nodes) == ("gpu", "speech", 2)
    assert launcher.gpus_per_node == launcher.tasks_per_node == 4  # one DDP process per GPU
    assert launcher.signal_delay_s > 0 and launcher.timeout_min > 0 and launcher.mem_gb and launcher.cpus_per_task
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.devices == -1
