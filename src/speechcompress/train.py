"""One run, as its stages (`speechcompress.stages`):

    Hydra config → plan (every refusal, nothing written) → fit_and_test → measure → deploy → report
"""

from __future__ import annotations

from omegaconf import DictConfig

from speechcompress.stages.deploy import deploy
from speechcompress.stages.fit import fit_and_test
from speechcompress.stages.measure import measure
from speechcompress.stages.plan import plan
from speechcompress.stages.report import report


def run(cfg: DictConfig) -> dict[str, float]:
    """Train, test, measure, ship and report one recipe; returns the metrics that were logged."""
    planned = plan(cfg)
    fitted = fit_and_test(planned)
    if fitted.logger is None:  # one process measures, ships and reports
        return fitted.metrics
    try:
        measured = measure(fitted.task, cfg.measure, planned.compression)
        datamodule, evaluate = planned.datamodule, cfg.export.get("evaluate", True)  # lossy files on the test split
        deployment = deploy(fitted.task, planned.exporters, planned.folder.export, cfg.measure, evaluate,
                            lambda: datamodule.split_loader("test"), datamodule.train_dataloader)
        return report(planned, fitted, measured, deployment)
    finally:  # every write delivered, or left for `speechcompress sync` when the server stays away
        fitted.logger.close(cfg.logger.wait_for_server_seconds)
