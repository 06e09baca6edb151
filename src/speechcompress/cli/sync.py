"""send a run's MLflow writes that its tracking server missed (RUN/mlflow_outbox.jsonl)"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="the run's folder (experiments/runs/NAME/TIME), which holds mlflow_outbox.jsonl")
    p.add_argument("--wait", type=float, default=600.0, help="seconds to keep trying while the server is away")


def run(args: argparse.Namespace) -> int:
    from speechcompress.run_layout import RunFolder
    from speechcompress.tracking.mlflow import check_reachable
    from speechcompress.tracking.outbox import pending, sync

    folder = RunFolder(Path(args.run_dir))
    if not folder.root.is_dir():
        raise FileNotFoundError(f"no run folder {folder.root}: pass experiments/runs/NAME/TIME of the run")
    waiting = pending(folder.outbox)
    if not waiting:
        print(f"{folder.root}: nothing waits to be sent (no undelivered writes in {folder.outbox.name})")
        return 0
    check_reachable(waiting[0]["uri"])  # fails in seconds, naming the server, rather than waiting
    sent, left = sync(folder.outbox, wait=args.wait)
    print(f"sent {sent} MLflow writes to {waiting[0]['uri']}" + (f"; {left} still wait (run sync again)" if left else ""))
    return 1 if left else 0
