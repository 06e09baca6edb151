"""Reading audio files: any format soundfile reads, any rate, any channel count, to mono float32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def resample(wave: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    if orig_rate == new_rate:
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
    if sample_rate is not None and rate != sample_rate:
        return resample(mono, rate, sample_rate), sample_rate
    return mono, rate


def write_audio(path: str | Path, wave: np.ndarray, sample_rate: int) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(wave, -1.0, 1.0), sample_rate, subtype="PCM_16")


def list_audio(folder: str | Path) -> list[Path]:
    """Audio files under `folder` (recursively), sorted; an error if there is none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"audio folder {folder} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) in {folder}")
    return files
