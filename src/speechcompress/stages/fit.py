"""The second stage: the Trainer fits the planned task, then tests the model the run is judged by."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import OmegaConf
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from speechcompress.checkpoints import AtomicCheckpointIO, save_task
from speechcompress.compression.structured import shrink_task
from speechcompress.evaluation.speech_quality import noisy_scores_folder, scored_in_workers
from speechcompress.interruption import BestAndLastCheckpoint, SaveOnSignal, slurm_plugins
from speechcompress.stages.plan import Plan
from speechcompress.stages.progress import StepProgressBar
from speechcompress.stages.throughput import Throughput
from speechcompress.tasks.base import SpeechTask
from speechcompress.tracking.logger import RunLogger, build_logger
from speechcompress.tracking.mlflow import RunIdInCheckpoint, log_config

SIGNALLED_WAIT = 5.0  # seconds a signalled run waits for an absent MLflow server before it exits


@dataclass
class Fitted:
    task: SpeechTask  # the model that was tested (the shrunk one when `compression.shrink`)
    metrics: dict[str, float]  # every test split's figures (logged by the Trainer)
    figures: dict[str, float]  # figures of this stage for the report to log (the shrink's)
    checkpoint: str  # the checkpoint the run is judged by
    logger: RunLogger | None  # None on the processes that do not log (DDP ranks > 0)
    step: int  # the optimizer steps taken


def fit_and_test(plan: Plan) -> Fitted:
    """Writes the run folder's config, fits (continuing `plan.resume_path`), exits on a signal once
    last.ckpt is saved, and tests the best checkpoint (or the final model, see `_result_checkpoint`)."""
    plan.folder.root.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(plan.cfg, plan.folder.config, resolve=True)  # first: tools like `sensitivity` find it beside any checkpoint
    checkpoint = BestAndLastCheckpoint(dirpath=plan.folder.checkpoints, filename="best-{step}", monitor="val/loss",
                                       mode="min", save_top_k=1, auto_insert_metric_name=False)
    # One process logs. Under SLURM every rank starts at once, and MLflow's client creates a missing
    # SQLite store's tables as it opens it: two ranks doing so together race (one dies).
    logger = build_logger(plan.cfg, plan.folder.outbox, plan.resume_run_id) if rank_zero_only.rank == 0 else None
    if logger and plan.resume_run_id is None:
        log_config(logger, plan.cfg)
    interruption = SaveOnSignal(plan.folder.last_checkpoint)
    progress = [StepProgressBar()] if plan.cfg.trainer.get("enable_progress_bar", True) else []
    trainer = pl.Trainer(**plan.cfg.trainer, logger=logger or False,
                         callbacks=[checkpoint, RunIdInCheckpoint(), interruption, Throughput(), *progress,
                                    *plan.compression],
                         plugins=[AtomicCheckpointIO(), *slurm_plugins()], default_root_dir=str(plan.folder.root))
    resume = str(plan.resume_path) if plan.resume_path else None
    try:
        trainer.fit(plan.task, datamodule=plan.datamodule, ckpt_path=resume, weights_only=True)
        if interruption.saved_step is not None and logger:  # a job told to stop has seconds, not minutes
            logger.close(min(SIGNALLED_WAIT, plan.cfg.logger.wait_for_server_seconds))
        interruption.exit_if_interrupted()
        task, metrics, figures, result = _test(trainer, plan, _result_checkpoint(trainer, checkpoint, plan))
    except Exception:
        if logger:  # what the run logged before it failed still reaches the server (or the outbox's journal)
            logger.close(plan.cfg.logger.wait_for_server_seconds)
        raise
    return Fitted(task, metrics, figures, result, logger if trainer.is_global_zero else None, trainer.global_step)


def _test(trainer: pl.Trainer, plan: Plan, result: str
          ) -> tuple[SpeechTask, dict[str, float], dict[str, float], str]:
    """Every test split's figures of the result; with `compression.shrink`, of the model rebuilt
    without its pruned channels (saved as final-shrunk.ckpt), which is then what ships."""
    task, measured, weights = plan.task, {}, result
    if plan.cfg.compression.get("shrink"):  # test, measure and ship the rebuilt model, not the masked one
        params_before = sum(p.numel() for p in task.model.parameters())
        task, difference = shrink_task(task)
        result = str(Path(result).with_name("final-shrunk.ckpt"))
        if trainer.is_global_zero:
            save_task(task, result)
        measured = {"shrink/params_before": float(params_before), "shrink/max_abs_difference": difference}
        weights = None  # the rebuilt model is tested as it is
    with scored_in_workers(noisy_cache=noisy_scores_folder(plan.cfg.paths.data_dir)):
        test_metrics = trainer.test(task, datamodule=plan.datamodule, ckpt_path=weights, verbose=False,
                                    weights_only=True)
    # one dict per test split; the splits' figures are logged under their own prefixes
    return task, {k: float(v) for split in test_metrics for k, v in split.items()}, measured, result


def _result_checkpoint(trainer: pl.Trainer, checkpoint: BestAndLastCheckpoint, plan: Plan) -> str:
    """The checkpoint a run is judged by: the best by val/loss, or with masks on, the final model;
    after no steps at all (a baseline run), the model it started from.

    A sparsified, pruned or clustered model is only finished once its schedule is (such callbacks
    say `final_model_only`); an earlier "best" checkpoint would be denser than the recipe, or not
    clustered, and report the wrong size. Callbacks that only add to the loss (distillation, group
    lasso) leave the best checkpoint a fair pick.
    """
    if trainer.global_step == 0:  # trainer.max_steps=0: the starting model (init=) is tested as it is
        start = Path(checkpoint.dirpath) / "start.ckpt"
        trainer.save_checkpoint(start)
        return str(start)
    if any(callback.final_model_only for callback in plan.compression):
        final = Path(checkpoint.dirpath) / "final.ckpt"
        trainer.save_checkpoint(final)
        return str(final)
    return checkpoint.best_model_path or str(checkpoint.last_path)
