"""A tiny RNNoise trained for real, end to end through train.run, checked against the MLflow store."""

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from speechcompress.checkpoints import read_checkpoint

from .conftest import TINY, compose_config, sandbox_overrides


def test_training_improves_si_sdr_over_the_noisy_input(tiny_run):
    _, metrics = tiny_run
    assert metrics["test/si_sdr"] > metrics["test/si_sdr_noisy"] + 2.0
    assert metrics["test/si_sdr_i"] == pytest.approx(metrics["test/si_sdr"] - metrics["test/si_sdr_noisy"])
    assert metrics["test/items"] == 8


def test_mlflow_store_holds_the_run(tiny_run):
    cfg, _ = tiny_run
    client = MlflowClient(cfg.logger.tracking_uri)
    experiment = client.get_experiment_by_name("rnnoise")
    (run,) = client.search_runs([experiment.experiment_id])
    metrics = run.data.metrics
    for name in ("test/pesq", "test/pesq_noisy", "test/stoi", "test/si_sdr_i", "size/params",
                 "size/bytes_checkpoint", "latency/rtf", "val/loss", "train/loss"):
        assert name in metrics, name
    # the unseen split, scored beside the test split and not the same items
    assert {k.replace("test/", "test_unseen/", 1) for k in metrics if k.startswith("test/")} <= set(metrics)
    assert metrics["test_unseen/items"] == 8 and metrics["test_unseen/si_sdr_noisy"] != metrics["test/si_sdr_noisy"]
    assert metrics["size/params"] > 1000
    assert run.data.params["model.gru_size"] == "32"
    assert run.data.params["env.torch"].startswith("2.11")
    assert run.info.run_name == "rnnoise-none-s1"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"checkpoints", "examples", "config.yaml"} <= artifacts
    (checkpoint,) = client.list_artifacts(run.info.run_id, "checkpoints")
    assert checkpoint.path.endswith(".ckpt") and checkpoint.file_size > 10_000
    examples = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "examples")}
    assert {"example0_noisy.wav", "example0_enhanced.wav", "example0_clean.wav", "example0_spectrogram.png"} <= examples


def test_a_run_of_no_steps_tests_and_logs_the_model_it_starts_from(tiny_run, tmp_path):
    """`init=CKPT trainer.max_steps=0`: a baseline row, e.g. xiph's shipped RNNoise beside its fine-tunings."""
    from speechcompress.train import run

    cfg, trained = tiny_run
    (best,) = (Path(cfg.paths.experiments_dir) / "runs" / "rnnoise").glob("*/checkpoints/best-*.ckpt")
    baseline = compose_config(["+experiment=rnnoise", *TINY, f"+init={best}", "trainer.max_steps=0",
                               *sandbox_overrides(tmp_path), f"paths.data_dir={cfg.paths.data_dir}"])
    metrics = run(baseline)
    assert metrics["test/si_sdr"] == pytest.approx(trained["test/si_sdr"], abs=1e-4)
    assert metrics["test/pesq"] == pytest.approx(trained["test/pesq"], abs=1e-4)
    client = MlflowClient(baseline.logger.tracking_uri)
    (logged,) = client.search_runs([client.get_experiment_by_name("rnnoise").experiment_id])
    assert logged.info.run_name == f"rnnoise-from-{best.stem}-none-0steps"
    assert [a.path for a in client.list_artifacts(logged.info.run_id, "checkpoints")] == ["checkpoints/start.ckpt"]


def test_resume_continues_the_same_mlflow_run(tiny_run, tmp_path):
    from speechcompress.train import run

    cfg, _ = tiny_run
    runs_dir = Path(cfg.paths.experiments_dir) / "runs" / "rnnoise"
    (last,) = runs_dir.glob("*/checkpoints/last.ckpt")
    client = MlflowClient(cfg.logger.tracking_uri)
    (before,) = client.search_runs([client.get_experiment_by_name("rnnoise").experiment_id])
    overrides = [o for o in TINY if not o.startswith("trainer.max_steps")]
    resumed = compose_config(["+experiment=rnnoise", *overrides, "trainer.max_steps=330", f"resume={last}",
                              *sandbox_overrides(Path(cfg.paths.experiments_dir).parent)])
    run(resumed)
    (after,) = client.search_runs([client.get_experiment_by_name("rnnoise").experiment_id])
    assert after.info.run_id == before.info.run_id
    steps = [m.step for m in client.get_metric_history(after.info.run_id, "train/loss")]
    assert max(steps) >= 320 and not list(runs_dir.glob("*/checkpoints/*.tmp"))


def test_last_ckpt_is_the_runs_last_step_and_best_the_best_validation(tiny_run, tmp_path):
    """40 steps validated at 30: last.ckpt, which `resume=auto` continues, holds step 40 (Lightning's
    own save_last kept step 30, the last new best); the run is judged by best-30."""
    from speechcompress.train import run

    cfg, _ = tiny_run
    overrides = [o for o in TINY if not o.startswith(("trainer.max_steps", "trainer.val_check_interval"))]
    run(compose_config(["+experiment=rnnoise", *overrides, "trainer.max_steps=40", "trainer.val_check_interval=30",
                        *sandbox_overrides(tmp_path), f"paths.data_dir={cfg.paths.data_dir}"]))
    checkpoints = next((tmp_path / "experiments" / "runs" / "rnnoise").glob("*/checkpoints"))
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best-30.ckpt", "last.ckpt"]
    assert read_checkpoint(checkpoints / "last.ckpt")["global_step"] == 40


def test_the_progress_bar_counts_steps_out_of_max_steps_across_epochs(tmp_path, capsys):
    """Step-based runs have no epoch limit: the bar counts optimizer steps out of max_steps, on
    through epochs of 4 batches, and says so (not `Epoch 1`)."""
    import pytorch_lightning as pl
    from pytorch_lightning.demos.boring_classes import BoringModel, RandomDataset
    from torch.utils.data import DataLoader

    from speechcompress.stages.progress import StepProgressBar

    class FourBatches(BoringModel):
        def train_dataloader(self):
            return DataLoader(RandomDataset(32, 8), batch_size=2)

    trainer = pl.Trainer(max_steps=10, max_epochs=-1, logger=False, enable_checkpointing=False,
                         enable_model_summary=False, limit_val_batches=0, callbacks=[StepProgressBar()],
                         default_root_dir=tmp_path)
    trainer.fit(FourBatches())
    shown = capsys.readouterr().out  # Lightning writes its bars to stdout
    assert trainer.current_epoch >= 2 and "steps: 100%" in shown and "10/10" in shown, shown[-500:]
    assert "Epoch" not in shown
