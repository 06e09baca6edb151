"""Material to judge a run by: wavs with spectrogram PNGs (denoisers), wavs with decision plots (VADs)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on training machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from speechcompress.data.audio import write_audio  # noqa: E402
from speechcompress.spectrogram import plot_spectrogram  # noqa: E402


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
            plot_spectrogram(axis, wave, sample_rate)
            axis.set_ylabel(f"{name}\nHz")
        axes[-1].set_xlabel("seconds")
        figure.tight_layout()
        png = folder / f"example{index}_spectrogram.png"
        figure.savefig(png, dpi=80)
        plt.close(figure)
        written.append(png)
    return written


def write_vad_examples(examples: list[dict[str, np.ndarray]], sample_rate: int, segments, folder: Path) -> list[Path]:
    """Writes `example{i}_noisy.wav` and `example{i}_vad.png`: spectrogram, then speech probability,
    labels and post-processed segments (a `SegmentConfig`) over time; returns the files."""
    from speechcompress.evaluation.vad_segments import FRAME_SECONDS, speech_segments

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for index, example in enumerate(examples):
        wav = folder / f"example{index}_noisy.wav"
        write_audio(wav, example["noisy"], sample_rate)
        figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 4.8), sharex=True)
        plot_spectrogram(top, example["noisy"], sample_rate)
        top.set_ylabel("noisy\nHz")
        times = np.arange(len(example["probability"])) * FRAME_SECONDS
        bottom.fill_between(times, 0, example["labels"], step="post", color="0.85", label="speech label")
        bottom.plot(times, example["probability"], lw=1, label="speech probability")
        for segment in speech_segments(example["probability"], segments):
            bottom.axvspan(segment.start, segment.end, ymin=0.92, ymax=1.0, color="tab:red", alpha=0.7)
        bottom.axhline(segments.threshold, color="0.4", lw=0.6, ls="--")
        bottom.set_ylim(0, 1.08)
        bottom.set_ylabel("speech")
        bottom.set_xlabel("seconds (red bars: segments)")
        bottom.legend(loc="lower right", fontsize=8)
        figure.tight_layout()
        png = folder / f"example{index}_vad.png"
        figure.savefig(png, dpi=80)
        plt.close(figure)
        written += [wav, png]
    return written
