"""Running trained models on audio of any length and sample rate.

Denoisers run in fixed windows that overlap, a few windows per forward pass, so that working
memory depends on the window and not on the file: a one-hour file costs what a ten-second one
does, plus its input and output arrays. Consecutive windows are cross-faded linearly over the
overlap (weights k/(n+1) and 1 − k/(n+1), which sum to one): both windows estimate the same
signal, so their outputs are correlated and a linear (amplitude-complementary) fade keeps the
level, where an equal-power fade would raise it by up to 3 dB mid-seam. A file no longer than one
window is processed whole. Everything runs under `torch.inference_mode`; on CUDA the network
runs under fp16 autocast (the models keep their STFTs and mask products in fp32).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from speechcompress.data.audio import resample


@dataclass(frozen=True)
class Windows:
    """How long audio is cut for a denoiser: `window_seconds` windows overlapping by
    `overlap_seconds`; on CUDA up to `batch` windows per forward pass and fp16 autocast if `fp16`.
    The CPU takes one window at a time: batching gains it little and multiplies its memory."""

    window_seconds: float = 10.0
    overlap_seconds: float = 2.0
    batch: int = 4
    fp16: bool = True

    def samples(self, sample_rate: int) -> tuple[int, int]:
        window, overlap = round(self.window_seconds * sample_rate), round(self.overlap_seconds * sample_rate)
        if window < 1 or not 0 <= overlap < window or self.batch < 1:
            raise ValueError(f"inference windows need window_seconds > 0, 0 ≤ overlap_seconds < window_seconds and "
                             f"batch ≥ 1 (got window_seconds={self.window_seconds}, overlap_seconds="
                             f"{self.overlap_seconds}, batch={self.batch})")
        return window, overlap


def autocast_for(device: torch.device, fp16: bool = True) -> contextlib.AbstractContextManager:
    """fp16 autocast on CUDA (when asked); nothing on the CPU, where fp16 convolutions are slow."""
    if fp16 and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def window_starts(length: int, window: int, overlap: int) -> list[int]:
    """Starts of the windows that cover [0, length): every window − overlap samples."""
    step = window - overlap
    count = 1 if length <= window else -(-(length - window) // step) + 1
    return [i * step for i in range(count)]


def model_device(model: nn.Module) -> torch.device:
    """The device of `model`'s parameters; the CPU for a model without any: an exported file
    (`export.runtime`), which its runtime runs on the CPU."""
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


@torch.inference_mode()
def enhance_batch(model: nn.Module, noisy: torch.Tensor, windows: Windows = Windows()) -> torch.Tensor:
    """Noisy [B, T] at the model's rate → enhanced [B, T] float32 on `noisy`'s device; windows go
    to the model's device (on CUDA `windows.batch` at a time) and come back one group at a time."""
    device = model_device(model)
    window, overlap = windows.samples(model.sample_rate)
    batch, length = noisy.shape
    if length <= window:
        with autocast_for(device, windows.fp16):
            return model(noisy.to(device).float()).enhanced.float().to(noisy.device)
    starts = window_starts(length, window, overlap)
    rise = torch.arange(1, overlap + 1, dtype=torch.float32, device=noisy.device) / (overlap + 1)
    out = torch.zeros(batch, length, dtype=torch.float32, device=noisy.device)
    per_pass = max(1, windows.batch // batch) if device.type == "cuda" else 1
    # the last window ends where the file does (it is shorter, so it runs alone): the model then
    # sees the same end of signal as whole-file inference, not a run of zeros after it
    groups = [starts[i : i + per_pass] for i in range(0, len(starts) - 1, per_pass)] + [starts[-1:]]
    for group in groups:
        pieces = torch.cat([noisy[:, s : s + window] for s in group]).to(device).float()
        with autocast_for(device, windows.fp16):
            enhanced = model(pieces).enhanced.float().to(noisy.device)
        for i, start in enumerate(group):
            piece = enhanced[i * batch : (i + 1) * batch]
            if start > 0:  # fade in over the overlap with the previous window
                piece[:, :overlap] *= rise
            if start + window < length:  # fade out under the next window
                piece[:, window - overlap :] *= rise.flip(0)
            out[:, start : start + piece.shape[1]] += piece
    return out


def enhance_waveform(model: nn.Module, wave: np.ndarray, sample_rate: int, windows: Windows = Windows()) -> np.ndarray:
    """Mono float32 `wave` at `sample_rate` → enhanced mono float32 at the same rate and length."""
    if len(wave) == 0:
        return np.zeros(0, np.float32)
    x = torch.from_numpy(np.ascontiguousarray(resample(wave, sample_rate, model.sample_rate), np.float32))
    out = resample(enhance_batch(model, x.unsqueeze(0), windows).squeeze(0).numpy(), model.sample_rate, sample_rate)
    return np.pad(out, (0, max(0, len(wave) - len(out))))[: len(wave)]


def compile_model(model: nn.Module, sample_rate: int, seconds: float = 4.0) -> tuple[nn.Module, float]:
    """`torch.compile(model, dynamic=True)` (symbolic lengths: one compilation serves every window
    and file length) and the seconds its compilation took: a first pass over `seconds` of noise,
    which compiles it, so that the files after it run the compiled code only."""
    import time

    compiled = torch.compile(model, dynamic=True)
    device = model_device(model)
    start = time.perf_counter()
    with torch.inference_mode():
        compiled(torch.zeros(1, int(seconds * sample_rate), device=device))
    return compiled, time.perf_counter() - start


@torch.inference_mode()
def speech_probabilities(model: nn.Module, wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 `wave` at `sample_rate` → speech probability per 10 ms frame from the start, float32."""
    if len(wave) == 0:
        return np.zeros(0, np.float32)
    device = model_device(model)
    x = torch.from_numpy(resample(wave, sample_rate, model.sample_rate)).to(device).unsqueeze(0)
    return model(x).speech_probability().squeeze(0).float().cpu().numpy()
