"""bytes and CPU real-time factor of checkpoints and exported files, side by side in one process"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", help=".ckpt and exported files, measured side by side in one process")
    p.add_argument("--seconds", type=float, default=10.0, help="seconds of audio per timed pass")
    p.add_argument("--repeats", type=int, default=5, help="timed passes (the median is reported)")
    p.add_argument("--threads", type=int, nargs="+", default=[1], help="CPU threads: one column each (default 1)")
    p.add_argument("--hops", type=int, nargs="+", default=None,
                   help="a streaming step file (RNNoise's step.onnx, FunASR's model.onnx) fed this many hops "
                        "(10 ms frames) per call: one row each (default: the file's own)")
    p.add_argument("--profile", action="store_true", help="also each ONNX file's time per op type")


def _rows(name: str, hops: list[int] | None, threads: int):
    """(label, model) for the file: one per hops setting for a streaming step file, else one."""
    from speechcompress.checkpoints import load_task
    from speechcompress.export.registry import load, reader
    from speechcompress.export.runtime import OnnxModel

    model = load(name, threads=threads) if reader(name) is not None else load_task(name).model
    if not (isinstance(model, OnnxModel) and model.streams) or hops is None:
        yield name, model
        return
    if "hops" not in model.meta.get("stream", {"hops": "any"}):  # an older step file: one hop a call
        yield f"{name} @1 hops", model
        return
    for k in hops:
        model.hops = k
        yield f"{name} @{k} hops", model


def run(args: argparse.Namespace) -> int:
    from speechcompress.evaluation.measure import real_time_factor

    figures: dict[str, list[float]] = {}
    for threads in args.threads:
        for name in args.files:
            for label, model in _rows(name, args.hops, threads):
                rtf = real_time_factor(model, model.sample_rate, args.seconds, args.repeats, threads=threads)
                figures.setdefault(label, []).append(rtf["latency/rtf"])
    width = max(48, *(len(label) + 2 for label in figures))
    print(f"{'file':<{width}}{'bytes':>12}" + "".join(f"{f'RTF, {t} thr':>14}{'ms/s':>8}" for t in args.threads))
    for label, rtfs in figures.items():
        size = Path(label.split(" @")[0]).stat().st_size
        print(f"{label:<{width}}{size:>12,}" + "".join(f"{rtf:>14.4f}{1000 * rtf:>8.1f}" for rtf in rtfs))
    print(f"(the median of {args.repeats} passes over the same {args.seconds:g} s of noise, after one warm-up, in one "
          f"process; ms/s: milliseconds per second of audio)")
    if args.profile:
        from speechcompress.export.profile import op_profile

        for name in (f for f in args.files if Path(f).suffix.lower() == ".onnx"):
            shares = op_profile(name, args.seconds)
            print(f"\n{name}: share of the wall time per op type (ONNX Runtime's profiler, one thread)")
            for op, share in shares.items():
                if share >= 0.005:
                    print(f"  {op:<28}{100 * share:>6.1f} %")
    return 0
