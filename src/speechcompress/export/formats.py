"""The formats speechcompress ships, one `Exporter` each (conf/export/ lists them per recipe):

| class           | writes                                   | keys                              | for models shipping |
|-----------------|------------------------------------------|-----------------------------------|---------------------|
| `OnnxFile`      | model.onnx (fp32, parity-checked)        | onnx                              | onnx                |
| `QuantizedOnnx` | model_int8.onnx (dynamic / static / weight-only INT8) | onnx_int8            | onnx                |
| `HalfOnnx`      | model_fp16.onnx (for GPUs)               | onnx_fp16                         | onnx                |
| `RNNoiseStep`   | step.onnx (K hops a call, state explicit), step_int8.onnx | onnx_stream, onnx_stream_int8 | rnnoise_step |
| `FunASRStep`    | funasr/ (FunASR's model folder)          | onnx_stream, onnx_stream_int8     | funasr              |
| `LibRNNoiseFile`| rnnoise_weights.bin (librnnoise's)       | rnnoise_c                         | rnnoise_c           |

Files whose parity with torch is checked to `PARITY_TOLERANCE` are lossless (`Written.lossy` false):
their test scores are torch's, and the end of a run reports their parity instead of scoring them.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from speechcompress.export.exporter import ExportContext, Exporter, Written
from speechcompress.export.funasr import export_funasr, funasr_config
from speechcompress.export.graphs import graph_for
from speechcompress.export.onnx import export_onnx, export_stream_onnx
from speechcompress.export.quantize import (
    CALIBRATIONS,
    convert_fp16,
    quantize_dynamic_int8,
    quantize_static_int8,
    quantize_weights_int8,
)
from speechcompress.export.runtime import LibRNNoiseModel, OnnxModel
from speechcompress.export.xiph_weights import check_library_sizes, export_weights_file

QUANTIZE_MODES = ("dynamic-int8", "static-int8", "weight-only-int8")


def _parity(difference: float) -> dict[str, float]:
    return {"max_abs_difference": difference}


class OnnxFile(Exporter):
    """The whole-signal graph in fp32 (`export.onnx`); the file every other ONNX format starts from."""

    needs, suffix, keys = "onnx", ".onnx", ("onnx",)

    def write(self, model: nn.Module, folder: Path, context: ExportContext) -> list[Written]:
        exported = export_onnx(model, folder / "model.onnx", context.settings)
        return [Written("onnx", exported.path, "ONNX fp32", lossy=False, figures=_parity(exported.max_abs_difference))]

    @classmethod
    def load(cls, path: str | Path, threads: int | None = None) -> nn.Module:
        return OnnxModel(path, threads)


def fp32_file(model: nn.Module, folder: Path, context: ExportContext) -> Path:
    """The fp32 model.onnx this export wrote, written now if its config left `OnnxFile` out."""
    if "onnx" not in context.written:
        context.written["onnx"] = OnnxFile().write(model, folder, context)[0]
    return context.written["onnx"].path


CALIBRATION_SECONDS = 2.0  # of each item: ONNX Runtime's calibrator holds every activation of an input at once


@torch.no_grad()
def calibration_inputs(model: nn.Module, batches: Iterable[dict[str, torch.Tensor]], count: int) -> list[np.ndarray]:
    """The whole-signal graph's inputs from the first `count` of `batches` (the run's training data):
    each item's noisy waveform (its first CALIBRATION_SECONDS), or the VAD's fbank of it, one input
    per item (a batch of FRCRN's activations at once would take tens of gigabytes)."""
    _, spec = graph_for(model)
    inputs = []
    for batch in itertools.islice(batches, count):
        for noisy in batch["noisy"].float().cpu()[:, : int(CALIBRATION_SECONDS * model.sample_rate)].split(1):
            inputs.append((model.fbank(noisy) if spec.kind == "vad" else noisy).numpy())
    return inputs


class QuantizedOnnx(OnnxFile):
    """model_int8.onnx from model.onnx (`export.quantize`): `mode` one of QUANTIZE_MODES, or None for
    no INT8 file; static-int8 calibrates on `calibration_batches` of the run's training batches by
    `calibration` (one of `quantize.CALIBRATIONS`) and keeps `fp32_edges` layers at each end in fp32."""

    keys = ("onnx_int8",)

    def __init__(self, mode: str | None = "dynamic-int8", calibration_batches: int = 4,
                 calibration: str = "percentile", fp32_edges: int = 1) -> None:
        if mode not in (None, *QUANTIZE_MODES):
            raise ValueError(f"export.quantize={mode} is not a quantization: use one of {', '.join(QUANTIZE_MODES)} "
                             f"or null")
        if calibration not in CALIBRATIONS:
            raise ValueError(f"export.calibration={calibration}: use one of {', '.join(CALIBRATIONS)}")
        self.mode, self.calibration_batches = mode, calibration_batches
        self.calibration, self.fp32_edges = calibration, fp32_edges

    def applies(self, model: nn.Module) -> bool:
        return self.mode is not None and super().applies(model)

    def write(self, model: nn.Module, folder: Path, context: ExportContext) -> list[Written]:
        source, target = fp32_file(model, folder, context), folder / "model_int8.onnx"
        if self.mode == "static-int8":
            if context.training_batches is None:
                raise ValueError("static-int8 needs calibration inputs: the run's training batches")
            calibration = calibration_inputs(model, context.training_batches(), self.calibration_batches)
            path = quantize_static_int8(source, target, calibration, self.calibration, self.fp32_edges)
        elif self.mode == "weight-only-int8":
            path = quantize_weights_int8(source, target)
        else:
            path = quantize_dynamic_int8(source, target)
        return [Written("onnx_int8", path, f"ONNX {self.mode}", lossy=True)]


class HalfOnnx(OnnxFile):
    """model_fp16.onnx from model.onnx (`export.fp16`), for GPUs: its size is reported, not its CPU speed."""

    keys = ("onnx_fp16",)

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def applies(self, model: nn.Module) -> bool:
        return self.enabled and super().applies(model)

    def write(self, model: nn.Module, folder: Path, context: ExportContext) -> list[Written]:
        path = convert_fp16(fp32_file(model, folder, context), folder / "model_fp16.onnx")
        return [Written("onnx_fp16", path, "ONNX fp16", lossy=True, timed=False)]


class RNNoiseStep(OnnxFile):
    """RNNoise's streaming step graph, its state one explicit tensor (step.onnx: any number of hops
    per call, `hops` by default), and when `quantize` names any INT8 mode its weight-only INT8
    copy (step_int8.onnx): ONNX Runtime has no dynamic INT8 GRU, and the GRUs hold most of the
    weights; a step graph is not calibrated (that would need its states). Weight-only INT8 reaches
    every learned weight and runs as fast as fp32."""

    needs, keys = "rnnoise_step", ("onnx_stream", "onnx_stream_int8")

    def __init__(self, quantize: str | None = "dynamic-int8", hops: int = 8) -> None:
        if hops < 1:
            raise ValueError(f"export.stream_hops={hops}: a step call takes at least one hop")
        self.quantize, self.hops = quantize, hops

    def write(self, model: nn.Module, folder: Path, context: ExportContext) -> list[Written]:
        step = export_stream_onnx(model, folder / "step.onnx", context.settings, hops=self.hops)
        files = [Written("onnx_stream", step.path, f"ONNX step fp32, {self.hops} hops a call", lossy=False,
                         figures=_parity(step.max_abs_difference))]
        if self.quantize:
            files.append(Written("onnx_stream_int8", quantize_weights_int8(step.path, folder / "step_int8.onnx"),
                                 "ONNX step weight-only-int8", lossy=True))
        return files


class FunASRStep(OnnxFile):
    """FSMN-VAD's step graph as the model folder FunASR's runtime loads (`export.funasr`): funasr/,
    with model_quant.onnx (dynamic INT8) when `quantize`. A model that runtime cannot run (look-ahead
    memories, lorder < 2) gets no folder, and a warning saying why."""

    needs, keys = "funasr", ("onnx_stream", "onnx_stream_int8")

    def __init__(self, quantize: str | None = "dynamic-int8") -> None:
        self.quantize = quantize

    def write(self, model: nn.Module, folder: Path, context: ExportContext) -> list[Written]:
        segments = context.settings.get("segments")
        try:
            funasr_config(model, segments)
        except ValueError as why:
            warnings.warn(f"no FunASR step folder for this model: {why}", stacklevel=2)
            return []
        written = export_funasr(model, folder / "funasr", segments, quantize=self.quantize is not None)
        files = [Written("onnx_stream", written.files["onnx"], "FunASR step fp32", lossy=False,
                         figures=_parity(written.max_abs_difference))]
        if self.quantize:
            files.append(Written("onnx_stream_int8", written.files["onnx_int8"], "FunASR step dynamic-int8", lossy=True))
        return files


class LibRNNoiseFile(Exporter):
    """xiph's RNNoise as the weights file xiph's C librnnoise loads (rnnoise_weights.bin: int8, GRUs
    block-sparse; `export.xiph_weights`), run by the library itself; `float_copies` adds the float
    weights the library then computes with."""

    needs, suffix, keys = "rnnoise_c", ".bin", ("rnnoise_c",)
    runtime = ("pyrnnoise",)  # xiph's librnnoise, which runs the file

    def __init__(self, float_copies: bool = False, library: str | None = None, quantize: str | None = None) -> None:
        if quantize is not None:
            raise ValueError(f"export.quantize={quantize}: librnnoise's weights file is int8 by construction (the "
                             f"library is built for int8 weights); float_copies adds the float weights it then computes with")
        self.float_copies, self.library = float_copies, library

    def check(self, model: nn.Module) -> None:
        check_library_sizes(model, self.library)

    def write(self, model: nn.Module, folder: Path, context: ExportContext) -> list[Written]:
        written = export_weights_file(model, folder / "rnnoise_weights.bin", self.float_copies, self.library)
        figures = {} if written.error_db is None else {"error_db": written.error_db}
        return [Written("rnnoise_c", written.path, "librnnoise int8", lossy=True, figures=figures)]

    @classmethod
    def load(cls, path: str | Path, threads: int | None = None) -> nn.Module:
        return LibRNNoiseModel(path)
