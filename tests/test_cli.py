"""`speechcompress enhance` and `evaluate` on files the test writes, with the tiny trained checkpoint."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from mlflow.tracking import MlflowClient

from speechcompress.cli import main


@pytest.fixture(scope="module")
def checkpoint(tiny_run) -> Path:
    cfg, _ = tiny_run
    (best,) = (Path(cfg.paths.experiments_dir) / "runs" / "rnnoise").glob("*/checkpoints/best-*.ckpt")
    return best


@pytest.fixture(scope="module")
def corpus(tiny_run, tmp_path_factory):
    """Four noisy/clean pairs written as wav files, from the tiny run's own test split."""
    cfg, _ = tiny_run
    from hydra.utils import instantiate

    dataset = instantiate(cfg.data.test)(sample_rate=16000)
    root = tmp_path_factory.mktemp("corpus")
    for kind in ("noisy", "clean"):
        (root / kind).mkdir()
    for i in range(4):
        item = dataset[i]
        sf.write(root / "noisy" / f"utt{i}.wav", item["noisy"].numpy(), 16000)
        sf.write(root / "clean" / f"utt{i}.wav", item["clean"].numpy(), 16000)
    return root


def _noisy_speech(seconds=1.5, rate=16000) -> np.ndarray:
    """A gated tone in white noise: speech-like on/off structure, at any rate (float64)."""
    t = np.arange(int(seconds * rate)) / rate
    speech = 0.2 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0)
    return speech + 0.05 * np.random.default_rng(0).standard_normal(len(t))


def test_enhance_one_file_at_another_rate_and_stereo(checkpoint, tmp_path):
    wave = _noisy_speech(rate=44100)
    sf.write(tmp_path / "in.wav", np.stack([wave, 0.5 * wave], axis=1), 44100)
    assert main(["enhance", "--checkpoint", str(checkpoint), str(tmp_path / "in.wav"), str(tmp_path / "out.wav")]) == 0
    out, rate = sf.read(tmp_path / "out.wav")
    assert rate == 44100 and out.ndim == 1 and len(out) == len(wave)
    assert np.isfinite(out).all() and 0 < np.abs(out).max() < 1


def test_enhance_a_folder(checkpoint, corpus, tmp_path):
    assert main(["enhance", "--checkpoint", str(checkpoint), str(corpus / "noisy"), str(tmp_path / "out")]) == 0
    written = sorted(p.name for p in (tmp_path / "out").glob("*.wav"))
    assert written == [f"utt{i}.wav" for i in range(4)]


def test_corrupt_file_gives_a_clear_error(checkpoint, tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"RIFF1234WAVEfmt garbage")
    result = subprocess.run([sys.executable, "-m", "speechcompress.cli", "enhance", "--checkpoint", str(checkpoint),
                             str(tmp_path / "bad.wav"), str(tmp_path / "out.wav")], capture_output=True, text=True)
    assert result.returncode == 1
    assert "failed:" in result.stderr and "bad.wav" in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.glob("*out*"))


def _awkward_folder(root: Path) -> dict[str, tuple[int, float]]:
    """Files a user's folder may hold; returns the readable ones' names with (rate, seconds)."""
    rng = np.random.default_rng(0)
    root.mkdir()
    (root / "corrupt.wav").write_bytes(b"RIFF1234WAVEfmt garbage")
    (root / "empty.wav").write_bytes(b"")
    readable = {"zero_length.wav": (16000, 0.0), "nan.wav": (16000, 1.0), "rate8k.wav": (8000, 1.0),
                "stereo44k.wav": (44100, 1.0), "pcm24.wav": (16000, 1.0), "speech.flac": (16000, 1.0),
                "silence.wav": (16000, 1.0), "short10ms.wav": (16000, 0.01), "long3min.wav": (16000, 180.0)}
    for name, (rate, seconds) in readable.items():
        wave = _noisy_speech(seconds, rate) if seconds else np.zeros(0)
        if name == "silence.wav":
            wave = np.zeros_like(wave)
        if name == "nan.wav":
            wave[100:110] = np.nan
        if name == "stereo44k.wav":
            wave = np.stack([wave, rng.standard_normal(len(wave)) * 0.01], axis=1)
        subtype = {"pcm24.wav": "PCM_24", "nan.wav": "FLOAT"}.get(name, "PCM_16")
        sf.write(root / name, wave, rate, subtype=subtype)
    return readable


def _failed_lines(stderr: str) -> list[str]:
    return sorted(Path(line.split("failed: ", 1)[1].split(":")[0]).name for line in stderr.splitlines()
                  if line.startswith("failed: "))


def test_a_folder_of_awkward_files_through_enhance_and_vad(checkpoint, tiny_vad_run, tmp_path):
    readable = _awkward_folder(tmp_path / "in")
    for command, model in (("enhance", checkpoint), ("vad", tiny_vad_run[2])):
        out = tmp_path / command
        result = subprocess.run([sys.executable, "-m", "speechcompress.cli", command, "--checkpoint", str(model),
                                 str(tmp_path / "in"), str(out)], capture_output=True, text=True, timeout=600)
        assert result.returncode == 1, result.stderr  # some files failed
        assert "Traceback" not in result.stderr
        assert _failed_lines(result.stderr) == ["corrupt.wav", "empty.wav"]  # listed, one line each
        assert "nan.wav: 10 non-finite samples (NaN or inf) set to 0" in result.stderr
        assert "wrote the outputs of 9 of 11 file(s); 2 failed" in result.stderr
        assert not [p for p in out.rglob("*") if p.name.endswith(".partial")]
        for name, (rate, seconds) in readable.items():
            stem = out / Path(name).stem
            if command == "enhance":
                wave, written_rate = sf.read(stem.with_suffix(".wav"))
                assert written_rate == rate and len(wave) == round(seconds * rate), name
                assert np.isfinite(wave).all(), name
            else:
                probabilities = np.load(stem.with_suffix(".npy"))
                report = json.loads(stem.with_suffix(".json").read_text())
                assert len(probabilities) == -(-round(seconds * rate) // round(rate / 100)), name
                assert np.isfinite(probabilities).all() and report["duration"] == pytest.approx(seconds, abs=1e-3)
        assert not (out / "corrupt.wav").exists() and not (out / "corrupt.json").exists()


def test_missing_checkpoint_gives_a_clear_error(tmp_path, capsys):
    assert main(["enhance", "--checkpoint", str(tmp_path / "nope.ckpt"), "a.wav", "b.wav"]) == 2
    assert "nope.ckpt does not exist" in capsys.readouterr().err


def test_evaluate_prints_json_and_logs_to_mlflow(tiny_run, checkpoint, corpus, capsys):
    cfg, _ = tiny_run
    client = MlflowClient(cfg.logger.tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("rnnoise").experiment_id])
    code = main(["evaluate", "--checkpoint", str(checkpoint), "--noisy", str(corpus / "noisy"),
                 "--clean", str(corpus / "clean"), "--mlflow-run", run.info.run_id,
                 "--tracking-uri", cfg.logger.tracking_uri])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["items"] == 4 and report["pesq_errors"] == 0
    assert set(report["enhanced"]) == {"pesq", "stoi", "si_sdr", "si_sdr_i"}
    assert 1.0 < report["noisy"]["pesq"] < 4.7 and 0 < report["noisy"]["stoi"] <= 1
    assert report["enhanced"]["si_sdr_i"] == pytest.approx(report["enhanced"]["si_sdr"] - report["noisy"]["si_sdr"])
    logged = client.get_run(run.info.run_id).data.metrics
    assert logged["eval/pesq"] == pytest.approx(report["enhanced"]["pesq"])
