"""Pre-emption for real: SIGTERM halfway through a sparsify schedule, then the same command again."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from speechcompress.checkpoints import read_checkpoint
from speechcompress.config import PROJECT_ROOT
from speechcompress.tracking.mlflow import RUN_ID_KEY

from .conftest import TINY, sandbox_overrides

SCHEDULE = ["trainer.max_steps=120", "trainer.val_check_interval=40", "compression.sparsify_start=20",
            "compression.sparsify_stop=100", "compression.sparsify_interval=5", "measure.memory_seconds=1"]


def _command(tmp_path: Path, run_name: str) -> list[str]:
    tiny = [o for o in TINY if not o.startswith(("trainer.max_steps", "trainer.val_check_interval", "measure.memory"))]
    return [sys.executable, "train.py", "+experiment=rnnoise_sparse", *tiny, *SCHEDULE, *sandbox_overrides(tmp_path),
            f"run_name={run_name}"]


def _run(command: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _masks(run_dir: Path) -> dict[str, torch.Tensor]:
    (state,) = [v for k, v in read_checkpoint(run_dir / "checkpoints" / "final.ckpt")["callbacks"].items()
                if "SparsifyCallback" in k]
    return state["masks"]


@pytest.mark.slow  # an infrastructure re-check: `make test-all`
def test_a_run_killed_mid_schedule_resumes_into_the_same_mlflow_run_and_ends_as_if_never_killed(tmp_path):
    runs = tmp_path / "experiments" / "runs" / "rnnoise_sparse"
    _run(_command(tmp_path, "whole"))

    killed = subprocess.Popen(_command(tmp_path, "killed"), cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    last = runs / "killed" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.exists() and killed.poll() is None and time.time() < deadline:  # the step-40 checkpoint
        time.sleep(0.05)
    killed.send_signal(signal.SIGTERM)
    stdout, stderr = killed.communicate(timeout=120)
    assert killed.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "SIGTERM: saved step" in stdout
    saved = read_checkpoint(last)
    assert 20 < saved["global_step"] < 100  # inside the sparsify schedule
    run_id = saved[RUN_ID_KEY]
    assert not (runs / "killed" / "checkpoints" / "final.ckpt").exists()  # it stopped before testing

    resumed = _run(_command(tmp_path, "killed"))
    assert "resume=auto: continuing" in resumed.stdout

    client = MlflowClient(f"sqlite:///{tmp_path / 'experiments' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("rnnoise_sparse")
    by_id = {r.info.run_id: r for r in client.search_runs([experiment.experiment_id])}
    assert len(by_id) == 2 and run_id in by_id  # the whole run and the killed-then-resumed one
    steps = [m.step for m in client.get_metric_history(run_id, "train/loss")]
    assert max(steps) == 99 and len(steps) == len(set(steps))  # continued to the end (logged every 25), none twice
    (whole_id,) = set(by_id) - {run_id}

    whole_masks, resumed_masks = _masks(runs / "whole"), _masks(runs / "killed")
    assert whole_masks.keys() == resumed_masks.keys()
    for name, mask in whole_masks.items():
        assert torch.equal(mask, resumed_masks[name]), name
    tests = {k: v for k, v in by_id[whole_id].data.metrics.items() if k.startswith("test/")}
    assert tests and {k for k in by_id[run_id].data.metrics if k.startswith("test/")} == set(tests)
    for name, value in tests.items():
        assert by_id[run_id].data.metrics[name] == pytest.approx(value, abs=1e-4), name
