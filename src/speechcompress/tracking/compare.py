"""`speechcompress compare`: the recipes of an experiment side by side, the Pareto-optimal ones marked,
and with `--register` the best one under a budget made the registry's champion.

Runs of a sweep that differ only by `seed` are one recipe: one row, their mean ± standard deviation
and their number n; the Pareto front is computed on the means. A recipe is Pareto-optimal when no
other is at least as good in quality and at least as small in cost, and strictly better in one.
The report is a Markdown table and a plot (quality against cost, log-scaled, with the seeds'
standard deviation as error bars; point area proportional to latency; the front drawn), written to
experiments/reports/NAME.{md,png} and logged to the sweep's parent run.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from speechcompress.atomic_files import atomic_path
from speechcompress.test_splits import REAL, TEST, TEST_SPLITS, UNSEEN
from speechcompress.tracking.mlflow import SWEEP_TAG
from speechcompress.tracking.model import SHIPPED_TAG
from speechcompress.tracking.sweep import ROLE_TAG

LOWER_IS_BETTER = {f"{split}/{name}" for split in TEST_SPLITS
                   for name in ("dcf", "noise_false_alarm", "false_alarms_per_hour")} | {"val/loss"}
QUALITY_COLUMNS = (*(f"{TEST}/{name}" for name in ("pesq", "stoi", "si_sdr", "f1", "auc", "dcf", "noise_false_alarm")),
                   *(f"{UNSEEN}/{name}" for name in ("pesq", "f1", "noise_false_alarm")),  # the seen-to-unseen gap
                   *(f"{REAL}/{name}" for name in ("pesq", "stoi", "f1", "noise_false_alarm")))  # real voices
COMPANIONS = {"f1": ("noise_false_alarm",)}  # headline figures shown beside a quality metric of that name
LATENCY = "latency/rtf"
SEED = "seed"  # the key whose values a recipe's runs may differ by
SHIPPED_LOSS = "shipped_loss"  # per run: how much quality the shipped file loses against torch
BASELINE_ROLE = "baseline"  # the role tag of `speechcompress baseline` runs: shipped models, not recipes
CHAMPION = "champion"  # the registry alias `compare --register` moves
LABELS = {
    "test/pesq": "PESQ-wb (MOS-LQO)", "test/stoi": "STOI", "test/si_sdr": "SI-SDR (dB)", "test/f1": "frame F1",
    "test/auc": "AUC", "test/dcf": "DCF", "size/bytes": "bytes as the family ships", "size/bytes_sparse": "deployable size, xiph's block-sparse layout",
    "size/bytes_sparse_int8": "deployable size, block-sparse int8", "size/params": "parameters",
    "size/nonzero": "non-zero parameters",
}


@dataclass
class RunFigures:
    """One finished run: its name, swept values (the seed among them) and metrics."""

    run_id: str
    name: str
    swept: dict[str, str]
    metrics: dict[str, float]


@dataclass
class Row:
    """One recipe: the runs that differ only by seed, their means and standard deviations."""

    runs: list[RunFigures]
    swept: dict[str, str]  # without the seed
    cost: float
    quality: float
    latency: float
    means: dict[str, float] = field(default_factory=dict)
    deviations: dict[str, float] = field(default_factory=dict)  # sample standard deviation; 0 for one run
    pareto: bool = False

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def name(self) -> str:
        """The run's name, or for several seeds the first run's with its seeds listed (`...-s{1,2}`)."""
        if self.n == 1:
            return self.runs[0].name
        seeds = ",".join(r.swept.get(SEED, "?") for r in self.runs)
        return re.sub(r"-s\d+$", "", self.runs[0].name) + f"-s{{{seeds}}}"


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


def shipped_loss(metrics: dict[str, float], shipped: str | None, metric: str) -> float:
    """How much `metric` the run's shipped file loses against torch (positive: worse): 0 for a file
    whose parity was checked (lossless), NaN when the file was not scored."""
    name = metric.split("/", 1)[-1]
    if shipped is None or metric not in metrics:
        return math.nan
    if f"deploy/{shipped}/max_abs_difference" in metrics:
        return 0.0
    deployed = metrics.get(f"deploy/{shipped}/{name}", math.nan)
    return (metrics[metric] - deployed) * (1.0 if higher_is_better(metric) else -1.0)


def finished_runs(client: MlflowClient, experiment: str, sweep: str | None, metric: str,
                  cost: str) -> tuple[list[RunFigures], Run | None, list[str]]:
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
    runs, skipped = [], []
    for run in client.search_runs([found.experiment_id], query, order_by=["attributes.start_time ASC"]):
        if run.data.tags.get(ROLE_TAG) in ("parent", BASELINE_ROLE):
            continue
        m = dict(run.data.metrics)
        if run.info.status != "FINISHED" or metric not in m or cost not in m:
            skipped.append(f"{run.info.run_name} ({run.info.run_id[:8]}): {run.info.status.lower()}, "
                           f"{'has' if metric in m else 'no'} {metric}, {'has' if cost in m else 'no'} {cost}")
            continue
        m[SHIPPED_LOSS] = shipped_loss(m, run.data.tags.get(SHIPPED_TAG), metric)
        runs.append(RunFigures(run.info.run_id, run.info.run_name,
                               {k: run.data.params.get(k, "") for k in swept_keys}, m))
    return runs, parent, skipped


def _spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def group_by_seed(runs: list[RunFigures], metric: str, cost: str) -> list[Row]:
    """One row per recipe: runs whose swept values differ only in `seed` (when the seed was swept;
    otherwise one row per run), with mean and standard deviation of every figure; Pareto-marked."""
    groups: dict[tuple, list[RunFigures]] = {}
    for i, run in enumerate(runs):
        key = tuple((k, v) for k, v in run.swept.items() if k != SEED) if SEED in run.swept else (i,)
        groups.setdefault(key, []).append(run)
    rows = []
    for members in groups.values():
        keys = sorted({k for r in members for k in r.metrics})
        values = {k: [r.metrics[k] for r in members if k in r.metrics and math.isfinite(r.metrics[k])] for k in keys}
        means = {k: statistics.fmean(v) for k, v in values.items() if v}
        rows.append(Row(members, {k: v for k, v in members[0].swept.items() if k != SEED}, means[cost], means[metric],
                        means.get(LATENCY, math.nan), means, {k: _spread(v) for k, v in values.items() if v}))
    for row, flag in zip(rows, pareto_flags([(r.cost, r.quality) for r in rows], higher_is_better(metric)), strict=True):
        row.pareto = flag
    return rows


def shipped_models(client: MlflowClient, experiment: str) -> list[RunFigures]:
    """The experiment's `speechcompress baseline` runs (the models users ship today, scored on the
    same splits), the newest run of each name; they have quality, not our costs."""
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], f"tags.`{ROLE_TAG}` = '{BASELINE_ROLE}'",
                              order_by=["attributes.start_time DESC"]) if found else []
    newest = {run.info.run_name: run for run in reversed(runs) if run.info.status == "FINISHED"}
    return [RunFigures(run.info.run_id, name, {}, {k: run.data.metrics[k] for k in QUALITY_COLUMNS
                                                   if k in run.data.metrics})
            for name, run in sorted(newest.items())]


def columns(rows: list[Row], metric: str, everything: bool = False) -> list[str]:
    """The figures a table shows after the swept keys, cost and latency: the headline quality of
    each test split and the shipped file's loss; with `everything`, every quality and deploy/* figure."""
    if everything:
        keys = [*QUALITY_COLUMNS, *sorted({k for r in rows for k in r.means if k.startswith("deploy/")})]
    else:
        name = metric.split("/", 1)[-1]
        keys = [f"{split}/{n}" for split in TEST_SPLITS for n in (name, *COMPANIONS.get(name, ()))] + [SHIPPED_LOSS]
    return [k for k in keys if any(k in r.means for r in rows)]


def _cell(row: Row, key: str, digits: int = 3) -> str:
    if key not in row.means:
        return ""
    mean = f"{row.means[key]:.{digits}f}"
    return f"{mean} ± {row.deviations[key]:.{digits}f}" if row.n > 1 else mean


def markdown(experiment: str, rows: list[Row], metric: str, cost: str, parent: Run | None,
             skipped: list[str], shipped: list[RunFigures] = (), everything: bool = False) -> str:
    swept = list(rows[0].swept) if rows else []
    shown = columns(rows, metric, everything)
    seeds = any(r.n > 1 for r in rows)
    titles = [("shipped file's loss in " + metric.split("/", 1)[-1]) if k == SHIPPED_LOSS else k for k in shown]
    header = ["Pareto", "run", *swept, *(["n"] if seeds else []), f"{cost}" + (" (bytes)" if "bytes" in cost else ""),
              "latency (ms per s of audio)", *titles]
    lines = [f"# {experiment}: {metric} against {cost}", ""]
    if parent is not None:
        lines += [f"Sweep `{parent.data.tags.get(SWEEP_TAG)}`, MLflow parent run `{parent.info.run_id}`.", ""]
    better = "higher" if higher_is_better(metric) else "lower"
    lines += [f"★ marks the Pareto-optimal recipes: no other has a {better} {metric} at no more {cost}"
              + (" (means over the n seeds; ± is their standard deviation)." if seeds else "."), "",
              "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in sorted(rows, key=lambda r: r.cost):
        cells = ["★" if r.pareto else "", r.name, *(r.swept[k] for k in swept), *([str(r.n)] if seeds else []),
                 f"{r.cost:,.0f}", f"{1000 * r.latency:.1f}", *(_cell(r, k) for k in shown)]
        lines.append("| " + " | ".join(cells) + " |")
    if shipped:
        quality = [k for k in QUALITY_COLUMNS if any(k in r.metrics for r in shipped)]
        lines += ["", "Shipped models on the same splits (`speechcompress baseline`):", "",
                  "| run | " + " | ".join(quality) + " |", "|" + "---|" * (len(quality) + 1)]
        lines += ["| " + " | ".join([r.name, *(f"{r.metrics[k]:.3f}" if k in r.metrics else "" for k in quality)]) + " |"
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
        color = "tab:red" if r.pareto else "tab:blue"
        if r.n > 1:  # the seeds' spread
            ax.errorbar(r.cost, r.quality, yerr=r.deviations.get(metric, 0.0), color=color, capsize=3, zorder=2)
        ax.scatter(r.cost, r.quality, s=area, alpha=0.6, color=color, edgecolors="black", linewidths=0.5, zorder=3)
        label = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in r.swept.items()) or r.name
        ax.annotate(label + (f" (n={r.n})" if r.n > 1 else ""), (r.cost, r.quality), textcoords="offset points",
                    xytext=(6, 4), fontsize=8)
    front = sorted((r for r in rows if r.pareto), key=lambda r: r.cost)
    if front:
        ax.step([r.cost for r in front], [r.quality for r in front], where="post", color="tab:red",
                linewidth=1.2, label="Pareto front" + (" (of the means)" if any(r.n > 1 for r in rows) else ""),
                zorder=2)
    _legend_and_axes(ax, rows, metric, cost, experiment, largest)
    fig.tight_layout()
    fig.savefig(target, dpi=120, format="png")
    plt.close(fig)


def _legend_and_axes(ax, rows: list[Row], metric: str, cost: str, experiment: str, largest: float) -> None:
    ax.scatter([], [], s=60, color="tab:red", alpha=0.6, label="Pareto-optimal recipe")
    if not all(r.pareto for r in rows):
        ax.scatter([], [], s=60, color="tab:blue", alpha=0.6, label="dominated recipe")
    ax.scatter([], [], s=300, color="gray", alpha=0.4,
               label=f"area ∝ latency (largest {1000 * largest:.1f} ms per s of audio)")
    if any(r.n > 1 for r in rows):
        ax.errorbar([], [], yerr=[], color="gray", capsize=3, label="± standard deviation over seeds")
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


@dataclass
class Report:
    text: str
    rows: list[Row]
    parent: Run | None  # the sweep's parent run; None when the runs are not one sweep's


def write_report(client: MlflowClient, experiment: str, sweep: str | None, metric: str, cost: str,
                 out: Path, everything: bool = False) -> Report:
    """Collects and groups the runs, writes out/EXPERIMENT.md (table and front) and .png (the plot)."""
    runs, parent, skipped = finished_runs(client, experiment, sweep, metric, cost)
    if not runs:
        raise ValueError(f"no finished run of {experiment!r} logged both {metric} and {cost}"
                         + "".join(f"\n  {s}" for s in skipped))
    rows = group_by_seed(runs, metric, cost)
    text = markdown(experiment, rows, metric, cost, parent, skipped, shipped_models(client, experiment), everything)
    with atomic_path(out / f"{experiment}.md") as partial:
        partial.write_text(text + f"\n![{experiment}]({experiment}.png)\n")
    with atomic_path(out / f"{experiment}.png") as partial, partial.open("wb") as handle:
        plot(experiment, rows, metric, cost, handle)
    return Report(text, rows, parent)
