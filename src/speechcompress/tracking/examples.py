"""Listening material for a run: noisy / enhanced / clean wavs and a spectrogram PNG per example."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on training machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import signal  # noqa: E402

from speechcompress.data.audio import write_audio  # noqa: E402


def _plot_spectrogram(axis, wave: np.ndarray, sample_rate: int) -> None:
    freqs, times, power = signal.spectrogram(wave, fs=sample_rate, nperseg=512, noverlap=384)
    # The floor keeps digital silence (exact zeros) finite on the dB scale.
    axis.pcolormesh(times, freqs, 10 * np.log10(power + 1e-12), cmap="magma", vmin=-120, vmax=-20, shading="auto")


def write_examples(examples: list[dict[str, np.ndarray]], sample_rate: int, folder: Path) -> list[Path]:
    """Writes `example{i}_{noisy,enhanced,clean}.wav` and `example{i}_spectrogram.png`; returns the files."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for index, example in enumerate(examples):
        figure, axes = plt.subplots(len(example), 1, figsize=(10, 2.4 * len(example)), sharex=True)
        for axis, (name, wave) in zip(np.atleast_1d(axes), example.items(), strict=True):
            path = folder / f"example{index}_{name}.wav"
            write_audio(path, wave, sample_rate)
            written.append(path)
            _plot_spectrogram(axis, wave, sample_rate)
            axis.set_ylabel(f"{name}\nHz")
        axes[-1].set_xlabel("seconds")
        figure.tight_layout()
        png = folder / f"example{index}_spectrogram.png"
        figure.savefig(png, dpi=80)
        plt.close(figure)
        written.append(png)
    return written
