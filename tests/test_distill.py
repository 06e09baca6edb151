"""Distillation: the KD loss against a hand computation, real student runs guided by real teachers,
and teachers that do not fit refused with a message that names the difference."""

import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from mlflow.tracking import MlflowClient

from speechcompress.checkpoints import load_task
from speechcompress.compression.distill import distillation_kl
from speechcompress.config import ConfigError
from speechcompress.tasks.base import build_task
from speechcompress.train import run

from .conftest import TINY, TINY_FSMN, TINY_RUN, compose_config, sandbox_overrides

STUDENT = ["model.input_affine=16", "model.hidden=32", "model.proj=16", "model.layers=1", "model.output_affine=16"]


def test_kd_loss_against_a_hand_computed_value():
    student, teacher, temperature = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 0.0]]), 2.0
    # softmax at T = 2: teacher (1.5, 0), student (0.5, 1)
    p = [math.exp(1.5) / (math.exp(1.5) + 1), 1 / (math.exp(1.5) + 1)]
    q = [math.exp(0.5) / (math.exp(0.5) + math.exp(1.0)), math.exp(1.0) / (math.exp(0.5) + math.exp(1.0))]
    expected = temperature**2 * sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))
    assert float(distillation_kl(student, teacher, temperature)) == pytest.approx(expected, rel=1e-6)
    assert float(distillation_kl(teacher, teacher, temperature)) == pytest.approx(0.0, abs=1e-7)


def _student_overrides(root, experiment: str, teacher: str, *extra: str) -> list[str]:
    steps = ["trainer.max_steps=60", "trainer.val_check_interval=30"]
    base = [o for o in TINY_RUN if not o.startswith(("trainer.max_steps", "trainer.val_check_interval"))]
    return [f"+experiment={experiment}", *base, *steps, *sandbox_overrides(root),
            f"compression.teacher={teacher}", *extra]


def test_vad_student_learns_from_a_teacher_found_through_mlflow(tiny_vad_run, tmp_path):
    teacher_cfg, _, _ = tiny_vad_run
    teacher_store = MlflowClient(teacher_cfg.logger.tracking_uri)
    (teacher_run,) = teacher_store.search_runs([teacher_store.get_experiment_by_name("fsmn_vad").experiment_id])
    overrides = _student_overrides(tmp_path, "fsmn_vad_distill", f"mlflow:{teacher_run.info.run_id}", *STUDENT,
                                   "task.cmvn_items=32", "compression.temperature=3.0")
    cfg = compose_config(overrides)
    cfg.compression.callbacks.distill.tracking_uri = teacher_cfg.logger.tracking_uri  # the teacher's store
    pl.seed_everything(cfg.seed, workers=True)
    untrained = build_task(cfg).model.eval()  # the student as run() starts it
    metrics = run(cfg)
    assert metrics["size/params"] < 0.5 * tiny_vad_run[1]["size/params"]
    client = MlflowClient(cfg.logger.tracking_uri)
    (student_run,) = client.search_runs([client.get_experiment_by_name("fsmn_vad_distill").experiment_id])
    assert student_run.info.run_name == "fsmnvad-distill-T3.0-a0.5-s1"
    distill = [m.value for m in client.get_metric_history(student_run.info.run_id, "train/distill")]
    assert distill and all(math.isfinite(v) and v >= 0 for v in distill)
    assert (tmp_path / "experiments" / "teachers" / teacher_run.info.run_id).is_dir()  # downloaded once, cached

    # it learned: its speech probabilities moved towards the teacher's on items it never trained on
    (trained,) = (tmp_path / "experiments" / "runs" / "fsmn_vad_distill").glob("*/checkpoints/best-*.ckpt")
    val = instantiate(cfg.data.val)(sample_rate=16000)
    noisy = torch.stack([val[i]["noisy"] for i in range(8)])
    with torch.no_grad():
        target = load_task(tiny_vad_run[2]).model(noisy).speech_probability()
        before = (untrained(noisy).speech_probability() - target).abs().mean()
        after = (load_task(trained).model(noisy).speech_probability() - target).abs().mean()
    assert after < 0.6 * before, (float(before), float(after))


def test_denoiser_student_moves_toward_the_teachers_gains(tiny_run, tmp_path):
    teacher_cfg, _ = tiny_run
    (teacher,) = (Path(teacher_cfg.paths.experiments_dir) / "runs" / "rnnoise").glob("*/checkpoints/best-*.ckpt")
    overrides = _student_overrides(tmp_path, "rnnoise", str(teacher), "model.cond_size=16", "model.gru_size=16",
                                   "compression=distill", "compression.alpha=0.7")
    cfg = compose_config(overrides)
    pl.seed_everything(cfg.seed, workers=True)
    untrained = build_task(cfg).model.eval()  # the student as run() starts it
    run(cfg)
    client = MlflowClient(f"sqlite:///{tmp_path / 'experiments' / 'mlflow.db'}")
    (student_run,) = client.search_runs([client.get_experiment_by_name("rnnoise").experiment_id])
    assert client.get_metric_history(student_run.info.run_id, "train/distill")

    (trained,) = (tmp_path / "experiments" / "runs" / "rnnoise").glob("*/checkpoints/best-*.ckpt")
    val = instantiate(cfg.data.val)(sample_rate=16000)
    noisy = torch.stack([val[i]["noisy"] for i in range(4)])
    with torch.no_grad():
        target = load_task(teacher).model(noisy).gains
        before = (untrained(noisy).gains - target).abs().mean()
        after = (load_task(trained).model(noisy).gains - target).abs().mean()
    assert after < 0.6 * before, (float(before), float(after))


def test_teacher_with_other_inputs_is_refused(tiny_vad_run, tmp_path):
    _, _, teacher = tiny_vad_run
    cfg = compose_config(_student_overrides(tmp_path, "fsmn_vad_distill", str(teacher), *STUDENT, "model.n_mels=40"))
    with pytest.raises(ConfigError, match="n_mels 80 vs 40"):
        run(cfg)


def test_teacher_of_another_task_is_refused(tiny_vad_run, tmp_path):
    _, _, vad_teacher = tiny_vad_run
    cfg = compose_config(_student_overrides(tmp_path, "rnnoise", str(vad_teacher), *TINY[:2], "compression=distill"))
    with pytest.raises(ConfigError, match="teacher .* is a VADTask, the student a DenoiseTask"):
        run(cfg)


def test_missing_teacher_is_named(tmp_path):
    cfg = compose_config(["+experiment=fsmn_vad_distill", *TINY_FSMN, *sandbox_overrides(tmp_path)])
    with pytest.raises(ConfigError, match="compression.teacher must be set"):
        run(cfg)
    with pytest.raises(ConfigError, match="no such checkpoint"):
        run(compose_config(["+experiment=fsmn_vad_distill", *TINY_FSMN, *TINY_RUN, *sandbox_overrides(tmp_path),
                            f"compression.teacher={tmp_path / 'nope.ckpt'}"]))
