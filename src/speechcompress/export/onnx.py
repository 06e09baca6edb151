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
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from speechcompress.atomic_files import atomic_path
from speechcompress.export import dft
from speechcompress.export.graphs import STEP_SPEC, GraphSpec, RNNoiseStepGraph, graph_for
from speechcompress.export.onnx_files import compact_names, write_metadata
from speechcompress.export.runtime import OnnxModel

OPSET = 17
# The largest difference allowed between ONNX Runtime's fp32 output and torch's, relative to the
# largest magnitude of torch's output (at least 1): waveforms in [−1, 1], VAD logits of a few units.
# Both compute in fp32; the graphs take their DFTs as matrix products where torch uses an FFT,
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


def max_difference(path: str | Path, model: nn.Module, spec: GraphSpec, wave: torch.Tensor) -> float:
    """Largest |file − model| on the waveform batch `wave`, relative to max(1, largest |model|): the
    file run as the CLI runs it (`runtime.OnnxModel`: streamed `stream.hops` hops a call for a step graph, the fbank
    computed first for a VAD), the model's own forward as the reference (its enhanced waveform or
    its logits)."""
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
                              output_names=outputs, opset_version=OPSET, dynamo=False, dynamic_axes=dynamic_axes,
                              # the denoisers' DFT tables, built when the file loads (export.dft)
                              custom_opsets={dft.DOMAIN: 1} if spec.kind == "denoiser" else None)
        proto = onnx.load(str(partial))
        dft.expand_tables(proto)
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
                       tolerance: float = PARITY_TOLERANCE, hops: int = 8) -> Exported:
    """Writes RNNoise's streaming step (`graphs.RNNoiseStepGraph`: any number of hops per call, the
    state one tensor) as an fp32 ONNX graph; `hops`: how many a call takes by default (the
    metadata's `stream.hops`, which `OnnxModel` feeds). Its parity check streams a batch through the
    file, `hops` at a time, and compares it with the model's whole-signal forward."""
    with on_cpu_in_eval(model):
        graph, spec = RNNoiseStepGraph(model).eval(), STEP_SPEC
        inputs = {"chunk": torch.randn(2, 3 * model.hop) * 0.1, "state": torch.zeros(2, graph.state_size())}
        outputs = [spec.output_name, "next_state"]
        axes = {"chunk": {0: "batch", 1: "time"}, spec.output_name: {0: "batch", 1: "time"},
                "state": {0: "batch"}, "next_state": {0: "batch"}}
        stream = {"hop": model.hop, "hops": hops, "latency": model.latency_samples,
                  "state": {"state": [1, graph.state_size()]}, "layout": graph.state_layout()}
        return export_graph(model, graph, spec, inputs, outputs, axes, Path(path), {"stream": stream, **(metadata or {})},
                            tolerance)
