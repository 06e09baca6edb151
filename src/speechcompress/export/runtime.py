"""Exported files run like the torch models they came from.

`OnnxModel` wraps an ONNX Runtime session in the interface the rest of the project calls: a
denoiser's `model(noisy).enhanced`, a VAD's `model(noisy).logits` / `.speech_probability()` and
`model.frames(samples)`, `model.sample_rate`; having no parameters, they run on the CPU
(`inference.model_device`). So `inference.enhance_batch`, the tasks' test loops
and the CLI run an exported file exactly as they run a checkpoint. A step graph (a streaming
export) runs K hops a call behind the same whole-signal interface. `LibRNNoiseModel` runs a
librnnoise weights file in xiph's C library behind the denoiser's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from speechcompress.export.onnx_files import read_metadata, session
from speechcompress.export.rnnoise_c import FRAME_SIZE, SAMPLE_RATE, LibRNNoise
from speechcompress.features.fbank import frame_count, padded_fbank, stack_frames
from speechcompress.models.fsmn_vad import VADOutput
from speechcompress.models.rnnoise import INT16_SCALE


def run_blocks(ort_session, speech: np.ndarray, cache_shapes: dict[str, list[int]], blocks: int = 1,
               frames: int | None = None) -> np.ndarray:
    """A FunASR FSMN-VAD step graph (`export.funasr`; an ONNX Runtime session of it) over `speech`
    [B, n, dims] cut into `blocks` pieces in order, or into pieces of `frames` frames (10 ms each)
    when given, the caches passed on from zeros, as FunASR's runtime feeds it: → probabilities
    [B, n, classes]. The graph takes the features first, then its caches (FunASR's order)."""
    features = ort_session.get_inputs()[0].name
    caches = {name: np.zeros([speech.shape[0], *shape[1:]], np.float32) for name, shape in cache_shapes.items()}
    if frames:
        inputs = [speech[:, start : start + frames] for start in range(0, speech.shape[1], frames)]
    else:
        inputs = np.array_split(speech, blocks, axis=1)
    pieces = []
    for block in inputs:
        probabilities, *new = ort_session.run(None, {features: np.ascontiguousarray(block), **caches})
        pieces.append(probabilities)
        caches = dict(zip(caches, new, strict=True))
    return np.concatenate(pieces, axis=1)


@dataclass
class EnhancedOutput:
    enhanced: torch.Tensor  # [B, T]


class LibRNNoiseModel(nn.Module):
    """A weights file of `export --format rnnoise_c`, run by xiph's C librnnoise (48 kHz), its output
    aligned with its input like the torch models' (the library's two frames of delay taken out)."""

    kind, sample_rate, meta = "denoiser", SAMPLE_RATE, {}

    def __init__(self, path: str | Path | None, library: str | Path | None = None) -> None:
        """path None: the model compiled into the library (xiph's shipped weights)."""
        super().__init__()
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"weights file {path} does not exist")
        self.path = None if path is None else Path(path)
        self.blob = None if path is None else self.path.read_bytes()
        self.library = LibRNNoise(library)

    def forward(self, noisy: torch.Tensor) -> EnhancedOutput:
        length, delay = noisy.shape[-1], 2 * FRAME_SIZE
        padded = torch.nn.functional.pad(noisy.detach().float().cpu(), (0, delay + (-length) % FRAME_SIZE))
        outputs = [self.library.denoise(item.numpy() * INT16_SCALE, self.blob)[0][delay : delay + length]
                   for item in padded]
        return EnhancedOutput(torch.from_numpy(np.stack(outputs) / INT16_SCALE).to(noisy))


class OnnxModel(nn.Module):
    """An exported speechcompress file, run by ONNX Runtime on the CPU (`threads` intra-op threads)."""

    def __init__(self, path: str | Path, threads: int | None = None, hops: int | None = None) -> None:
        """`hops`: a step file's hops per call (None: an RNNoise step file's own `stream.hops`; a
        FunASR step graph's whole signal in one call)."""
        super().__init__()
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX file {path} does not exist")
        self.path = path
        self.meta = read_metadata(path)
        if "family" not in self.meta:
            raise ValueError(f"{path} was not exported by speechcompress (no speechcompress.* metadata): "
                             f"export it with `speechcompress export --checkpoint RUN.ckpt`")
        self.kind: str = self.meta["kind"]
        self.sample_rate: int = int(self.meta["sample_rate"])
        self.session = session(path, threads)
        self.hops = hops

    @property
    def streams(self) -> bool:
        """Whether the file is a streaming step (RNNoise's step graph, FunASR's), fed `hops` at a time."""
        return "stream" in self.meta or "caches" in self.meta

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if "caches" in self.meta:
            return self._funasr(x).to(x.device)
        array = np.ascontiguousarray(x.detach().float().cpu().numpy())
        if "stream" in self.meta:
            return torch.from_numpy(self._stream(array)).to(x.device)
        out = self.session.run([self.meta["output"]], {self.meta["input"]: array})[0]
        return torch.from_numpy(out).to(x.device)

    def _stream(self, noisy: np.ndarray) -> np.ndarray:
        """A step graph over whole signals [B, T]: `hops` hops per call (the file's `stream.hops`, 1
        for a file without it), from zero state, the input followed by zeros for the stream's delay
        and to a whole number of calls, that delay dropped from the output."""
        stream = self.meta["stream"]
        hop, delay = stream["hop"], stream["latency"]
        call = hop * (self.hops or stream.get("hops", 1))
        batch, length = noisy.shape
        total = -(-(length + delay) // call) * call
        padded = np.pad(noisy, ((0, 0), (0, total - length)))
        state = {name: np.zeros([batch, *shape[1:]], np.float32) for name, shape in stream["state"].items()}
        pieces = []
        for start in range(0, total, call):
            out, *new = self.session.run(None, {self.meta["input"]: padded[:, start : start + call], **state})
            pieces.append(out)
            state = dict(zip(state, new, strict=True))
        return np.concatenate(pieces, axis=1)[:, delay : delay + length]

    def _funasr(self, fbank: torch.Tensor) -> torch.Tensor:
        """FunASR's step graph (`export.funasr`) over whole signals' fbank: CMVN and LFR stacking
        as the model does them, one block from zero caches (or `hops` frames a call); its probabilities → log-probabilities,
        whose softmax (all `VADOutput` takes of logits) is those probabilities again."""
        cmvn = {key: torch.tensor(value) for key, value in self.meta["cmvn"].items()}
        speech = stack_frames((fbank.float().cpu() - cmvn["mean"]) * cmvn["inv_std"], self.meta["frontend"]["lfr_m"])
        probabilities = run_blocks(self.session, speech.numpy(), self.meta["caches"], frames=self.hops)
        return torch.from_numpy(np.log(np.maximum(probabilities, np.finfo(np.float32).tiny)))

    def fbank(self, noisy: torch.Tensor) -> torch.Tensor:
        f = self.meta["frontend"]
        return padded_fbank(noisy, self.sample_rate, f["n_mels"], f["window"], f["hop"], f["lookahead"])

    def frames(self, samples: int) -> int:
        return frame_count(samples, self.meta["frontend"]["hop"])

    def forward(self, noisy: torch.Tensor):
        if self.kind == "vad":
            features = self.fbank(noisy)
            return VADOutput(self._run(features), features)
        return EnhancedOutput(self._run(noisy))
