"""ONNX files as files: the `speechcompress.*` metadata they carry, compact tensor names, and an
ONNX Runtime session. A leaf: what writes files (`export.onnx`, `export.quantize`) and what runs
them (`export.runtime`) both build on it.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import onnx

META_PREFIX = "speechcompress."


def read_metadata(path: str | Path) -> dict[str, object]:
    """The `speechcompress.*` metadata of an exported file, JSON values decoded, without the prefix."""
    proto = onnx.load(str(path), load_external_data=False)
    return {p.key.removeprefix(META_PREFIX): json.loads(p.value) for p in proto.metadata_props
            if p.key.startswith(META_PREFIX)}


def write_metadata(proto: onnx.ModelProto, metadata: dict[str, object]) -> None:
    """Sets `speechcompress.KEY` = JSON(value) for each item, replacing what was there."""
    keep = [p for p in proto.metadata_props if p.key.removeprefix(META_PREFIX) not in metadata]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for key, value in metadata.items():
        proto.metadata_props.add(key=META_PREFIX + key, value=json.dumps(value))


def compact_names(proto: onnx.ModelProto) -> None:
    """Short names for every node and every tensor inside the graph (the graph's inputs and outputs
    keep theirs), no stored shape annotations, and each computation stored once: the exporter's
    scoped names ("/model/unet1/encoders.0/conv/Conv_output_0") were a fifth of a traced FRCRN's
    file, and its shape arithmetic on the dynamic axes repeats the same Constant, Shape and Gather
    nodes hundreds of times (`_redundant_nodes`). None of it changes what the graph computes."""
    keep = {v.name for v in proto.graph.input} | {v.name for v in proto.graph.output}
    same = _redundant_nodes(proto.graph, keep)
    renamed: dict[str, str] = {}
    nodes = itertools.count()

    def short(name: str) -> str:
        name = same.get(name, name)
        if not name or name in keep:
            return name
        # a letter after the number: ONNX Runtime's quantizer names new tensors by appending digits
        # to old ones ("t64" + "0"), which must not meet another of ours ("t640")
        return renamed.setdefault(name, f"t{len(renamed)}x")

    def rename(graph: onnx.GraphProto, top: bool) -> None:
        if not top:  # a subgraph's (If, Loop) own inputs and outputs are names like any other
            for value in [*graph.input, *graph.output]:
                value.name = short(value.name)
        for tensor in graph.initializer:
            tensor.name = short(tensor.name)
        for node in graph.node:
            node.name = f"n{next(nodes)}"
            node.input[:] = [short(name) for name in node.input]
            node.output[:] = [short(name) for name in node.output]
            for attribute in node.attribute:
                for subgraph in [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else attribute.graphs:
                    rename(subgraph, top=False)
        del graph.value_info[:]

    rename(proto.graph, top=True)


def _redundant_nodes(graph: onnx.GraphProto, keep: set[str]) -> dict[str, str]:
    """Removes each node that repeats an earlier one (the same op, attributes and inputs), and each
    Identity of an initializer (the exporter's way of sharing a weight, which hid those weights
    from ONNX Runtime's quantizers); returns {its output: the tensor that replaces it}. Random ops,
    nodes holding a subgraph, and nodes writing a graph output are left alone."""
    initializers = {tensor.name for tensor in graph.initializer}
    same: dict[str, str] = {}
    first: dict[tuple, list[str]] = {}
    kept = []
    for node in graph.node:
        node.input[:] = [same.get(name, name) for name in node.input]
        if node.op_type == "Identity" and node.input[0] in initializers and node.output[0] not in keep:
            same[node.output[0]] = node.input[0]
            continue
        exempt = (any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)
                       or node.op_type.startswith("Random") or node.op_type in ("Bernoulli", "Multinomial"))
        key = (node.domain, node.op_type, tuple(node.input), b"".join(a.SerializeToString() for a in node.attribute))
        if exempt or keep.intersection(node.output) or key not in first:
            if not exempt:
                first.setdefault(key, list(node.output))
            kept.append(node)
            continue
        same.update(zip(node.output, first[key], strict=True))
    del graph.node[:]
    graph.node.extend(kept)
    return same


def session(path: str | Path, threads: int | None = None, profile: bool = False):
    """An ONNX Runtime CPU session of `path` (`threads` intra-op threads; None: ORT's default);
    `profile`: ONNX Runtime writes a JSON profile (see `export.profile`).

    A weight-only INT8 file (`export.quantize`) opens with ONNX Runtime's QDQ handling off, so that
    its constant folding turns each DequantizeLinear of a stored int8 weight into the fp32 weight
    once, at load: the file runs as fast as the fp32 one (measured: RNNoise 1.75 against fp32's
    1.75 ms per second of audio; 1.92 with QDQ handling on, which dequantizes on every call)."""
    import tempfile

    import onnxruntime as ort

    options = ort.SessionOptions()
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "ort")
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if read_metadata(path).get("precision") == "weight-only-int8":
        options.add_session_config_entry("session.disable_quant_qdq", "1")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
