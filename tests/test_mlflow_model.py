"""Every run logs an MLflow Model over the file it ships: loaded in a fresh process with
`mlflow.pyfunc.load_model("runs:/ID/model")`, its `predict` gives what `enhance` / `vad` write."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from mlflow.tracking import MlflowClient

from speechcompress.cli import main
from speechcompress.config import tracking_uri
from tests.conftest import USES_TINY_FRCRN

RATE = 22050  # not the models' rate: the model resamples, as the CLI does

# Run in a fresh process: loads the run's model, predicts on IN (at RATE), saves OUT, and reports
# which training-stack modules the model pulled in.
PREDICT = """
import json, sys
import mlflow.pyfunc, numpy as np, soundfile as sf
uri, store, source, target = sys.argv[1:5]
mlflow.set_tracking_uri(store)
model = mlflow.pyfunc.load_model(uri)
wave, rate = sf.read(source, dtype="float32")
out = model.predict(wave, params={"sample_rate": rate})
if isinstance(out, dict):
    np.save(target, out["probabilities"]); json.dump(out["segments"], open(target + ".json", "w"))
else:
    np.save(target, out)
print(json.dumps([m for m in ("pytorch_lightning", "hydra", "torchmetrics", "pesq") if m in sys.modules]))
"""


def _noisy_speech(path: Path, seconds: float = 1.5) -> Path:
    t = np.arange(int(seconds * RATE)) / RATE
    speech = 0.2 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0)
    sf.write(path, (speech + 0.05 * np.random.default_rng(0).standard_normal(len(t))).astype(np.float32), RATE,
             subtype="FLOAT")
    return path


def _the_run(cfg):
    client = MlflowClient(tracking_uri(cfg.logger.tracking_uri))
    (run,) = client.search_runs([client.get_experiment_by_name(cfg.logger.experiment_name).experiment_id])
    return client, run


def _predict_in_a_fresh_process(uri: str, store: str, source: Path, target: Path) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PREDICT, uri, store, str(source), str(target)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _check_denoiser(cfg, tmp_path: Path, shipped: str) -> None:
    client, run = _the_run(cfg)
    assert run.data.tags["speechcompress.shipped"] == "onnx"
    model = Path(client.download_artifacts(run.info.run_id, "model", str(tmp_path)))
    requirements = (model / "requirements.txt").read_text()
    assert "onnxruntime==" in requirements and "pytorch-lightning" not in requirements, requirements
    source = _noisy_speech(tmp_path / "in.wav")
    heavy = _predict_in_a_fresh_process(f"runs:/{run.info.run_id}/model", tracking_uri(cfg.logger.tracking_uri),
                                        source, tmp_path / "predicted.npy")
    assert heavy == [], f"the model over {shipped} imported the training stack: {heavy}"
    predicted = np.load(tmp_path / "predicted.npy")
    export = Path(cfg.paths.experiments_dir) / "runs" / cfg.name
    (file,) = export.glob(f"*/export/{shipped}")
    assert main(["enhance", "--checkpoint", str(file), "--float", str(source), str(tmp_path / "cli.wav")]) == 0
    cli, rate = sf.read(tmp_path / "cli.wav", dtype="float32")
    assert rate == RATE and predicted.shape == cli.shape and np.abs(cli).max() > 1e-3
    np.testing.assert_allclose(predicted, cli, atol=1e-5, rtol=0)


def test_a_denoiser_run_s_model_predicts_what_enhance_writes(tiny_run, tmp_path):
    _check_denoiser(tiny_run[0], tmp_path, "model.onnx")


@USES_TINY_FRCRN
def test_an_frcrn_run_s_model_predicts_what_enhance_writes(tiny_frcrn_run, tmp_path):
    _check_denoiser(tiny_frcrn_run[0], tmp_path, "model.onnx")


def test_a_vad_run_s_model_predicts_what_vad_writes(tiny_vad_run, tmp_path):
    cfg = tiny_vad_run[0]
    client, run = _the_run(cfg)
    source = _noisy_speech(tmp_path / "in.wav", seconds=3.0)
    heavy = _predict_in_a_fresh_process(f"runs:/{run.info.run_id}/model", tracking_uri(cfg.logger.tracking_uri),
                                        source, tmp_path / "predicted.npy")
    assert heavy == []
    (file,) = (Path(cfg.paths.experiments_dir) / "runs" / cfg.name).glob("*/export/model.onnx")
    assert main(["vad", "--checkpoint", str(file), str(source), str(tmp_path / "cli")]) == 0
    cli = np.load(tmp_path / "cli" / "in.npy")
    predicted = np.load(tmp_path / "predicted.npy")
    assert predicted.shape == cli.shape == (300,)
    np.testing.assert_allclose(predicted, cli, atol=1e-5, rtol=0)
    written = json.loads((tmp_path / "cli" / "in.json").read_text())["segments"]
    assert json.loads((tmp_path / "predicted.npy.json").read_text()) == written


@pytest.mark.parametrize("kind", ["denoiser", "vad"])
def test_model_uri_of_the_wrong_kind_is_refused(tiny_run, tiny_vad_run, tmp_path, capsys, kind):
    cfg = (tiny_run if kind == "vad" else tiny_vad_run)[0]  # a model of the other kind
    _, run = _the_run(cfg)
    source = _noisy_speech(tmp_path / "in.wav")
    command = "enhance" if kind == "denoiser" else "vad"
    code = main([command, "--model", f"runs:/{run.info.run_id}/model", "--tracking-uri",
                 tracking_uri(cfg.logger.tracking_uri), str(source), str(tmp_path / "out.wav")])
    assert code == 2 and f"this needs a {kind}" in capsys.readouterr().err


def test_a_run_records_its_data_lineage_system_metrics_and_experiment_kind(tiny_run, tmp_path):
    cfg = tiny_run[0]
    client, run = _the_run(cfg)
    inputs = {d.tags[0].value: d.dataset for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"training", "validation", "test", "test_unseen"}
    for context, dataset in inputs.items():
        path = Path(json.loads(dataset.source)["uri"].removeprefix("file://"))
        assert path.parent == Path(cfg.paths.data_dir).resolve() / "synthetic" and path.name == dataset.name
        profile = json.loads(dataset.profile)
        assert profile["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest(), context  # the cache's bytes
        assert dataset.digest == profile["sha256"][:16] and profile["bytes"] == path.stat().st_size
    assert inputs["test"].digest != inputs["training"].digest
    cpu = client.get_metric_history(run.info.run_id, "system/cpu_utilization_percentage")
    assert cpu and all(0 <= m.value <= 100 * os.cpu_count() for m in cpu)
    assert "system/system_memory_usage_megabytes" in run.data.metrics
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_a_folder_corpus_is_described_by_its_files(tmp_path):
    from speechcompress.data.lineage import describe

    for name in ("a.wav", "sub/b.wav"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        sf.write(tmp_path / name, np.zeros(1600, np.float32), 16000)
    before = describe(tmp_path)
    assert before.files == 2 and before.uri == tmp_path.resolve().as_uri()
    sf.write(tmp_path / "sub" / "b.wav", np.zeros(3200, np.float32), 16000)
    assert describe(tmp_path).digest != before.digest  # a changed file changes the digest
