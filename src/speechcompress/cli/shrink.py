"""rebuild a model without its pruned channels: fewer parameters, same outputs"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="a .ckpt whose structured pruning left channels all zero")
    p.add_argument("--out", required=True, help="the smaller checkpoint to write")
    p.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    from speechcompress.checkpoints import load_task, save_task
    from speechcompress.compression.size import size_report
    from speechcompress.compression.structured import channel_groups, shrink_task

    task = load_task(args.checkpoint, args.device)
    smaller, difference = shrink_task(task)
    save_task(smaller, args.out)
    before, after = size_report(task.model), size_report(smaller.model)
    print(f"{'group':<12}{'channels':>10}{'kept':>8}")
    kept = {g.name: g.size for g in channel_groups(smaller.model)}
    for group in channel_groups(task.model):
        print(f"{group.name:<12}{group.size:>10}{kept[group.name]:>8}")
    print(f"parameters {int(before['size/params']):,} → {int(after['size/params']):,}; weights "
          f"{int(before['size/bytes_checkpoint']):,} → {int(after['size/bytes_checkpoint']):,} bytes; xiph's int8 export "
          f"{int(before['size/bytes_sparse_int8']):,} → {int(after['size/bytes_sparse_int8']):,} bytes")
    print(f"outputs differ from the masked model by at most {difference:.1e}; wrote {args.out}")
    return 0
