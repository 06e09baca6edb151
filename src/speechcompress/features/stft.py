"""A streaming-friendly STFT: frames of two hops with a power-complementary (Vorbis) window.

Frame n covers samples [(n-1)·hop, (n+1)·hop) of the input, so it is complete as soon as sample
(n+1)·hop − 1 has arrived. Because w[k]² + w[k+hop]² = 1, windowing both at analysis and synthesis
and overlap-adding reconstructs the input exactly, with no normalisation — offline and frame by frame.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def vorbis_window(length: int) -> torch.Tensor:
    """sin(π/2 · sin²(π(k+½)/N)): power-complementary at 50 % overlap (as xiph's RNNoise uses)."""
    k = torch.arange(length, dtype=torch.float64)
    return torch.sin(0.5 * math.pi * torch.sin(math.pi * (k + 0.5) / length) ** 2).float()


def num_frames(num_samples: int, hop: int) -> int:
    """Frames 0..ceil(T/hop): enough for the overlap-add to cover every input sample."""
    return -(-num_samples // hop) + 1


def stft(wave: torch.Tensor, hop: int, window: torch.Tensor) -> torch.Tensor:
    """[B, T] → complex [B, frames, hop+1]. The input is padded with one hop in front and zeros behind."""
    frames = num_frames(wave.shape[-1], hop)
    padded = F.pad(wave, (hop, (frames + 1) * hop - hop - wave.shape[-1]))
    chunks = padded.unfold(-1, 2 * hop, hop)  # [B, frames, 2·hop]
    return torch.fft.rfft(chunks * window, dim=-1)


def istft(spec: torch.Tensor, hop: int, window: torch.Tensor, length: int) -> torch.Tensor:
    """Inverse of `stft`: complex [B, frames, hop+1] → [B, length]."""
    chunks = torch.fft.irfft(spec, n=2 * hop, dim=-1) * window  # [B, frames, 2·hop]
    batch, frames, _ = chunks.shape
    out = F.fold(
        chunks.transpose(1, 2), output_size=(1, (frames + 1) * hop), kernel_size=(1, 2 * hop), stride=(1, hop)
    ).reshape(batch, -1)
    return out[:, hop : hop + length]
