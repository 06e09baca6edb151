"""Reading audio files: any format soundfile reads, any rate, any channel count, to mono float32.

Samples that are not finite (NaN, ±inf) are set to 0 on reading, for every command and for
training data alike, with a `NonFiniteAudioWarning` that names the file and the count.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from speechcompress.atomic_files import atomic_path

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


class NonFiniteAudioWarning(UserWarning):
    """An audio file held NaN or infinite samples; they were set to 0."""


def resample(wave: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    if orig_rate == new_rate or len(wave) == 0:
        return wave.astype(np.float32, copy=False)
    return AF.resample(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), orig_rate, new_rate).numpy()


def read_audio(path: str | Path, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Mono float32 samples and their rate; resampled to `sample_rate` when one is given.

    A file soundfile cannot read raises ValueError naming the file.
    """
    try:
        wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        raise ValueError(f"cannot read audio file {path}: {error}. Check that it is a valid WAV/FLAC/OGG file.") from error
    mono = wave.mean(axis=1)
    bad = ~np.isfinite(mono)
    if bad.any():
        warnings.warn(f"{path}: {int(bad.sum())} non-finite samples (NaN or inf) set to 0", NonFiniteAudioWarning,
                      stacklevel=2)
        mono[bad] = 0.0
    if sample_rate is not None and rate != sample_rate:
        return resample(mono, rate, sample_rate), sample_rate
    return mono, rate


def write_audio(path: str | Path, wave: np.ndarray, sample_rate: int, float32: bool = False) -> None:
    """16-bit PCM (clipped to ±1) in the format of the file's suffix (WAV, FLAC; OGG as Vorbis), or
    with `float32` the samples unchanged as 32-bit float WAV; written atomically."""
    kind = Path(path).suffix.lstrip(".").upper() or "WAV"
    if float32 and kind != "WAV":
        raise ValueError(f"{path}: 32-bit float samples need a .wav file")
    with atomic_path(path) as partial:
        if float32:
            sf.write(str(partial), np.asarray(wave, np.float32), sample_rate, format=kind, subtype="FLOAT")
        else:
            sf.write(str(partial), np.clip(wave, -1.0, 1.0), sample_rate, format=kind,
                     subtype="VORBIS" if kind == "OGG" else "PCM_16")


def list_audio(folder: str | Path) -> list[Path]:
    """Audio files under `folder` (recursively), sorted; an error if there is none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"audio folder {folder} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) in {folder}")
    return files
