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
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from speechcompress.export.graphs import GraphSpec, graph_for
from speechcompress.files import atomic_path

OPSET = 17
META_PREFIX = "speechcompress."
# The largest difference allowed between ONNX Runtime's fp32 output and torch's, relative to the
# largest magnitude of torch's output (at least 1): waveforms in [−1, 1], VAD logits of a few units.
# Both compute in fp32; RNNoise's graph takes its DFT as a matrix product where torch uses an FFT,
# which rounds differently (measured: about 1e-6 on the waveform).
PARITY_TOLERANCE = 1e-4


class ParityError(RuntimeError):
    """The exported graph does not compute what the torch model does."""


@dataclass(frozen=True)
class Exported:
    path: Path
    spec: GraphSpec
    max_abs_difference: float  # ONNX Runtime fp32 against torch, on the parity batch


def example_input(model: nn.Module, spec: GraphSpec, batch: int, seconds: float, seed: int) -> torch.Tensor:
    """A graph input: seeded noise (the VAD graph's: its fbank)."""
    generator = torch.Generator().manual_seed(seed)
    wave = torch.randn(batch, int(seconds * model.sample_rate), generator=generator) * 0.1
    return model.fbank(wave) if spec.kind == "vad" else wave


def frontend_settings(model: nn.Module, spec: GraphSpec) -> dict[str, float]:
    """What the runtime computes before the graph: the VAD's fbank settings; nothing for denoisers."""
    if spec.kind != "vad":
        return {}
    return {"n_mels": model.n_mels, "window": model.window, "hop": model.hop, "lookahead": model.lookahead}


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


def session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session of `path` (`threads` intra-op threads; None: ORT's default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def max_difference(path: str | Path, graph: nn.Module, spec: GraphSpec, example: torch.Tensor) -> float:
    """Largest |ONNX Runtime − torch| on `example`, relative to max(1, largest |torch|)."""
    with torch.no_grad():
        expected = graph(example).numpy()
    got = session(path).run([spec.output_name], {spec.input_name: example.numpy()})[0]
    if got.shape != expected.shape:
        raise ParityError(f"{path}: ONNX output shape {got.shape} differs from torch's {expected.shape}")
    return float(np.abs(got - expected).max() / max(1.0, float(np.abs(expected).max())))


@contextlib.contextmanager
def _eval_mode(model: nn.Module):
    training = model.training
    try:
        yield model.eval()
    finally:
        model.train(training)


def export_onnx(model: nn.Module, path: str | Path, metadata: dict[str, object] | None = None,
                tolerance: float = PARITY_TOLERANCE) -> Exported:
    """Writes `model` (on the CPU) as fp32 ONNX to `path`; see the module's docstring.

    `metadata`: more `speechcompress.*` entries, e.g. the task's inference settings."""
    path = Path(path)
    device = next(model.parameters()).device
    with _eval_mode(model.cpu()):
        try:
            graph, spec = graph_for(model)
            trace = example_input(model, spec, batch=2, seconds=1.0, seed=0)
            with atomic_path(path) as partial:
                with warnings.catch_warnings():  # the TorchScript exporter's notes on traced shapes
                    warnings.simplefilter("ignore")
                    torch.onnx.export(graph, (trace,), str(partial), input_names=[spec.input_name],
                                      output_names=[spec.output_name], opset_version=OPSET, dynamo=False,
                                      dynamic_axes={name: {0: "batch", 1: "time"}
                                                    for name in (spec.input_name, spec.output_name)})
                proto = onnx.load(str(partial))
                write_metadata(proto, {"family": spec.family, "kind": spec.kind, "input": spec.input_name,
                                       "output": spec.output_name, "sample_rate": model.sample_rate,
                                       "frontend": frontend_settings(model, spec), "precision": "fp32",
                                       **(metadata or {})})
                onnx.save(proto, str(partial))
                # another batch size and length than the trace's: the axes must really be dynamic
                difference = max_difference(partial, graph, spec, example_input(model, spec, 3, 1.37, seed=1))
                if not difference <= tolerance:
                    raise ParityError(f"{path}: ONNX Runtime's output differs from torch's by up to {difference:.3g} "
                                      f"(relative), above the tolerance {tolerance:g}; the file was not written")
        finally:
            model.to(device)
    return Exported(path, spec, difference)
