"""`speechcompress compare`: the runs of an experiment side by side, the Pareto-optimal ones marked.

A run is Pareto-optimal when no other run is at least as good in quality and at least as small in
cost, and strictly better in one of them. The report is a Markdown table and a plot (quality
against deployable bytes, log-scaled; point area proportional to latency; the Pareto front drawn),
written to experiments/reports/NAME.{md,png} and logged to the sweep's parent run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from speechcompress.files import atomic_path
from speechcompress.tracking.sweep import ROLE_TAG, SWEEP_TAG

LOWER_IS_BETTER = {f"{split}/{name}" for split in ("test", "test_unseen", "test_real")
                   for name in ("dcf", "noise_false_alarm", "false_alarms_per_hour")} | {"val/loss"}
QUALITY_COLUMNS = ("test/pesq", "test/stoi", "test/si_sdr", "test/f1", "test/auc", "test/dcf", "test/noise_false_alarm",
                   "test_unseen/pesq", "test_unseen/f1", "test_unseen/noise_false_alarm",  # the seen-to-unseen gap
                   "test_real/pesq", "test_real/stoi", "test_real/f1", "test_real/noise_false_alarm")  # real voices
LATENCY = "latency/rtf"
BASELINE_ROLE = "baseline"  # the role tag of `speechcompress baseline` runs: shipped models, not recipes
LABELS = {
    "test/pesq": "PESQ-wb (MOS-LQO)", "test/stoi": "STOI", "test/si_sdr": "SI-SDR (dB)", "test/f1": "frame F1",
    "test/auc": "AUC", "test/dcf": "DCF", "size/bytes_sparse": "deployable size, xiph's block-sparse layout",
    "size/bytes_sparse_int8": "deployable size, block-sparse int8", "size/params": "parameters",
    "size/nonzero": "non-zero parameters",
}


@dataclass
class Row:
    run_id: str
    name: str
    swept: dict[str, str]
    cost: float
    quality: float
    latency: float
    metrics: dict[str, float] = field(default_factory=dict)
    pareto: bool = False


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def pareto_flags(points: list[tuple[float, float]], higher: bool = True) -> list[bool]:
    """For (cost, quality) points: True where no other point dominates (cost ≤, quality at least as
    good, one of them strictly)."""
    sign = 1.0 if higher else -1.0
    flags = []
    for i, (cost, quality) in enumerate(points):
        dominated = any(
            c <= cost and sign * q >= sign * quality and (c < cost or sign * q > sign * quality)
            for j, (c, q) in enumerate(points) if j != i)
        flags.append(not dominated)
    return flags


def find_parent(client: MlflowClient, experiment_id: str, sweep: str | None) -> Run | None:
    """The parent run of sweep `sweep`, or of the newest sweep of the experiment when None."""
    query = f"tags.`{ROLE_TAG}` = 'parent'" + (f" and tags.`{SWEEP_TAG}` = '{sweep}'" if sweep else "")
    parents = client.search_runs([experiment_id], query, order_by=["attributes.start_time DESC"], max_results=1)
    return parents[0] if parents else None


def collect(client: MlflowClient, experiment: str, sweep: str | None, metric: str,
            cost: str) -> tuple[list[Row], Run | None, list[str]]:
    """The finished runs of `experiment` (of one sweep: `sweep`, else the newest one if the
    experiment has sweeps, else every run) that logged `metric` and `cost`; the sweep's parent run;
    and a note for each run left out."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = ", ".join(sorted(e.name for e in client.search_experiments())) or "none"
        raise ValueError(f"no MLflow experiment named {experiment!r} in this store (experiments: {names})")
    parent = find_parent(client, found.experiment_id, sweep)
    if sweep and parent is None:
        raise ValueError(f"experiment {experiment!r} has no sweep {sweep!r}: the sweep id is the name of its "
                         f"folder under experiments/multiruns/{experiment}/")
    query = f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'" if parent else ""
    swept_keys = [k.removeprefix("sweep.") for k in (parent.data.params if parent else {}) if k != "sweep.dir"]
    rows, skipped = [], []
    for run in client.search_runs([found.experiment_id], query, order_by=["attributes.start_time ASC"]):
        if run.data.tags.get(ROLE_TAG) in ("parent", BASELINE_ROLE):
            continue
        m = run.data.metrics
        if run.info.status != "FINISHED" or metric not in m or cost not in m:
            skipped.append(f"{run.info.run_name} ({run.info.run_id[:8]}): {run.info.status.lower()}, "
                           f"{'has' if metric in m else 'no'} {metric}, {'has' if cost in m else 'no'} {cost}")
            continue
        shown = {k: m[k] for k in (*QUALITY_COLUMNS, *sorted(k for k in m if k.startswith("deploy/"))) if k in m}
        rows.append(Row(run.info.run_id, run.info.run_name, {k: run.data.params.get(k, "") for k in swept_keys},
                        m[cost], m[metric], m.get(LATENCY, math.nan), shown))
    for row, flag in zip(rows, pareto_flags([(r.cost, r.quality) for r in rows], higher_is_better(metric)), strict=True):
        row.pareto = flag
    return rows, parent, skipped


def shipped_models(client: MlflowClient, experiment: str) -> list[Row]:
    """The experiment's `speechcompress baseline` runs (the models users ship today, scored on the
    same splits), the newest run of each name; they have quality, not our costs."""
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], f"tags.`{ROLE_TAG}` = '{BASELINE_ROLE}'",
                              order_by=["attributes.start_time DESC"]) if found else []
    newest = {run.info.run_name: run for run in reversed(runs) if run.info.status == "FINISHED"}
    return [Row(run.info.run_id, name, {}, math.nan, math.nan, math.nan,
                {k: run.data.metrics[k] for k in QUALITY_COLUMNS if k in run.data.metrics})
            for name, run in sorted(newest.items())]


def markdown(experiment: str, rows: list[Row], metric: str, cost: str, parent: Run | None,
             skipped: list[str], shipped: list[Row] = ()) -> str:
    swept = list(rows[0].swept) if rows else []
    quality = [k for k in (*QUALITY_COLUMNS, *sorted({k for r in rows for k in r.metrics if k.startswith("deploy/")}))
               if any(k in r.metrics for r in rows)]
    header = ["Pareto", "run", *swept, f"{cost}" + (" (bytes)" if "bytes" in cost else ""),
              "latency (ms per s of audio)", *quality]
    lines = [f"# {experiment}: {metric} against {cost}", ""]
    if parent is not None:
        lines += [f"Sweep `{parent.data.tags.get(SWEEP_TAG)}`, MLflow parent run `{parent.info.run_id}`.", ""]
    better = "higher" if higher_is_better(metric) else "lower"
    lines += [f"★ marks the Pareto-optimal runs: no other run has a {better} {metric} at no more {cost}.", "",
              "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in sorted(rows, key=lambda r: r.cost):
        cells = ["★" if r.pareto else "", r.name, *(r.swept[k] for k in swept), f"{r.cost:,.0f}",
                 f"{1000 * r.latency:.1f}", *(f"{r.metrics[k]:.3f}" if k in r.metrics else "" for k in quality)]
        lines.append("| " + " | ".join(cells) + " |")
    if shipped:
        columns = [k for k in QUALITY_COLUMNS if any(k in r.metrics for r in shipped)]
        lines += ["", "Shipped models on the same splits (`speechcompress baseline`):", "",
                  "| run | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
        lines += ["| " + " | ".join([r.name, *(f"{r.metrics[k]:.3f}" if k in r.metrics else "" for k in columns)]) + " |"
                  for r in shipped]
    if skipped:
        lines += ["", "Left out:", *(f"- {s}" for s in skipped)]
    return "\n".join(lines) + "\n"


def plot(experiment: str, rows: list[Row], metric: str, cost: str, target: Path | BinaryIO) -> None:
    """The report's figure, as PNG, to a path or an open binary file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    latencies = [r.latency for r in rows if math.isfinite(r.latency)]
    largest = max(latencies, default=1.0) or 1.0
    for r in rows:
        area = 300 * (r.latency / largest if math.isfinite(r.latency) else 0.1)
        ax.scatter(r.cost, r.quality, s=area, alpha=0.6, color="tab:red" if r.pareto else "tab:blue",
                   edgecolors="black", linewidths=0.5, zorder=3)
        label = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in r.swept.items()) or r.name
        ax.annotate(label, (r.cost, r.quality), textcoords="offset points", xytext=(6, 4), fontsize=8)
    front = sorted((r for r in rows if r.pareto), key=lambda r: r.cost)
    if front:
        ax.step([r.cost for r in front], [r.quality for r in front], where="post", color="tab:red",
                linewidth=1.2, label="Pareto front", zorder=2)
    ax.scatter([], [], s=60, color="tab:red", alpha=0.6, label="Pareto-optimal run")
    if not all(r.pareto for r in rows):
        ax.scatter([], [], s=60, color="tab:blue", alpha=0.6, label="dominated run")
    ax.scatter([], [], s=300, color="gray", alpha=0.4,
               label=f"area ∝ latency (largest {1000 * largest:.1f} ms per s of audio)")
    ax.set_xscale("log")
    ax.margins(x=0.15, y=0.12)
    if "bytes" in cost:  # readable sizes on every tick of the log axis
        from matplotlib.ticker import FuncFormatter

        def size(value: float, _) -> str:
            return f"{value / 1e6:g} MB" if value >= 1e6 else f"{value / 1e3:g} kB"

        ax.xaxis.set_major_formatter(FuncFormatter(size))
        ax.xaxis.set_minor_formatter(FuncFormatter(size))
        ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel(f"{LABELS.get(cost, cost)}, log scale")
    ax.set_ylabel(LABELS.get(metric, metric) + (" ↑" if higher_is_better(metric) else " ↓"))
    ax.set_title(f"{experiment}: {metric} against {cost}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(target, dpi=120, format="png")
    plt.close(fig)


def write_report(client: MlflowClient, experiment: str, sweep: str | None, metric: str, cost: str,
                 out: Path) -> tuple[str, Run | None]:
    """Collects the runs, writes out/EXPERIMENT.md (table and front) and .png (the plot); returns
    the markdown and the sweep's parent run (None when the runs are not one sweep's)."""
    rows, parent, skipped = collect(client, experiment, sweep, metric, cost)
    if not rows:
        raise ValueError(f"no finished run of {experiment!r} logged both {metric} and {cost}"
                         + "".join(f"\n  {s}" for s in skipped))
    text = markdown(experiment, rows, metric, cost, parent, skipped, shipped_models(client, experiment))
    with atomic_path(out / f"{experiment}.md") as partial:
        partial.write_text(text + f"\n![{experiment}]({experiment}.png)\n")
    with atomic_path(out / f"{experiment}.png") as partial, partial.open("wb") as handle:
        plot(experiment, rows, metric, cost, handle)
    return text, parent
