"""MLflow's UI as a user opens a sweep's experiment: headless Chromium from Debian against a real
`mlflow server` (benchmarks/mlflow_ui_screenshot.py), on the training runs and the project's view."""

from __future__ import annotations

import subprocess
import sys

import pytest

from speechcompress.config import PROJECT_ROOT

from .conftest import sandbox_overrides
from .test_sweeps import _sweep


@pytest.mark.slow  # fetches Chromium from Debian once (about 100 MB) and runs a sweep: `make test-all`
def test_the_ui_opens_a_sweep_on_its_training_runs_with_the_swept_keys_and_figures(tmp_path):
    _sweep(tmp_path)  # rnnoise over seed=1,2
    store = next(o for o in sandbox_overrides(tmp_path) if o.startswith("logger.tracking_uri=")).split("=", 1)[1]
    png = tmp_path / "ui.png"
    done = subprocess.run([sys.executable, "benchmarks/mlflow_ui_screenshot.py", "--experiment", "rnnoise",
                           "--tracking-uri", store, "--out", str(png)], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=900)
    if done.returncode != 0 and "PackagesUnavailable" in done.stderr:
        pytest.skip(f"no Debian packages here: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr[-3000:]
    text = png.with_suffix(".txt").read_text()
    assert "Model training" in text and "shared view" in text  # not the GenAI overview
    for shown in ("rnnoise sweep: seed", "rnnoise-none-s1", "rnnoise-none-s2",  # the parent and its children
                  "seed", "test/pesq", "size/bytes", "latency/rtf"):  # the swept key and the figures
        assert shown in text, shown
    assert png.stat().st_size > 30_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
