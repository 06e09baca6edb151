"""The last stage: the run's figures, files and examples into its MLflow run, and its summary on screen."""

from __future__ import annotations

from pathlib import Path

from speechcompress.compression.size import tensor_sizes, write_size_csv
from speechcompress.stages.deploy import Deployment
from speechcompress.stages.fit import Fitted
from speechcompress.stages.plan import Plan
from speechcompress.tracking.mlflow import SIZE, log_lineage
from speechcompress.tracking.model import SHIPPED_TAG, save_model
from speechcompress.tracking.summary import summary


def report(plan: Plan, fitted: Fitted, measured: dict[str, float], deployment: Deployment) -> dict[str, float]:
    """Logs what the Trainer did not (the measured and deployed figures; the config, size table,
    checkpoint, exported files and examples as artifacts), prints the summary; returns every figure."""
    folder, task = plan.folder, fitted.task
    client, run_id = fitted.logger.experiment, fitted.logger.run_id
    figures = fitted.figures | measured | deployment.metrics
    if task.model.size_metric in figures:  # absent when the run exported nothing (export=none)
        figures[SIZE] = figures[task.model.size_metric]
    if deployment.files:
        client.log_artifacts(run_id, str(folder.export), "export")  # FSMN-VAD's funasr/ folder too
    fitted.logger.log_metrics(figures, step=fitted.step)
    client.log_artifact(run_id, str(folder.config))
    client.log_artifact(run_id, str(write_size_csv(tensor_sizes(task.model), folder.size_table)))
    client.log_artifact(run_id, fitted.checkpoint, "checkpoints")
    log_model(client, run_id, plan.folder, task, deployment, fitted.checkpoint)
    log_lineage(client, run_id, plan.datamodule)
    log_corpus_report(client, run_id, plan.cfg, plan.folder)
    for path in task.write_examples(folder.examples):
        client.log_artifact(run_id, str(path), "examples")
    metrics = fitted.metrics | figures
    print(summary(plan.cfg, task.summary_lines(metrics), task.headline, metrics, fitted.checkpoint,
                  (fitted.logger.experiment_id, run_id), deployment.files, task.device.type))
    return metrics


def log_corpus_report(client, run_id: str, cfg, folder) -> None:
    """The real corpus's report (its table and spectrogram sheet) as the run's `corpus_report`
    artifacts, when `logger.corpus_report` asks and the corpus is fetched."""
    from speechcompress.data.corpus_report import fetched_sources, write_report
    from speechcompress.data.real import CorpusMissing

    real = cfg.data.get("real")
    if not cfg.logger.get("corpus_report") or not real:
        return
    try:
        sources = fetched_sources(real.root)
    except CorpusMissing as missing:
        print(f"{missing}; no corpus report this run")
        return
    write_report(sources, folder.corpus_report, 40, str(real.root))
    client.log_artifacts(run_id, str(folder.corpus_report), "corpus_report")


def log_model(client, run_id: str, folder, task, deployment: Deployment, checkpoint: str) -> None:
    """The run's MLflow Model (`tracking.model`) over the file it ships, as its `model` artifact."""
    shipped = deployment.shipped
    path, fmt, key = (shipped.path, shipped.fmt, shipped.key) if shipped else (Path(checkpoint), None, "checkpoint")
    save_model(folder.mlflow_model, path, task.kind, fmt, task.sample_rate)
    client.log_artifacts(run_id, str(folder.mlflow_model), "model")
    client.set_tag(run_id, SHIPPED_TAG, key)
