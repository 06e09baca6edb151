"""xiph's RNNoise front-end at 48 kHz (the 2024 model), in torch: what librnnoise computes per frame.

- Frames of 480 samples (10 ms); each analysis window is the previous and the current frame
  (960 samples) under the Vorbis power-complementary window, and its FFT is scaled by 1/960 (kiss
  FFT's forward scaling), so energies are those of the samples on the int16 scale divided by 960².
- 32 bands on `BAND_EDGES` (FFT bins of 50 Hz, up to 20 kHz; ERB-like widths, 100 Hz at the
  bottom), each a triangle over two intervals of the edges; the first band is its triangle plus the
  half-triangle below it, times 2/3, the last likewise with the one above it. Bins from 20 kHz up
  belong to no band.
- Cepstrum: log10(0.01 + E) per band, floored at 7 below the highest band seen so far and at 1.5
  below the previous band's (floored) value, going up from the first band, starting from −2; then
  an orthonormal DCT-II scaled by √(32/22) (xiph keeps the 2/22 of its 22-band first version), the
  first two coefficients lowered by 12 and 4.
"""

from __future__ import annotations

import math

import torch

from speechcompress.features.bands import dct_matrix
from speechcompress.features.stft import stft, vorbis_window

SAMPLE_RATE = 48000
FRAME_SIZE = 480
N_BANDS = 32
# xiph's eband20ms: band edges in bins of 50 Hz (0, 100, 200, ... 17.8 kHz, 20 kHz)
BAND_EDGES = (0, 2, 4, 6, 8, 10, 12, 15, 18, 21, 24, 28, 32, 36, 41, 47, 53, 60, 68, 77, 87, 98, 110, 124, 140,
              157, 176, 198, 223, 251, 282, 317, 356, 400)
N_BINS = FRAME_SIZE + 1
_DCT_SCALE = math.sqrt(32 / 22)
_LOG_FLOOR, _FOLLOW_DROP, _RANGE = 1e-2, 1.5, 7.0
_CEPSTRUM_OFFSET = (12.0, 4.0)


def band_matrix() -> torch.Tensor:
    """[32, 481]: band energies = |X|² @ band_matrix().T."""
    nodes = torch.zeros(N_BANDS + 2, N_BINS, dtype=torch.float64)
    for i in range(N_BANDS + 1):
        start, width = BAND_EDGES[i], BAND_EDGES[i + 1] - BAND_EDGES[i]
        frac = torch.arange(width, dtype=torch.float64) / width
        nodes[i, start : start + width] += 1 - frac
        nodes[i + 1, start : start + width] += frac
    nodes[1] = (nodes[0] + nodes[1]) * 2 / 3
    nodes[N_BANDS] = (nodes[N_BANDS] + nodes[N_BANDS + 1]) * 2 / 3
    return nodes[1 : N_BANDS + 1].float()


def spectrum(wave: torch.Tensor) -> torch.Tensor:
    """[B, T] samples (int16 scale) → complex [B, frames, 481]: frame t is the window ending with
    the (t+1)-th 480 samples, as librnnoise's t-th call analyses it."""
    window = vorbis_window(2 * FRAME_SIZE).to(wave.device)
    return stft(wave, FRAME_SIZE, window)[:, :-1] / (2 * FRAME_SIZE)


def band_energy(spec: torch.Tensor) -> torch.Tensor:
    """complex [B, frames, 481] → [B, frames, 32]."""
    return (spec.real.square() + spec.imag.square()) @ band_matrix().to(spec.device).T


def log_bands(energy: torch.Tensor) -> torch.Tensor:
    """log10(0.01 + E), floored band by band from the lowest up (see the module docstring)."""
    log = torch.log10(_LOG_FLOOR + energy)
    highest = follow = torch.full_like(log[..., 0], -2.0)
    floored = []
    for band in range(log.shape[-1]):
        value = torch.maximum(highest - _RANGE, torch.maximum(follow - _FOLLOW_DROP, log[..., band]))
        highest, follow = torch.maximum(highest, value), torch.maximum(follow - _FOLLOW_DROP, value)
        floored.append(value)
    return torch.stack(floored, dim=-1)


def cepstrum(energy: torch.Tensor) -> torch.Tensor:
    """[B, frames, 32] band energies → the first 32 features of xiph's 65."""
    coefficients = log_bands(energy) @ (dct_matrix(N_BANDS).to(energy.device).T * _DCT_SCALE)
    offset = torch.zeros(N_BANDS, device=energy.device)
    offset[: len(_CEPSTRUM_OFFSET)] = torch.tensor(_CEPSTRUM_OFFSET)
    return coefficients - offset
