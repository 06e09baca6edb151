"""post-training weight clustering: 2^bits shared values per tensor"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--bits", type=int, default=4, help="bits per index: 2^bits shared values per weight tensor")
    p.add_argument("--out", required=True, help="the clustered checkpoint to write")
    p.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    from speechcompress.checkpoints import load_task, save_task
    from speechcompress.compression.cluster import cluster_weights, clustered_size
    from speechcompress.compression.size import size_report

    task = load_task(args.checkpoint, args.device)
    dense = size_report(task.model)["size/bytes_dense_fp32"]
    cluster_weights(task.model, args.bits)
    save_task(task, args.out)
    print(f"every weight tensor now holds at most {2**args.bits} distinct non-zero values; encoded "
          f"{clustered_size(task.model, args.bits):,} bytes (codebooks, {args.bits}-bit indices, non-zero bitmaps; "
          f"biases fp32) against {int(dense):,} dense fp32; wrote {args.out}")
    return 0
