"""recipes of an experiment side by side (seeds grouped): table, Pareto front, plot; --register a champion"""

from __future__ import annotations

import argparse
from pathlib import Path

from speechcompress.cli.files import TRACKING_HELP


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--experiment", required=True, help="the MLflow experiment (the +experiment name)")
    p.add_argument("--sweep", help="one sweep's id (its folder under experiments/multiruns/NAME/); "
                                   "default: the newest sweep, or every run when the experiment has none")
    p.add_argument("--metric", default="test/pesq", help="quality, e.g. test/pesq, test/si_sdr, test/f1")
    p.add_argument("--cost", default="size/bytes", help="cost: size/bytes (default: the bytes each model family "
                                                         "is judged by, its `size_metric`), or any figure a run "
                                                         "logged, e.g. size/bytes_onnx_int8, size/params")
    p.add_argument("--all", action="store_true", help="print every quality and deploy/* figure "
                                                      "(default: the headline figures of each test split)")
    p.add_argument("--out", help="folder for NAME.md and NAME.png (default: experiments/reports)")
    p.add_argument("--register", metavar="NAME", help="register the best recipe within the budget as a new version "
                                                      "of registered model NAME, and move its alias `champion` there")
    p.add_argument("--max-bytes", type=float, help="with --register: the largest cost (--cost) allowed")
    p.add_argument("--max-rtf", type=float, help="with --register: the largest real-time factor allowed")
    p.add_argument("--tracking-uri", help=TRACKING_HELP)


def run(args: argparse.Namespace) -> int:
    from mlflow.tracking import MlflowClient

    from speechcompress.config import PROJECT_ROOT, tracking_uri
    from speechcompress.tracking import compare as report
    from speechcompress.tracking.model_registry import pick_champion, register

    if (args.max_bytes is not None or args.max_rtf is not None) and not args.register:
        raise ValueError("--max-bytes and --max-rtf are budgets for --register NAME: add it, or leave them out")
    client = MlflowClient(tracking_uri(args.tracking_uri))
    out = Path(args.out) if args.out else PROJECT_ROOT / "experiments" / "reports"
    written = report.write_report(client, args.experiment, args.sweep, args.metric, args.cost, out, args.all)
    print(written.text)
    print(f"wrote {out / args.experiment}.md and .png")
    if written.parent is not None:
        for suffix in (".md", ".png"):
            client.log_artifact(written.parent.info.run_id, str(out / f"{args.experiment}{suffix}"), "reports")
        print(f"logged both to the sweep's MLflow parent run {written.parent.info.run_id}")
    if args.register:
        row, chosen = pick_champion(written.rows, args.metric, args.cost, args.max_bytes, args.max_rtf)
        version = register(client, args.register, args.experiment, row, chosen, args.metric, args.cost,
                           {"max_bytes": args.max_bytes, "max_rtf": args.max_rtf})
        print(f"registered {chosen.name} ({chosen.run_id}) as {args.register} version {version.version}, "
              f"alias @{report.CHAMPION}: {args.metric} {chosen.metrics[args.metric]:.3f} (recipe mean "
              f"{row.quality:.3f}, n={row.n}), {chosen.metrics[args.cost]:,.0f} bytes; run it with "
              f"`speechcompress enhance --model models:/{args.register}@{report.CHAMPION} IN OUT` (or vad)")
    return 0
