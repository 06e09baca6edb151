"""runs of an experiment side by side: table, Pareto front, plot"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--experiment", required=True, help="the MLflow experiment (the +experiment name)")
    p.add_argument("--sweep", help="one sweep's id (its folder under experiments/multiruns/NAME/); "
                                   "default: the newest sweep, or every run when the experiment has none")
    p.add_argument("--metric", default="test/pesq", help="quality, e.g. test/pesq, test/si_sdr, test/f1")
    p.add_argument("--cost", default="size/bytes_sparse", help="cost, e.g. size/bytes_sparse, size/params")
    p.add_argument("--out", help="folder for NAME.md and NAME.png (default: experiments/reports)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or experiments/mlflow.db)")


def run(args: argparse.Namespace) -> int:
    from mlflow.tracking import MlflowClient

    from speechcompress.config import PROJECT_ROOT, tracking_uri
    from speechcompress.tracking import compare as report

    client = MlflowClient(tracking_uri(args.tracking_uri))
    out = Path(args.out) if args.out else PROJECT_ROOT / "experiments" / "reports"
    text, parent = report.write_report(client, args.experiment, args.sweep, args.metric, args.cost, out)
    print(text)
    print(f"wrote {out / args.experiment}.md and .png")
    if parent is not None:
        for suffix in (".md", ".png"):
            client.log_artifact(parent.info.run_id, str(out / f"{args.experiment}{suffix}"), "reports")
        print(f"logged both to the sweep's MLflow parent run {parent.info.run_id}")
    return 0
