"""`compare --register NAME`: the best recipe under a budget becomes a new version of registered
model NAME, and the alias `champion` moves to it (MLflow's aliases; stages are deprecated).

The champion is the recipe of highest mean quality among the Pareto front's recipes that fit the
budget (`--max-bytes` on the cost, `--max-rtf` on the latency); of its runs (its seeds), the one of
highest quality is registered: its MLflow Model (`runs:/ID/model`) is what ships.
"""

from __future__ import annotations

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from speechcompress.tracking.compare import (
    CHAMPION,
    LATENCY,
    QUALITY_COLUMNS,
    Row,
    RunFigures,
    higher_is_better,
)


def pick_champion(rows: list[Row], metric: str, cost: str, max_bytes: float | None = None,
                  max_rtf: float | None = None) -> tuple[Row, RunFigures]:
    """The recipe and run `register` names (see the module's docstring); a clear error when none fits."""
    if max_bytes is not None and "bytes" not in cost:
        raise ValueError(f"--max-bytes bounds the cost, and --cost {cost} is not a size in bytes: pass a "
                         f"size/bytes_* cost, or leave --max-bytes out")
    fits = [r for r in rows if r.pareto and (max_bytes is None or r.cost <= max_bytes)
            and (max_rtf is None or r.latency <= max_rtf)]
    if not fits:
        front = ", ".join(f"{r.name}: {r.cost:,.0f} bytes, RTF {r.latency:.4f}" for r in rows if r.pareto)
        raise ValueError(f"no Pareto-optimal recipe fits --max-bytes {max_bytes} --max-rtf {max_rtf} "
                         f"(the front: {front}): loosen the budget")
    sign = 1.0 if higher_is_better(metric) else -1.0
    best = max(fits, key=lambda r: sign * r.quality)
    return best, max(best.runs, key=lambda run: sign * run.metrics[metric])


def register(client: MlflowClient, name: str, experiment: str, row: Row, run: RunFigures, metric: str,
             cost: str, budget: dict[str, float | None]) -> ModelVersion:
    """Registers `run`'s MLflow Model as a new version of `name`, tagged with its figures and recipe,
    and moves the alias `champion` to it."""
    if not client.list_artifacts(run.run_id, "model"):
        raise ValueError(f"run {run.name} ({run.run_id}) has no MLflow Model (its `model` artifact): runs log "
                         f"one since speechcompress logs models; train the recipe again")
    try:
        client.create_registered_model(name, description="speechcompress champions, picked by `compare --register`")
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    m = run.metrics
    tags = {"bytes": f"{m[cost]:.0f}", "cost": cost, "rtf": f"{m.get(LATENCY, float('nan')):.5f}",
            metric: f"{m[metric]:.4f}", f"{metric} mean": f"{row.quality:.4f}", "seeds": str(row.n),
            "recipe": row.name, "experiment": experiment, "run_name": run.name,
            **{k: f"{m[k]:.4f}" for k in QUALITY_COLUMNS if k in m},
            **{f"swept.{k}": v for k, v in run.swept.items()},
            **{f"budget.{k}": str(v) for k, v in budget.items() if v is not None}}
    version = client.create_model_version(name, f"runs:/{run.run_id}/model", run_id=run.run_id, tags=tags,
                                          description=f"{row.name} of {experiment}: best {metric} on the Pareto "
                                                      f"front within the budget")
    client.set_registered_model_alias(name, CHAMPION, version.version)
    return version
