"""Export one trained model into the files a deployer ships: fp32 ONNX, optionally INT8 and FP16.

Used by the end of a training run (the `export` config group) and by `speechcompress export`.
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from speechcompress.export.funasr import export_funasr, funasr_config
from speechcompress.export.graphs import graph_for, stream_graph_for
from speechcompress.export.onnx import export_onnx, export_stream_onnx
from speechcompress.export.quantize import (
    convert_fp16,
    quantize_dynamic_int8,
    quantize_static_int8,
    quantize_weights_int8,
)
from speechcompress.export.xiph_weights import export_weights_file
from speechcompress.models.fsmn_vad import FSMNVAD
from speechcompress.models.rnnoise_xiph import XiphRNNoise

QUANTIZE_MODES = ("dynamic-int8", "static-int8", "weight-only-int8")


def task_settings(task: object) -> dict[str, object]:
    """What a runtime needs of the task besides the model: a denoiser's inference windows, a VAD's
    segment post-processing."""
    settings = {}
    if hasattr(task, "windows"):
        settings["windows"] = dataclasses.asdict(task.windows)
    if hasattr(task, "segment_config"):
        settings["segments"] = dataclasses.asdict(task.segment_config)
    return settings


@torch.no_grad()
def calibration_inputs(model: nn.Module, loader: Iterable[dict[str, torch.Tensor]], batches: int) -> list[np.ndarray]:
    """The exported graph's inputs for the first `batches` batches of `loader` (the run's training
    data): their noisy waveforms, or the VAD's fbank of them."""
    _, spec = graph_for(model)
    inputs = []
    for batch in itertools.islice(loader, batches):
        noisy = batch["noisy"].float().cpu()
        inputs.append((model.fbank(noisy) if spec.kind == "vad" else noisy).numpy())
    return inputs


def export_files(model: nn.Module, folder: str | Path, settings: dict[str, object] | None = None,
                 quantize: str | None = "dynamic-int8", fp16: bool = False,
                 calibration: list[np.ndarray] | None = None) -> dict[str, Path]:
    """Writes folder/model.onnx (checked against torch), and model_int8.onnx / model_fp16.onnx
    when asked; for a streaming model also step.onnx (one hop, its state explicit; checked against
    torch too) and, when quantizing, step_int8.onnx (always dynamic: calibrating a step graph needs
    its states); for an FSMN-VAD the FunASR folder funasr/ (its step graph, with FSMN caches; dynamic
    INT8 when quantizing). Returns {"onnx", "onnx_int8", "onnx_fp16", "onnx_stream", "onnx_stream_int8":
    path} for the ONNX files written. xiph's RNNoise (`XiphRNNoise`) is written as librnnoise's weights
    file instead: {"rnnoise_c": path}."""
    folder = Path(folder)
    if isinstance(model, XiphRNNoise):  # shipped as librnnoise's weights file (int8 by construction), not ONNX
        if quantize or fp16:
            warnings.warn("export.quantize and export.fp16 apply to ONNX files: xiph's RNNoise ships as "
                          "librnnoise's int8 weights file only", stacklevel=2)
        return {"rnnoise_c": export_weights_file(model, folder / "rnnoise_weights.bin").path}
    if quantize not in (None, *QUANTIZE_MODES):
        raise ValueError(f"quantize must be one of {', '.join(QUANTIZE_MODES)} or null, not {quantize!r}")
    if quantize == "static-int8" and not calibration:
        raise ValueError("static-int8 needs calibration inputs (batches of the run's training data)")
    fp32 = export_onnx(model, folder / "model.onnx", settings).path
    files = {"onnx": fp32}
    if quantize == "dynamic-int8":
        files["onnx_int8"] = quantize_dynamic_int8(fp32, folder / "model_int8.onnx")
    elif quantize == "static-int8":
        files["onnx_int8"] = quantize_static_int8(fp32, folder / "model_int8.onnx", calibration)
    elif quantize == "weight-only-int8":
        files["onnx_int8"] = quantize_weights_int8(fp32, folder / "model_int8.onnx")
    if fp16:
        files["onnx_fp16"] = convert_fp16(fp32, folder / "model_fp16.onnx")
    if streams(model):
        step = export_stream_onnx(model, folder / "step.onnx", settings).path
        files["onnx_stream"] = step
        if quantize:  # its GRU cells are matrix products, which dynamic INT8 reaches
            files["onnx_stream_int8"] = quantize_dynamic_int8(step, folder / "step_int8.onnx")
    elif isinstance(model, FSMNVAD):
        files |= _funasr_step(model, folder / "funasr", (settings or {}).get("segments"), quantize is not None)
    return files


def _funasr_step(model: FSMNVAD, folder: Path, segments: dict | None, quantize: bool) -> dict[str, Path]:
    """FSMN-VAD's step graph, as the folder FunASR's runtime loads (`export.funasr`): {"onnx_stream",
    "onnx_stream_int8"}; nothing, with a warning saying why, for a model that runtime cannot run."""
    try:
        funasr_config(model, segments)
    except ValueError as why:
        warnings.warn(f"no FunASR step folder for this model: {why}", stacklevel=2)
        return {}
    written = export_funasr(model, folder, segments, quantize=quantize)
    return {"onnx_stream": written["onnx"], **({"onnx_stream_int8": written["onnx_int8"]} if quantize else {})}


def streams(model: nn.Module) -> bool:
    """Whether the model has a one-hop step graph of speechcompress's own (RNNoise's) to export."""
    try:
        stream_graph_for(model)
    except ValueError:
        return False
    return True
