"""Real corpora by path: paired noisy/clean folders (VoiceBank-DEMAND) and DNS-style clean + noise.

Files are read on demand, resampled to the model's rate and mixed down to mono, so a corpus of any
size costs no memory up front. A file that cannot be read stops the run with its name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from speechcompress.data.audio import list_audio, read_audio
from speechcompress.data.mixing import MixtureDataset, RandomDraws, vad_labels


class AudioFolder:
    """The audio files of a folder as a sequence of float32 arrays at `sample_rate`."""

    def __init__(self, folder: str | Path, sample_rate: int) -> None:
        self.files = list_audio(folder)
        self.sample_rate = sample_rate

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> np.ndarray:
        return read_audio(self.files[index], self.sample_rate)[0]


def paired_files(noisy_dir: str | Path, clean_dir: str | Path) -> list[tuple[Path, Path]]:
    """(noisy, clean) pairs matched by relative path; an error lists clean files with no noisy twin."""
    noisy_dir, clean_dir = Path(noisy_dir), Path(clean_dir)
    clean = list_audio(clean_dir)
    pairs = [(noisy_dir / c.relative_to(clean_dir), c) for c in clean]
    missing = [str(n) for n, _ in pairs if not n.exists()]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise FileNotFoundError(f"{len(missing)} clean files in {clean_dir} have no noisy file of the same name: {shown}")
    return pairs


class PairedFolderDataset(Dataset):
    """VoiceBank-DEMAND layout: the same file names under `noisy_dir` and `clean_dir`.

    segment_seconds crops a random (train) or fixed (eval) excerpt; None keeps whole files.
    """

    def __init__(self, noisy_dir: str, clean_dir: str, sample_rate: int, segment_seconds: float | None = None,
                 fixed: bool = True, seed: int = 0) -> None:
        self.pairs = paired_files(noisy_dir, clean_dir)
        self.sources = [Path(noisy_dir), Path(clean_dir)]  # the run's data lineage
        self.sample_rate = sample_rate
        self.segment = None if segment_seconds is None else int(segment_seconds * sample_rate)
        self.draws = RandomDraws(seed, fixed)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        noisy_path, clean_path = self.pairs[index]
        noisy, _ = read_audio(noisy_path, self.sample_rate)
        clean, _ = read_audio(clean_path, self.sample_rate)
        length = min(len(noisy), len(clean))
        noisy, clean = noisy[:length], clean[:length]
        if self.segment is not None:
            rng = self.draws(index)
            start = int(rng.integers(0, max(1, length - self.segment + 1)))
            pad = max(0, self.segment - length)
            noisy = np.pad(noisy[start : start + self.segment], (0, pad))
            clean = np.pad(clean[start : start + self.segment], (0, pad))
        return {
            "noisy": torch.from_numpy(np.ascontiguousarray(noisy, dtype=np.float32)),
            "clean": torch.from_numpy(np.ascontiguousarray(clean, dtype=np.float32)),
            "vad": torch.from_numpy(vad_labels(clean, self.sample_rate)),
            "index": torch.tensor(index),
        }


def dns_mixtures(clean_dir: str, noise_dir: str, sample_rate: int, **mixing) -> MixtureDataset:
    """DNS Challenge layout: `clean/` speech and `noise/` clips mixed on the fly at configured SNRs."""
    return MixtureDataset(AudioFolder(clean_dir, sample_rate), AudioFolder(noise_dir, sample_rate), sample_rate,
                          sources=[Path(clean_dir), Path(noise_dir)], **mixing)
