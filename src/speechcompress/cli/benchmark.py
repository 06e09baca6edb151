"""bytes and 1-thread CPU real-time factor of checkpoints and exported files"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", help=".ckpt and exported files, measured side by side in one process")
    p.add_argument("--seconds", type=float, default=10.0, help="seconds of audio per timed pass")
    p.add_argument("--repeats", type=int, default=5, help="timed passes (the median is reported)")
    p.add_argument("--profile", action="store_true", help="also each ONNX file's time per op type")


def run(args: argparse.Namespace) -> int:
    from speechcompress.checkpoints import load_task
    from speechcompress.evaluation.measure import real_time_factor
    from speechcompress.export.registry import load, reader

    print(f"{'file':<48}{'bytes':>12}{'RTF, 1 thread':>15}{'ms per s':>10}")
    for name in args.files:
        model = load(name, threads=1) if reader(name) is not None else load_task(name).model
        rtf = real_time_factor(model, model.sample_rate, args.seconds, args.repeats)["latency/rtf"]
        print(f"{name:<48}{Path(name).stat().st_size:>12,}{rtf:>15.4f}{1000 * rtf:>10.1f}")
    print(f"(the median of {args.repeats} passes over the same {args.seconds:g} s of noise, after one warm-up, in one process)")
    if args.profile:
        from speechcompress.export.profile import op_profile

        for name in (f for f in args.files if Path(f).suffix.lower() == ".onnx"):
            shares = op_profile(name, args.seconds)
            print(f"\n{name}: share of the wall time per op type (ONNX Runtime's profiler, one thread)")
            for op, share in shares.items():
                if share >= 0.005:
                    print(f"  {op:<28}{100 * share:>6.1f} %")
    return 0
