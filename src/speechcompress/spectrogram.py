"""The one spectrogram picture of the project: run examples and the corpus report draw it alike."""

from __future__ import annotations

import numpy as np
from scipy import signal


def plot_spectrogram(axis, wave: np.ndarray, sample_rate: int) -> None:
    """`wave`'s power spectrogram in dB on `axis` (matplotlib), -120 to -20 dB, magma."""
    freqs, times, power = signal.spectrogram(wave, fs=sample_rate, nperseg=512, noverlap=384)
    # The floor keeps digital silence (exact zeros) finite on the dB scale.
    axis.pcolormesh(times, freqs, 10 * np.log10(power + 1e-12), cmap="magma", vmin=-120, vmax=-20, shading="auto")
