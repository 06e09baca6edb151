"""`speechcompress baseline`: the shipped librnnoise model, DeepFilterNet3 and silero-vad, scored on
our splits and logged beside our runs."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest

from speechcompress.baselines import deepfilternet3, shipped_rnnoise, silero_vad
from speechcompress.cli import main
from speechcompress.tracking.compare import shipped_models
from tests.conftest import espeak_speech, sandbox_overrides

SMALL_DATA = ["data.test.utterances=6", "data.test.noise_clips_per_family=1", "data.test.babble_talkers=4",
              "data.test.rooms=2", "data.test_unseen=null", "data.test.noise_only=0.2"]


@pytest.mark.parametrize("denoiser", [shipped_rnnoise, deepfilternet3])
def test_a_shipped_denoiser_removes_steady_noise_and_keeps_speech_in_time(denoiser):
    rng = np.random.default_rng(0)
    speech = espeak_speech()
    noise = (0.02 * rng.standard_normal(len(speech))).astype(np.float32)
    enhanced = denoiser(16000)(speech + noise)
    assert enhanced.shape == speech.shape
    quiet = slice(2000, 14000)  # the noise alone, before the speech
    assert np.mean(enhanced[quiet] ** 2) < 0.1 * np.mean(noise[quiet] ** 2)  # over 10 dB less noise
    lag = np.argmax(np.correlate(enhanced[16000:24000], speech[16000:24000], "full")) - 7999
    assert abs(lag) <= 2  # aligned with its input: the runtime's delay is taken out


def test_silero_probabilities_follow_the_speech_at_10_ms():
    speech = espeak_speech(1.0)
    probabilities = silero_vad(16000)(speech)
    assert len(probabilities) == -(-len(speech) // 160)
    assert probabilities[:80].max() < 0.5 and probabilities[120:160].mean() > 0.5  # silence first, then speech


@pytest.mark.parametrize("name, metric", [("rnnoise-official", "test/pesq"), ("dfn3", "test/pesq"),
                                          ("silero-vad", "test/f1")])
def test_a_baseline_is_logged_and_compare_shows_it(tmp_path, capsys, name, metric):
    experiment = "fsmn_vad" if name == "silero-vad" else "rnnoise"
    assert main(["baseline", name, *SMALL_DATA, *sandbox_overrides(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "no test_real split this run" in out  # this sandbox has no real-recordings corpus: one line says so
    printed = dict(line.split() for line in out.splitlines() if line.startswith("test/"))
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'experiments' / 'mlflow.db'}")
    (row,) = shipped_models(client, experiment)
    assert row.name == f"baseline-{name}" and row.metrics[metric] == pytest.approx(float(printed[metric]), abs=1e-4)
    if name == "silero-vad":
        assert float(printed["test/f1"]) > 0.7 and float(printed["test/items"]) == 6  # it finds espeak's speech
        assert 0 < float(printed["test/detection_f"]) <= 1 and 0 <= float(printed["test/event_f"]) <= 1
    else:
        assert float(printed["test/pesq_errors"]) == 0 and np.isfinite(float(printed["test/stoi"]))
