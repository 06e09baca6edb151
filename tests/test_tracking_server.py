"""A real MLflow tracking server on 127.0.0.1: a run logs to it over HTTP and reads back; a dead
one fails the run within seconds, before any data or training."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from speechcompress.config import PROJECT_ROOT

from .conftest import TINY, free_port, sandbox_overrides, start_mlflow_server, stop


@pytest.fixture
def server(tmp_path):
    process, uri = start_mlflow_server(tmp_path / "server.db", tmp_path / "server-artifacts")
    yield uri, tmp_path / "server-artifacts"
    stop(process)


def _train(tmp_path, uri: str, timeout: float) -> subprocess.CompletedProcess:
    overrides = [o for o in TINY if not o.startswith(("trainer.max_steps", "trainer.val_check_interval"))]
    command = [sys.executable, "train.py", "+experiment=rnnoise", *overrides, "trainer.max_steps=20",
               "trainer.val_check_interval=10", "measure.memory_seconds=1",
               *[o for o in sandbox_overrides(tmp_path, own_data=True) if not o.startswith("logger.")],
               f"logger.tracking_uri={uri}"]
    return subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.mark.slow  # an infrastructure re-check: `make test-all`
def test_a_run_logs_to_a_real_server_and_reads_back(server, tmp_path):
    uri, artifact_root = server
    result = _train(tmp_path, uri, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("rnnoise").experiment_id])
    assert run.info.status == "FINISHED"
    assert {"test/pesq", "test/si_sdr", "size/bytes_sparse", "latency/rtf"} <= set(run.data.metrics)
    assert run.data.params["model.gru_size"] == "32"
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "checkpoints", "examples"} <= names
    config = Path(client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path)))
    assert "gru_size: 32" in config.read_text()
    assert list(artifact_root.rglob("config.yaml"))  # the artifacts went through the server's store


def test_an_unreachable_server_fails_the_run_in_seconds_before_any_work(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.time()
    result = _train(tmp_path, uri, timeout=120)
    assert result.returncode == 2
    assert uri in result.stderr and "does not answer" in result.stderr
    assert time.time() - started < 60  # interpreter and imports included; the check itself waits ≤ 5 s
    assert not (tmp_path / "data").exists() and not (tmp_path / "experiments" / "runs").exists()
