"""score a checkpoint or an exported denoiser on paired noisy/clean folders (JSON out)"""

from __future__ import annotations

import argparse
import json
import sys

from speechcompress.cli.files import model_arguments, open_source, window_arguments, windows


def add_arguments(p: argparse.ArgumentParser) -> None:
    model_arguments(p, "a .ckpt written by train.py, or a file `export` wrote")
    p.add_argument("--noisy", required=True, help="folder of noisy files")
    p.add_argument("--clean", required=True, help="folder of clean files with the same names")
    p.add_argument("--mlflow-run", help="also log the scores as eval/* metrics to this MLflow run id")
    window_arguments(p)


def run(args: argparse.Namespace) -> int:
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from speechcompress.data.folders import PairedFolderDataset
    from speechcompress.data.mixing import pad_collate
    from speechcompress.evaluation.speech_quality import MEASURES, scored_in_workers
    from speechcompress.tasks.denoise import score_denoiser

    task = open_source(args, "denoiser")
    pairs = DataLoader(PairedFolderDataset(args.noisy, args.clean, task.sample_rate), batch_size=1,
                       collate_fn=pad_collate)
    with scored_in_workers():
        summary = score_denoiser(task.model, tqdm(pairs, desc="evaluating", unit="file"), windows(task, args),
                                 task.sample_rate, with_noisy=True)
    print(json.dumps({"enhanced": {name: summary[name] for name in (*MEASURES, "si_sdr_i")},
                      "noisy": {name: summary[f"{name}_noisy"] for name in MEASURES} | {"si_sdr_i": 0.0},
                      "items": int(summary["items"]), "pesq_errors": int(summary["pesq_errors"]),
                      "pesq_errors_noisy": int(summary["pesq_errors_noisy"]), "checkpoint": str(args.checkpoint or args.model)},
                     indent=2))
    if args.mlflow_run:
        from mlflow.tracking import MlflowClient

        from speechcompress.config import tracking_uri

        client = MlflowClient(tracking_uri(args.tracking_uri))
        for name, value in summary.items():
            client.log_metric(args.mlflow_run, f"eval/{name}", value)
        print(f"logged eval/* metrics to MLflow run {args.mlflow_run}", file=sys.stderr)
    return 0
