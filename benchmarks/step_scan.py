"""RNNoise's step on K hops a call, two ways: the hops side by side (what `step.onnx` does) or one
after another inside the graph (an ONNX Scan over hops), one process, one thread.

    .venv/bin/python benchmarks/step_scan.py RUN/export/step.onnx [--hops 1 8 32] [--seconds 10] [--repeats 7]

The Scan file is built from the step file itself: its graph, fed one hop, is the Scan's body, the
state its carried variable and the call's hops its scanned input. Both files then compute the same
thing (checked: outputs within 1e-5 of each other) and differ only in how a call runs its hops.
Each is fed as `OnnxModel` feeds a step file: K hops a call over 10 s of noise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import onnx
import torch
from onnx import helper

from speechcompress.evaluation.measure import real_time_factor
from speechcompress.export.onnx_files import read_metadata
from speechcompress.export.runtime import OnnxModel

RENAMED = {"chunk": "hop_chunk", "state": "hop_state", "enhanced_chunk": "hop_out", "next_state": "hop_next"}


def scan_file(step: Path, target: Path) -> Path:
    """The step file with its graph as the body of a Scan over the call's hops (same inputs,
    outputs and metadata)."""
    proto = onnx.load(str(step))
    hop = read_metadata(step)["stream"]["hop"]
    body = proto.graph
    for node in body.node:  # a subgraph's names must differ from the outer graph's
        node.input[:] = [RENAMED.get(name, name) for name in node.input]
        node.output[:] = [RENAMED.get(name, name) for name in node.output]
    inputs, outputs = {v.name: v for v in body.input}, {v.name: v for v in body.output}
    carried_in, scanned_in = inputs["state"], inputs["chunk"]
    carried_out, scanned_out = outputs["next_state"], outputs["enhanced_chunk"]
    for value in (carried_in, scanned_in, carried_out, scanned_out):
        value.name = RENAMED[value.name]
    del body.input[:], body.output[:]
    body.input.extend([carried_in, scanned_in])  # Scan's order: carried state first, then what it scans
    body.output.extend([carried_out, scanned_out])
    outer = helper.make_graph(
        [helper.make_node("Constant", [], ["blocks_shape"], value=helper.make_tensor("s", 7, [3], [0, -1, hop])),
         helper.make_node("Reshape", ["chunk", "blocks_shape"], ["blocks"]),  # [B, K, hop]
         helper.make_node("Scan", ["state", "blocks"], ["next_state", "hops_out"], body=body, num_scan_inputs=1,
                          scan_input_axes=[1], scan_output_axes=[1]),
         helper.make_node("Constant", [], ["flat_shape"], value=helper.make_tensor("f", 7, [2], [0, -1])),
         helper.make_node("Reshape", ["hops_out", "flat_shape"], ["enhanced_chunk"])],
        "step_scan", [outer_value(scanned_in, "chunk"), outer_value(carried_in, "state")],
        [outer_value(scanned_out, "enhanced_chunk"), outer_value(carried_out, "next_state")])
    model = helper.make_model(outer, opset_imports=proto.opset_import)
    model.metadata_props.extend(proto.metadata_props)
    onnx.save(model, str(target))
    return target


def outer_value(value: onnx.ValueInfoProto, name: str) -> onnx.ValueInfoProto:
    """The outer graph's copy of a body input or output, under its outer name."""
    outer = onnx.ValueInfoProto()
    outer.CopyFrom(value)
    outer.name = name
    return outer


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("step", type=Path, help="an RNNoise step file (RUN/export/step.onnx)")
    p.add_argument("--hops", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    scan = scan_file(args.step, Path(tempfile.mkdtemp()) / "step_scan.onnx")
    blocks, scanned = OnnxModel(args.step, threads=1), OnnxModel(scan, threads=1)
    noisy = torch.randn(2, 16000) * 0.1
    for k in args.hops:
        blocks.hops = scanned.hops = k
        difference = (blocks(noisy).enhanced - scanned(noisy).enhanced).abs().max().item()
        if difference > 1e-5:
            raise SystemExit(f"the Scan file differs from {args.step} by {difference:.3g} at {k} hops a call")
    print(f"{'hops a call':<14}{'side by side, ms/s':>20}{'Scan over hops, ms/s':>22}")
    for k in args.hops:
        blocks.hops = scanned.hops = k
        figures = [1000 * real_time_factor(m, m.sample_rate, args.seconds, args.repeats)["latency/rtf"]
                   for m in (blocks, scanned)]
        print(f"{k:<14}{figures[0]:>20.1f}{figures[1]:>22.1f}")
    print(f"(the median of {args.repeats} passes over {args.seconds:g} s of noise, one thread, one process)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
