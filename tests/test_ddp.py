"""Figures that do not depend on the number of processes: a 2-process CPU DDP run (gloo) logs the
same test/* figures as a 1-process test of its checkpoint on the same split."""

import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
from hydra.utils import instantiate
from mlflow.tracking import MlflowClient

from speechcompress.checkpoints import load_task
from speechcompress.config import PROJECT_ROOT

from .conftest import TINY, TINY_VAD, compose_config, sandbox_overrides, with_unseen

SHORT = ["trainer.max_steps=20", "trainer.val_check_interval=10", "data.test.utterances=9",  # 9 items: padded on 2 ranks
         "measure.latency_seconds=1", "measure.latency_repeats=1"]


def _without(overrides: list[str], *keys: str) -> list[str]:
    return [o for o in overrides if not o.startswith(keys)]


@pytest.mark.parametrize("experiment, tiny", [("rnnoise", TINY), ("fsmn_vad", TINY_VAD)])
def test_two_process_run_logs_the_one_process_figures(experiment, tiny, tmp_path):
    overrides = [f"+experiment={experiment}", *_without(with_unseen(tiny), "trainer.max_steps",
                                                         "trainer.val_check_interval", "data.test.utterances",
                                                         "measure."), *SHORT, *sandbox_overrides(tmp_path)]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}  # two processes on two cores
    result = subprocess.run([sys.executable, "train.py", *overrides, "trainer.devices=2", "trainer.strategy=ddp"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600, env=environment)
    assert result.returncode == 0, result.stderr[-3000:]

    cfg = compose_config(overrides)
    client = MlflowClient(cfg.logger.tracking_uri)
    (logged,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    distributed = {k: v for k, v in logged.data.metrics.items() if k.startswith(("test/", "test_unseen/"))}
    (checkpoint,) = (Path(cfg.paths.experiments_dir) / "runs" / experiment).glob("*/checkpoints/best-*.ckpt")
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False)
    splits = trainer.test(load_task(checkpoint), datamodule=instantiate(cfg.data), verbose=False)
    single = {k: v for split in splits for k, v in split.items()}

    assert distributed["test/items"] == single["test/items"] == distributed["test_unseen/items"] == 9
    assert set(distributed) == set(single)
    for name, value in single.items():
        if math.isnan(value):
            assert math.isnan(distributed[name]), name
        else:
            assert distributed[name] == pytest.approx(value, rel=1e-4, abs=1e-4), name


@pytest.mark.slow  # an infrastructure re-check: `make test-all`
def test_two_slurm_tasks_train_as_ddp_ranks_into_one_run_folder_and_one_mlflow_run(tmp_path):
    """What `srun` starts for a job with --ntasks-per-node=2: two processes with SLURM's variables.
    Lightning's SLURMEnvironment makes them DDP ranks (gloo here); both resolve the run folder from
    the job id, and rank zero alone logs (one run, with every test item counted once)."""
    overrides = ["+experiment=rnnoise", *_without(TINY, "trainer.max_steps", "trainer.val_check_interval",
                                                  "data.test.utterances", "measure."), *SHORT,
                 *sandbox_overrides(tmp_path), "trainer.devices=2", "trainer.strategy=ddp", "trainer.accelerator=cpu"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    slurm = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "train", "SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2",
             "SLURM_NNODES": "1", "SLURM_NODEID": "0", "SLURM_NODELIST": "127.0.0.1", "MASTER_PORT": str(port),
             "OMP_NUM_THREADS": "1"}
    ranks = [subprocess.Popen([sys.executable, "train.py", *overrides], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env={**os.environ, **slurm, "SLURM_PROCID": str(r), "SLURM_LOCALID": str(r)})
             for r in range(2)]
    try:
        outputs = [rank.communicate(timeout=600) for rank in ranks]
    finally:  # a rank left waiting for its peer must not outlive the test
        for rank in ranks:
            rank.kill()
    for rank, (_, stderr) in zip(ranks, outputs, strict=True):
        assert rank.returncode == 0, stderr[-3000:]
    # Lightning's own SLURM requeue is off: the run's SaveOnSignal alone saves and requeues
    assert "SLURM auto-requeueing enabled" not in "".join(outputs[0])

    cfg = compose_config(overrides)
    client = MlflowClient(cfg.logger.tracking_uri)
    (logged,) = client.search_runs([client.get_experiment_by_name("rnnoise").experiment_id])
    assert logged.data.metrics["test/items"] == 9
    runs = Path(cfg.paths.experiments_dir) / "runs" / "rnnoise"
    assert [p.name for p in runs.iterdir()] == ["slurm-4242"]
    assert list((runs / "slurm-4242" / "checkpoints").glob("best-*.ckpt"))
