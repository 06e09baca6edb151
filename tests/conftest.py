"""Shared fixtures: the real configs (`compose_config`), and one tiny model trained for real per session."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER"):  # `-n 2`: two workers on 2 cores, one thread each (runs they start too)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"

import numpy as np
import pytest
import torch

from speechcompress.config import compose_config, register_resolvers
from speechcompress.data.audio import resample
from speechcompress.data.espeak import EspeakSynthesizer

register_resolvers()
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

# Small enough to train in well under a minute on 2 cores, big enough to learn something.
TINY_RUN = [
    "data.batch_size=16", "data.eval_batch_size=4",
    "data.train.utterances=60", "data.train.noise_clips_per_family=2", "data.train.babble_talkers=8",
    "data.train.rooms=6", "data.train.length=4000", "data.train.segment_seconds=1.0",
    "data.val.utterances=8", "data.val.noise_clips_per_family=1", "data.val.babble_talkers=4", "data.val.rooms=2",
    "data.val.length=8", "data.val.segment_seconds=2.0",
    "data.test.utterances=8", "data.test.noise_clips_per_family=1", "data.test.babble_talkers=4", "data.test.rooms=2",
    "data.test_unseen=null",  # most runs skip the unseen split; `with_unseen` keeps it
    "task.lr_decay=0", "task.optimizer.lr=3e-3",
    "trainer.max_steps=300", "trainer.val_check_interval=150", "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false", "trainer.accelerator=cpu",
    "measure.latency_seconds=2", "measure.latency_repeats=2", "measure.memory_seconds=5",
    "export=none",  # the session's tiny runs below export (`exporting`); other runs skip it
]
TINY = [
    "model.cond_size=24", "model.gru_size=32", "task.val_quality_items=4",
    "data.train.snr_db=[-5,5]",  # (val and test follow) noisy enough that learning shows in SI-SDR
    *TINY_RUN,
]
TINY_FSMN = ["model.input_affine=48", "model.hidden=64", "model.proj=32", "model.layers=2", "model.output_affine=32"]
TINY_FRCRN = ["model.channels=4", "model.encoder_kernels=[[5,2],[5,2],[5,2]]", "model.fsmn_order=3",
              "model.fsmn_hidden=8", "model.se_reduction=2"]
TINY_VAD = [*TINY_FSMN, *TINY_RUN, "task.cmvn_items=64", "data.test.utterances=16", "data.train.noise_only=0.2",
            "data.test.noise_only=0.2"]


# `make test` runs two workers (`-n 2 --dist loadgroup`); every worker trains the session fixtures it
# uses. The tiny FRCRN takes minutes on one thread, so the tests that use it share one worker.
USES_TINY_FRCRN = pytest.mark.xdist_group("tiny_frcrn_run")


def with_unseen(overrides: list[str]) -> list[str]:
    """The same overrides with the test_unseen split kept (small: utterances, talkers and rooms
    follow data.test), for the runs that check `test_unseen/*`."""
    return [("data.test_unseen.noise_clips_per_family=2" if o == "data.test_unseen=null" else o) for o in overrides]


def exporting(overrides: list[str]) -> list[str]:
    """The same overrides with the end-of-run ONNX export on (fp32 + dynamic INT8)."""
    return [("export=onnx" if o == "export=none" else o) for o in overrides]


_STORE_TEMPLATE: list[Path] = []  # this test process's migrated MLflow store


def migrated_store() -> Path:
    """An empty MLflow SQLite store whose tables this process created once: MLflow takes about 2 s
    to create them in a new store, which each test's own store would pay again."""
    if not _STORE_TEMPLATE:
        from mlflow.tracking import MlflowClient

        template = Path(tempfile.mkdtemp(prefix="mlflow-template-")) / "mlflow.db"
        MlflowClient(f"sqlite:///{template}").search_experiments()  # creates and migrates the tables
        _STORE_TEMPLATE.append(template)
    return _STORE_TEMPLATE[0]


_SHARED_DATA: list[Path] = []  # the suite's synthetic-data folder (`shared_data_dir`)


@pytest.fixture(scope="session", autouse=True)
def shared_data_dir(tmp_path_factory) -> Path:
    """One synthetic-data folder for the whole session, every xdist worker's: a split's cache is
    named by a digest of its settings, so tests with the same data settings share it instead of
    synthesising it again (workers that build one at once each rename a whole file into place)."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared-data"
    _SHARED_DATA[:] = [folder]
    return folder


def sandbox_overrides(root: Path, own_data: bool = False) -> list[str]:
    """Keep a test's runs and MLflow store inside its own temporary folder (the store starts as a
    copy of `migrated_store`), its data in the suite's shared folder, or with `own_data` in root/data."""
    store = root / "experiments" / "mlflow.db"
    if not store.exists():
        store.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(migrated_store(), store)
    data = root / "data" if own_data or not _SHARED_DATA else _SHARED_DATA[0]
    return [
        f"paths.data_dir={data}",
        f"paths.experiments_dir={root / 'experiments'}",
        f"logger.tracking_uri=sqlite:///{root / 'experiments' / 'mlflow.db'}",
    ]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """Trains the tiny RNNoise for real through `speechcompress.train.run`; returns (cfg, metrics)."""
    from speechcompress.train import run

    root = tmp_path_factory.mktemp("tiny_run")
    cfg = compose_config(["+experiment=rnnoise", *with_unseen(exporting(TINY)), *sandbox_overrides(root)])
    metrics = run(cfg)
    return cfg, metrics


@pytest.fixture(scope="session")
def tiny_vad_run(tmp_path_factory):
    """Trains a tiny FSMN-VAD for real; returns (cfg, metrics, best checkpoint)."""
    from speechcompress.train import run

    root = tmp_path_factory.mktemp("tiny_vad_run")
    cfg = compose_config(["+experiment=fsmn_vad", *with_unseen(exporting(TINY_VAD)), *sandbox_overrides(root)])
    metrics = run(cfg)
    (checkpoint,) = (root / "experiments" / "runs" / "fsmn_vad").glob("*/checkpoints/best-*.ckpt")
    return cfg, metrics, checkpoint


@pytest.fixture(scope="session")
def tiny_frcrn_run(tiny_run, tmp_path_factory):
    """Trains a tiny FRCRN for real on the tiny RNNoise run's corpus; returns (cfg, metrics, best checkpoint)."""
    from speechcompress.train import run

    root = tmp_path_factory.mktemp("tiny_frcrn_run")
    data = f"paths.data_dir={tiny_run[0].paths.data_dir}"
    cfg = compose_config(["+experiment=frcrn_small", *TINY_FRCRN, *exporting(TINY_RUN), "data.train.snr_db=[-5,5]",
                          "task.val_quality_items=4", *sandbox_overrides(root), data])
    metrics = run(cfg)
    (checkpoint,) = (root / "experiments" / "runs" / "frcrn_small").glob("*/checkpoints/best-*.ckpt")
    return cfg, metrics, checkpoint


def espeak_speech(seconds_before: float = 1.0, text: str = "the small house by the river") -> np.ndarray:
    """One clean English sentence from espeak-ng at 16 kHz, peak 0.5, after `seconds_before` of silence."""
    synthesizer = EspeakSynthesizer()
    (sentence,) = synthesizer.synthesize([text], "en", 160, 50, 50, 1)
    speech = resample(sentence, synthesizer.sample_rate, 16000)
    return np.concatenate([np.zeros(int(seconds_before * 16000), np.float32), 0.5 * speech / np.abs(speech).max()])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow_server(store: Path, artifacts: Path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """A real `mlflow server` on 127.0.0.1 over the SQLite store `store`, once it answers /health."""
    port = port or free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{store}", "--artifacts-destination", str(artifacts)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)  # its workers too
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                if response.status == 200:
                    return process, uri
        except OSError:
            pass
        if process.poll() is not None or time.time() > deadline:
            process.kill()
            pytest.fail(f"mlflow server did not start: {process.stderr.read()[-2000:]}")
        time.sleep(0.5)


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stops a server started by `start_mlflow_server`, its workers with it (SIGKILL: at once, for good)."""
    try:
        os.killpg(process.pid, sig)
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    except ProcessLookupError:  # already gone
        pass
