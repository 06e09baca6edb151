"""A real MLflow tracking server on 127.0.0.1: a run logs to it over HTTP and reads back; a dead
one fails the run within seconds, before any data or training."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from speechcompress.cli import main
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


def _start_training(tmp_path, uri: str, steps: int, *extra: str) -> subprocess.Popen:
    """A tiny run logging every step to `uri`, started in the background."""
    overrides = [o for o in TINY if not o.startswith(("trainer.max_steps", "trainer.val_check_interval"))]
    command = [sys.executable, "train.py", "+experiment=rnnoise", *overrides, f"trainer.max_steps={steps}",
               "trainer.val_check_interval=20", "trainer.log_every_n_steps=1", "measure.memory_seconds=1",
               "logger.system_metrics_seconds=1", *extra,
               *[o for o in sandbox_overrides(tmp_path) if not o.startswith("logger.")], f"logger.tracking_uri={uri}"]
    return subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def _the_run(store: Path):
    """The store's rnnoise run or None (read from its SQLite file, not through the server), and a client."""
    client = MlflowClient(f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("rnnoise")
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    return client, (runs[0] if runs else None)


def _logged_steps(store: Path) -> list[int]:
    """The steps whose training loss the store holds."""
    client, run = _the_run(store)
    return [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] if run else []


def _wait_until(condition, timeout: float, process: subprocess.Popen) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.time() < deadline, "timed out"
        time.sleep(0.5)


def _training_under_way(tmp_path, steps: int):
    """A real server on a fresh store and a tiny run logging to it, once 5 steps have reached it:
    (store, artifact folder, port, server process, training process)."""
    store, artifacts, port = tmp_path / "server.db", tmp_path / "server-artifacts", free_port()
    server, uri = start_mlflow_server(store, artifacts, port)
    training = _start_training(tmp_path, uri, steps)
    try:
        _wait_until(lambda: len(_logged_steps(store)) >= 5, 300, training)
    except BaseException:
        training.kill()
        stop(server)
        raise
    return store, artifacts, port, server, training


@pytest.mark.slow  # 30 s of outage: `make test-all`
def test_a_run_outlives_its_server_stopped_for_30_s_and_delivers_every_step(tmp_path):
    store, artifacts, port, server, training = _training_under_way(tmp_path, steps=300)
    try:
        stopped = time.time()
        stop(server)
        time.sleep(max(0.0, 30 - (time.time() - stopped)))
        checkpoints = list((tmp_path / "experiments" / "runs").rglob("*.ckpt"))
        server, _ = start_mlflow_server(store, artifacts, port)
        out, err = training.communicate(timeout=600)
    finally:
        training.kill()
        stop(server)
    assert training.returncode == 0, err[-3000:]
    assert any(stopped < c.stat().st_mtime for c in checkpoints)  # training went on while the server was away
    assert err.count("does not answer") == 1 and "is back" in err
    client, run = _the_run(store)
    steps = _logged_steps(store)
    assert len(steps) == len(set(steps)) == 300  # every step, once
    assert run.info.status == "FINISHED" and "test/pesq" in run.data.metrics
    assert any(k.startswith("system/") for k in run.data.metrics)
    assert list(artifacts.rglob("model/MLmodel")) and list(artifacts.rglob("config.yaml"))  # through the server
    assert not list((tmp_path / "experiments" / "runs").rglob("mlflow_outbox.jsonl"))  # all delivered


@pytest.mark.slow  # an outage test: `make test-all`
def test_sigterm_with_the_server_gone_saves_within_a_step_and_sync_delivers_later(tmp_path):
    store, artifacts, port, server, training = _training_under_way(tmp_path, steps=100000)
    try:
        stop(server, signal.SIGKILL)  # for good
        time.sleep(3)  # the run notices and trains on
        signalled = time.time()
        training.send_signal(signal.SIGTERM)
        out, err = training.communicate(timeout=120)
        exited = time.time()
    finally:
        training.kill()
    assert training.returncode == 143, err[-3000:]
    (last,) = (tmp_path / "experiments" / "runs").rglob("last.ckpt")
    assert last.stat().st_mtime - signalled < 2.0  # saved at the next step's end
    assert exited - signalled < 30  # the absent server held it up for seconds (5 s at most for the writes)
    (run_dir,) = [p.parent for p in (tmp_path / "experiments" / "runs").rglob("mlflow_outbox.jsonl")]
    assert "speechcompress sync" in err
    logged_before = len(_logged_steps(store))
    server, _ = start_mlflow_server(store, artifacts, port)  # the server is back, at its address
    try:
        assert main(["sync", str(run_dir)]) == 0
    finally:
        stop(server)
    saved_step = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
    steps = _logged_steps(store)
    assert logged_before < len(steps) == len(set(steps)) and len(steps) >= saved_step - 1
    assert not (run_dir / "mlflow_outbox.jsonl").exists()
