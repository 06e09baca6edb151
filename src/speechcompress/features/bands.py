"""ERB-spaced triangular bands: band energies of a spectrum, and band gains spread back to bins.

The triangles form a partition of unity over the bins, so spreading band gains back is a linear
interpolation between band centres, as in RNNoise.
"""

from __future__ import annotations

import math

import torch
from torchaudio.functional import create_dct


def _hz_to_erb(hz: float) -> float:
    return 21.4 * math.log10(1.0 + 0.00437 * hz)


def _erb_to_hz(erb: float) -> float:
    return (10.0 ** (erb / 21.4) - 1.0) / 0.00437


def erb_band_centers(n_bands: int, n_bins: int, sample_rate: int) -> list[int]:
    """Bin indices of `n_bands` centres equally spaced on the ERB scale from 0 Hz to Nyquist.

    Centres are at least one bin apart, so at low frequencies the spacing is set by the FFT size.
    """
    if n_bands < 2 or n_bands > n_bins:
        raise ValueError(f"n_bands must be between 2 and the number of bins ({n_bins}), got {n_bands}")
    top = _hz_to_erb(sample_rate / 2)
    hz_per_bin = (sample_rate / 2) / (n_bins - 1)
    centers = [round(_erb_to_hz(top * i / (n_bands - 1)) / hz_per_bin) for i in range(n_bands)]
    for i in range(1, n_bands):  # enforce a strictly increasing sequence, then pin the last to Nyquist
        centers[i] = max(centers[i], centers[i - 1] + 1)
    for i in range(n_bands - 1, 0, -1):
        centers[i] = min(centers[i], n_bins - 1 - (n_bands - 1 - i))
    return centers


def triangular_filterbank(n_bands: int, n_bins: int, sample_rate: int) -> torch.Tensor:
    """[n_bands, n_bins] weights; each column sums to 1."""
    centers = erb_band_centers(n_bands, n_bins, sample_rate)
    weights = torch.zeros(n_bands, n_bins)
    for b in range(n_bands):
        weights[b, centers[b]] = 1.0
        if b + 1 < n_bands:
            lo, hi = centers[b], centers[b + 1]
            ramp = torch.arange(1, hi - lo, dtype=torch.float32) / (hi - lo)
            weights[b, lo + 1 : hi] = 1.0 - ramp
            weights[b + 1, lo + 1 : hi] = ramp
    return weights


def dct_matrix(n: int) -> torch.Tensor:
    """Orthonormal DCT-II as an [n, n] float32 matrix: coefficients = x @ dct_matrix(n).T. torchaudio's
    `create_dct`, which builds in the default dtype: built in float64 (raised for the call) and rounded
    once, so the float32 table is the exact one, not float32 arithmetic's (which differs by up to 2e-6)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return create_dct(n, n, "ortho").T.float()
    finally:
        torch.set_default_dtype(previous)
