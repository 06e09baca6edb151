"""A model to an ONNX file with dynamic batch and time axes, checked against torch before it is kept.

The file carries what a runtime needs besides the graph, as ONNX metadata (`speechcompress.*`):
the family, what the graph takes and gives, the sample rate, the front-end's settings and the
task's inference settings (denoisers' windows, the VAD's segment post-processing). Every export
runs the written file in ONNX Runtime on a batch of a shape other than the one it was traced with,
and compares it with torch: a difference above the tolerance removes the file and raises
`ParityError` naming the largest difference.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from speechcompress.export.graphs import GraphSpec, graph_for, stream_graph_for
from speechcompress.files import atomic_path

OPSET = 17
META_PREFIX = "speechcompress."
# The largest difference allowed between ONNX Runtime's fp32 output and torch's, relative to the
# largest magnitude of torch's output (at least 1): waveforms in [−1, 1], VAD logits of a few units.
# Both compute in fp32; RNNoise's graph takes its DFT as a matrix product where torch uses an FFT,
# which rounds differently (measured: about 1e-6 on the waveform).
PARITY_TOLERANCE = 1e-4


class ParityError(ValueError):
    """The exported graph does not compute what the torch model does."""


@dataclass(frozen=True)
class Exported:
    path: Path
    max_abs_difference: float  # ONNX Runtime fp32 against torch, on the parity batch


def example_wave(model: nn.Module, batch: int, seconds: float, seed: int) -> torch.Tensor:
    """Seeded noise [batch, seconds · rate]: the audio that export traces and checks parity on."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, int(seconds * model.sample_rate), generator=generator) * 0.1


def frontend_settings(model: nn.Module, spec: GraphSpec) -> dict[str, float]:
    """What the runtime computes before the graph: the VAD's fbank settings; nothing for denoisers."""
    if spec.kind != "vad":
        return {}
    return {"n_mels": model.n_mels, "window": model.window, "hop": model.hop, "lookahead": model.lookahead,
            "lfr_m": model.lfr_m}


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
        return renamed.setdefault(name, f"t{len(renamed)}")

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
    `profile`: ONNX Runtime writes a JSON profile (see `export.profile`)."""
    import tempfile

    import onnxruntime as ort

    options = ort.SessionOptions()
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "ort")
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def max_difference(path: str | Path, model: nn.Module, spec: GraphSpec, wave: torch.Tensor) -> float:
    """Largest |file − model| on the waveform batch `wave`, relative to max(1, largest |model|): the
    file run as the CLI runs it (`runtime.OnnxModel`: streamed hop by hop for a step graph, the fbank
    computed first for a VAD), the model's own forward as the reference (its enhanced waveform or
    its logits)."""
    from speechcompress.export.runtime import OnnxModel

    with torch.no_grad():
        expected, got = model(wave), OnnxModel(path)(wave)
    field = "logits" if spec.kind == "vad" else "enhanced"
    expected, got = getattr(expected, field).numpy(), getattr(got, field).numpy()
    if got.shape != expected.shape:
        raise ParityError(f"{path}: ONNX output shape {got.shape} differs from torch's {expected.shape}")
    return float(np.abs(got - expected).max() / max(1.0, float(np.abs(expected).max())))


def export_graph(model: nn.Module, graph: nn.Module, spec: GraphSpec, inputs: dict[str, torch.Tensor],
            outputs: list[str], dynamic_axes: dict[str, dict[int, str]], path: Path, metadata: dict[str, object],
            tolerance: float, difference: Callable[[Path], float] | None = None) -> Exported:
    """Traces `graph` on `inputs`, writes it with `metadata` through a temporary file, and keeps it
    only when its parity with `model` holds on a batch of another size and length than the trace's
    (so the axes must really be dynamic). `difference(file)`: that parity, relative; by default
    `max_difference` on a seeded batch, the file run as the CLI runs it."""
    with atomic_path(path) as partial:
        with warnings.catch_warnings():  # the TorchScript exporter's notes on traced shapes
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, tuple(inputs.values()), str(partial), input_names=list(inputs),
                              output_names=outputs, opset_version=OPSET, dynamo=False, dynamic_axes=dynamic_axes)
        proto = onnx.load(str(partial))
        write_metadata(proto, {"family": spec.family, "kind": spec.kind, "input": spec.input_name,
                               "output": spec.output_name, "sample_rate": model.sample_rate,
                               "frontend": frontend_settings(model, spec), "precision": "fp32", **metadata})
        compact_names(proto)
        onnx.save(proto, str(partial))
        found = (max_difference(partial, model, spec, example_wave(model, 3, 1.37, seed=1)) if difference is None
                 else difference(partial))
        if not found <= tolerance:
            raise ParityError(f"{path}: ONNX Runtime's output differs from torch's by up to {found:.3g} "
                              f"(relative), above the tolerance {tolerance:g}; the file was not written")
    return Exported(path, found)


@contextlib.contextmanager
def on_cpu_in_eval(model: nn.Module):
    device, training = next(model.parameters()).device, model.training
    try:
        yield model.cpu().eval()
    finally:
        model.to(device).train(training)


def export_onnx(model: nn.Module, path: str | Path, metadata: dict[str, object] | None = None,
                tolerance: float = PARITY_TOLERANCE) -> Exported:
    """Writes `model` as an fp32 ONNX graph of whole signals to `path`; see the module's docstring.

    `metadata`: more `speechcompress.*` entries, e.g. the task's inference settings."""
    with on_cpu_in_eval(model):
        graph, spec = graph_for(model)
        wave = example_wave(model, batch=2, seconds=1.0, seed=0)
        trace = model.fbank(wave) if spec.kind == "vad" else wave
        axes = {name: {0: "batch", 1: "time"} for name in (spec.input_name, spec.output_name)}
        return export_graph(model, graph, spec, {spec.input_name: trace}, [spec.output_name], axes, Path(path),
                       metadata or {}, tolerance)


def export_stream_onnx(model: nn.Module, path: str | Path, metadata: dict[str, object] | None = None,
                       tolerance: float = PARITY_TOLERANCE) -> Exported:
    """Writes the model's one-hop `step` as an fp32 ONNX graph, its state as explicit inputs and
    outputs (`next_NAME`), all zeros at the start of a stream. Its parity check streams a batch
    through the file hop by hop and compares it with the model's whole-signal forward."""
    with on_cpu_in_eval(model):
        graph, spec = stream_graph_for(model)
        shapes = graph.state_shapes()
        inputs = {"chunk": torch.randn(2, model.hop) * 0.1,
                  **{name: torch.zeros([2, *shape[1:]]) for name, shape in shapes.items()}}
        outputs = [spec.output_name, *(f"next_{name}" for name in shapes)]
        axes = {name: {0: "batch"} for name in [*inputs, *outputs]}
        stream = {"hop": model.hop, "latency": model.latency_samples, "state": shapes}
        return export_graph(model, graph, spec, inputs, outputs, axes, Path(path), {"stream": stream, **(metadata or {})},
                       tolerance)
