"""Where an exported file's time goes: ONNX Runtime's own profiler, summed per op type.

`op_profile` runs `seconds` of noise through the file (as `OnnxModel` runs it: a step file hop by
hop) on one thread with profiling on, and returns each op type's share of the wall time, plus
`(outside the graph)`: what the session calls cost besides their nodes (feeding inputs, copying
outputs, and for a step file the Python loop over hops).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import torch

from speechcompress.export.onnx_files import session
from speechcompress.export.runtime import OnnxModel

OUTSIDE = "(outside the graph)"


def op_profile(path: str | Path, seconds: float = 10.0) -> dict[str, float]:
    """{op type: share of the wall time}, largest first; the shares sum to 1."""
    model = OnnxModel(path, threads=1)
    model.session = session(path, threads=1, profile=True)
    audio = torch.randn(1, int(seconds * model.sample_rate)) * 0.05
    start = time.perf_counter()
    model(audio)
    wall_us = (time.perf_counter() - start) * 1e6
    events = json.loads(Path(model.session.end_profiling()).read_text())
    per_op: Counter[str] = Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_op[event["args"]["op_name"]] += event["dur"]
    per_op[OUTSIDE] = max(0.0, wall_us - sum(per_op.values()))
    return {op: us / wall_us for op, us in per_op.most_common()}
