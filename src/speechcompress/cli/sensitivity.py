"""prune each tensor alone at several ratios; table, plot, ratios"""

from __future__ import annotations

import argparse
from pathlib import Path

from speechcompress.run_layout import RunFolder


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--config", help="the run's config.yaml (default: beside the checkpoints folder)")
    p.add_argument("--ratios", default="0.25,0.5,0.75,0.9", help="comma-separated fractions to prune")
    p.add_argument("--max-batches", type=int, default=8, help="validation batches to average the loss over")
    p.add_argument("--out", help="folder for sensitivity.csv and .png (default: RUN/sensitivity)")
    p.add_argument("--emit-ratios", help="write per-tensor sparsities (YAML) for compression.ratios_file")
    p.add_argument("--tolerance", type=float, default=0.05, help="allowed relative loss increase per tensor")
    p.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    import itertools

    import yaml
    from hydra.utils import instantiate

    from speechcompress.checkpoints import load_task
    from speechcompress.compression import sensitivity as study

    checkpoint = Path(args.checkpoint)
    task = load_task(checkpoint, args.device)
    datamodule = instantiate(RunFolder.of_checkpoint(checkpoint.resolve()).run_config(args.config).data)
    batches = [{k: v.to(args.device) for k, v in batch.items()}
               for batch in itertools.islice(datamodule.val_dataloader(), args.max_batches)]
    ratios = [float(r) for r in args.ratios.split(",")]
    rows = study.sensitivity_analysis(task.model, batches, task.loss, ratios)
    out = Path(args.out) if args.out else RunFolder.of_checkpoint(checkpoint.resolve()).sensitivity
    table, figure = study.write_table(rows, out / "sensitivity.csv"), study.plot(rows, out / "sensitivity.png")
    print(f"{'tensor':<28}" + "".join(f"{r:>9.2f}" for r in ratios) + "   (validation loss increase, %)")
    for name in dict.fromkeys(r["tensor"] for r in rows):
        increases = [r["increase"] for r in rows if r["tensor"] == name and r["ratio"] > 0]
        print(f"{name:<28}" + "".join(f"{100 * v:>9.1f}" for v in increases))
    print(f"wrote {table} and {figure}")
    if args.emit_ratios:
        picked = study.pick_ratios(rows, args.tolerance)
        Path(args.emit_ratios).write_text(yaml.safe_dump(picked, sort_keys=True))
        print(f"wrote per-tensor sparsities within {100 * args.tolerance:.1f} % loss to {args.emit_ratios}; "
              f"use them with compression=prune compression.ratios_file={args.emit_ratios}")
    return 0
