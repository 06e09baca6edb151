"""Every run's MLflow Model: a pyfunc over the file the run ships, so that
`mlflow.pyfunc.load_model("runs:/ID/model").predict(wave)` (or `models:/NAME@champion`) runs it.

The model folder holds the shipped file (the first file of the run's export that a format reads:
model.onnx, librnnoise's rnnoise_weights.bin, ...; the checkpoint when export is off), this
package's code (so it loads where speechcompress is not installed), and requirements that name
what running the file needs (its runtime, torch for the windows and features), not the training
stack (Lightning, Hydra, torchmetrics, PESQ), unless the file is a checkpoint.

Input: a mono float32 waveform at the model's sample rate, or at `params={"sample_rate": R}`
(resampled, as `speechcompress enhance` / `vad` do). Output: the enhanced waveform at the input's
rate (denoisers), or {"probabilities": speech probability per 10 ms frame, "segments": [{"start",
"end"}, ...] in seconds} (VADs): what `enhance` and `vad` write for the same audio.
"""

from __future__ import annotations

import importlib
import shutil
from importlib import metadata
from pathlib import Path

import mlflow.pyfunc
import numpy as np

PACKAGE = Path(__file__).resolve().parents[1]  # src/speechcompress: the model's code
SHIPPED = "shipped"  # the artifact key of the file the model runs
SHIPPED_TAG = "speechcompress.shipped"  # on the run: which file its model runs (an export key, or "checkpoint")
EXAMPLE_SECONDS = 0.5
# what opening any exported file needs (the formats module imports onnx and ONNX Runtime) and what
# the windows, resampling and fbank features run on; a format's `runtime` adds its own
RUNNING_REQUIREMENTS = ("numpy", "torch", "torchaudio", "scipy", "soundfile", "onnx", "onnxruntime")


class SpeechModel(mlflow.pyfunc.PythonModel):
    """A shipped speechcompress file (or checkpoint) behind MLflow's pyfunc interface."""

    def load_context(self, context) -> None:
        self.kind = context.model_config["kind"]
        self.task = open_shipped(context.artifacts[SHIPPED], self.kind, context.model_config.get("format"))

    def predict(self, context, model_input: np.ndarray, params: dict | None = None):
        wave = np.ascontiguousarray(np.asarray(model_input, dtype=np.float32).reshape(-1))
        rate = int((params or {}).get("sample_rate") or self.task.sample_rate)
        return run_on_wave(self.task, self.kind, wave, rate)


def open_shipped(path: str | Path, kind: str, fmt: str | None, device: str = "cpu"):
    """A file of format `fmt` ("module.Class", an `Exporter`), or with `fmt` None a checkpoint, as a
    `kind` model with its task's settings (`.model`, `.sample_rate`, `.windows`, `.segment_config`)."""
    if fmt is None:
        from speechcompress.checkpoints import load_task

        return load_task(path, device)
    from speechcompress.export.deployed import open_deployed

    module, name = fmt.rsplit(".", 1)
    return open_deployed(getattr(importlib.import_module(module), name), path, kind)


def run_on_wave(task, kind: str, wave: np.ndarray, rate: int):
    """What `enhance` (a denoiser) or `vad` (a VAD) compute for `wave` at `rate`."""
    if kind == "denoiser":
        from speechcompress.inference import enhance_waveform

        return enhance_waveform(task.model, wave, rate, task.windows)
    from speechcompress.evaluation.vad_segments import speech_segments
    from speechcompress.inference import speech_probabilities

    probabilities = speech_probabilities(task.model, wave, rate)
    segments = speech_segments(probabilities, task.segment_config)
    return {"probabilities": probabilities.astype(np.float32), "segments": [s.as_dict() for s in segments]}


def requirements(fmt: type | None) -> list[str]:
    """Pinned pip requirements of a model over a file of format `fmt` (its `runtime` packages and
    what the windows need), or over a checkpoint (`fmt` None: speechcompress's own dependencies)."""
    if fmt is None:
        from packaging.requirements import Requirement

        names = [Requirement(r).name for r in metadata.requires("speechcompress") or [] if "extra ==" not in r]
    else:
        names = [*RUNNING_REQUIREMENTS, *fmt.runtime]
    pinned = []
    for name in dict.fromkeys(names):
        try:
            pinned.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pinned.append(name)
    return pinned


def save_model(folder: Path, shipped: Path, kind: str, fmt: type | None, sample_rate: int) -> Path:
    """Writes the MLflow Model over `shipped` (read by format `fmt`; None: a checkpoint) into
    `folder` (replaced if there), with its signature and an input example; returns `folder`."""
    from mlflow.models import ModelSignature
    from mlflow.types import ParamSchema, ParamSpec, Schema, TensorSpec

    if folder.exists():
        shutil.rmtree(folder)
    config = {"kind": kind, "format": None if fmt is None else f"{fmt.__module__}.{fmt.__qualname__}",
              "sample_rate": sample_rate}
    wave = TensorSpec(np.dtype(np.float32), (-1,))  # unnamed: `predict` gets the array itself
    outputs = Schema([TensorSpec(np.dtype(np.float32), (-1,))]) if kind == "denoiser" else None
    signature = ModelSignature(Schema([wave]), outputs, ParamSchema([ParamSpec("sample_rate", "long", sample_rate)]))
    example = (0.01 * np.random.default_rng(0).standard_normal(int(EXAMPLE_SECONDS * sample_rate))).astype(np.float32)
    mlflow.pyfunc.save_model(str(folder), python_model=str(PACKAGE / "tracking" / "model_code.py"), artifacts={SHIPPED: str(shipped)},
                             model_config=config, code_paths=[str(PACKAGE)], pip_requirements=requirements(fmt),
                             signature=signature, input_example=example)
    return folder
