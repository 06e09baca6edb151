"""FSMN-VAD's front-end: Kaldi log-mel filterbank, low-frame-rate (LFR) stacking and CMVN.

Frames are centred: frame i covers samples [hop·i − (window − hop)/2, …) with zeros beyond the
edges, so it lines up with the 10 ms label frame i that starts at hop·i, and a file of T samples
gives ceil(T / hop) frames, like its labels. (Kaldi's own `snip_edges=False` reflects the signal at
the edges instead, which a stream cannot do at its end before the end has arrived.)
"""

from __future__ import annotations

import math

import torch
import torchaudio.compliance.kaldi as kaldi
from torch import nn

INT16_SCALE = 32768.0  # Kaldi and FunASR read audio as int16 values, not [−1, 1)


def frame_count(samples: int, hop: int) -> int:
    return math.ceil(samples / hop)


def edge_padding(samples: int, window: int, hop: int, extra_frames: int = 0) -> tuple[int, int]:
    """Zeros to add before and after `samples` so that every frame is complete and centred, with
    `extra_frames` more frames after the last one (over the zeros that follow the audio)."""
    left = (window - hop) // 2
    frames = frame_count(samples, hop) + extra_frames
    right = max(0, (frames - 1) * hop + window - left - samples)
    return left, right


def padded_fbank(noisy: torch.Tensor, sample_rate: int, n_mels: int, window: int, hop: int,
                 extra_frames: int) -> torch.Tensor:
    """[B, T] waveform → [B, ceil(T / hop) + extra_frames, n_mels] log-mel energies of centred
    frames (zeros beyond the edges), `extra_frames` of them over the zeros after the end."""
    left, right = edge_padding(noisy.shape[-1], window, hop, extra_frames)
    padded = torch.nn.functional.pad(noisy.float(), (left, right))
    return torch.stack([kaldi_fbank(wave, sample_rate, n_mels, window, hop) for wave in padded])


def kaldi_fbank(padded: torch.Tensor, sample_rate: int, n_mels: int, window: int, hop: int) -> torch.Tensor:
    """Log-mel energies [frames, n_mels] of an already padded waveform [T] in [−1, 1].

    Kaldi's defaults otherwise (pre-emphasis 0.97, per-frame DC removal, power spectrum), with
    FunASR's choices: Hamming window, no dither, energy floor 0.
    """
    if padded.shape[-1] < window:
        return padded.new_zeros(0, n_mels)
    return kaldi.fbank(padded.unsqueeze(0) * INT16_SCALE, num_mel_bins=n_mels, frame_length=1000 * window / sample_rate,
                       frame_shift=1000 * hop / sample_rate, dither=0.0, energy_floor=0.0, window_type="hamming",
                       sample_frequency=sample_rate, snip_edges=True)


def stack_frames(features: torch.Tensor, m: int) -> torch.Tensor:
    """LFR with n = 1: frame i becomes frames i − (m−1)//2 … i + m//2 side by side.

    `features` [B, F + m//2, D] already holds the m//2 frames after the last output frame (the
    fbank of the zeros after the audio, as in a zero-padded batch, so an item scores the same alone
    or in any batch); the first frame is repeated before the start, as FunASR does. → [B, F, m·D].
    """
    left = (m - 1) // 2
    padded = torch.cat([features[:, :1].expand(-1, left, -1), features], dim=1)
    return sliding_stack(padded, m, features.shape[1] - m // 2)


def sliding_stack(frames: torch.Tensor, m: int, count: int) -> torch.Tensor:
    """The first `count` windows of m consecutive frames, each flattened: [B, F, D] → [B, count, m·D]."""
    if count == 0:
        return frames.new_zeros(frames.shape[0], 0, m * frames.shape[2])
    # m shifted slices side by side rather than `unfold`, which ONNX export cannot take on a time
    # axis of dynamic length
    return torch.cat([frames[:, i : i + count] for i in range(m)], dim=-1)


class CMVN(nn.Module):
    """Per-dimension mean and variance normalisation whose statistics are buffers of the model.

    The statistics are computed once from training features (`fit`) and then travel in every
    checkpoint, so a checkpoint alone reproduces the front-end.
    """

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dims))
        self.register_buffer("inv_std", torch.ones(dims))
        self.register_buffer("frames", torch.zeros((), dtype=torch.long))  # 0 until fitted

    @property
    def fitted(self) -> bool:
        return bool(self.frames > 0)

    @torch.no_grad()
    def fit(self, features: torch.Tensor) -> None:
        """Statistics of `features` [N, dims]."""
        if features.shape[0] < 2:
            raise ValueError("CMVN needs at least two feature frames to estimate a variance")
        self.mean.copy_(features.mean(0))
        self.inv_std.copy_(features.std(0).clamp_min(1e-5).reciprocal())
        self.frames.fill_(features.shape[0])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.mean) * self.inv_std
