"""On-the-fly mixing of clean speech and noise, and the 10 ms VAD labels of the clean speech.

Training draws a fresh pairing, SNR, gain and crop for every item, so every epoch sees new
mixtures; evaluation splits draw them from a fixed seed per item, so they never change.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

VAD_FRAME_SECONDS = 0.01


def vad_labels(clean: np.ndarray, sample_rate: int, threshold_db: float = -40.0, floor: float = 1e-7) -> np.ndarray:
    """1 for each 10 ms frame whose clean energy is within `threshold_db` of the loudest frame."""
    hop = int(round(sample_rate * VAD_FRAME_SECONDS))
    frames = -(-len(clean) // hop)
    padded = np.pad(clean, (0, frames * hop - len(clean)))
    energy = np.mean(padded.reshape(frames, hop) ** 2, axis=1)
    threshold = max(energy.max(initial=0.0) * 10 ** (threshold_db / 10), floor)
    return (energy > threshold).astype(np.float32)


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float, active: np.ndarray | None = None) -> np.ndarray:
    """Noise scaled so that speech power (over `active` samples, if given) / noise power = snr_db."""
    speech = clean[active] if active is not None and active.any() else clean
    speech_power = float(np.mean(speech**2)) + 1e-12
    noise_power = float(np.mean(noise**2)) + 1e-12
    return noise * np.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10)))


def _crop_or_pad(rng: np.random.Generator, x: np.ndarray, length: int) -> np.ndarray:
    if len(x) >= length:
        start = int(rng.integers(0, len(x) - length + 1))
        return x[start : start + length]
    start = int(rng.integers(0, length - len(x) + 1))
    return np.pad(x, (start, length - len(x) - start))


def _loop_to(rng: np.random.Generator, x: np.ndarray, length: int) -> np.ndarray:
    """A random excerpt of `x`, looped if `x` is shorter than `length`."""
    return np.resize(np.roll(x, -int(rng.integers(len(x)))), length)


class RandomDraws:
    """The random generator for each item a dataset serves.

    fixed=True: the same generator for an index every time (val/test never change).
    fixed=False: a new one per call, keyed by the number of calls so far, the DDP rank and the
    DataLoader worker's seed, so processes never repeat each other. Setting `calls` from a restored
    global step makes a resumed run draw exactly what the uninterrupted run would have.
    """

    def __init__(self, seed: int, fixed: bool) -> None:
        self.seed, self.fixed = seed, fixed
        self.calls = 0

    def __call__(self, index: int) -> np.random.Generator:
        if self.fixed:
            return np.random.default_rng([self.seed, index])
        self.calls += 1
        worker = get_worker_info()
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        return np.random.default_rng([self.seed, rank, worker.seed if worker else 0, self.calls])


class MixtureDataset(Dataset):
    """Mixes `speech` with `noise` clips (anything indexable that returns float32 arrays).

    fixed=True: item i is always the same mixture (val/test); fixed=False: fresh draws (train).
    segment_seconds=None keeps whole utterances (one item per utterance) instead of crops.
    noise_only: the share of items that are noise alone (clean all zeros, labels all 0), which
    teach a VAD not to fire on noise and measure how often it does.
    """

    def __init__(
        self,
        speech: Sequence[np.ndarray],
        noise: Sequence[np.ndarray],
        sample_rate: int,
        length: int | None = None,
        segment_seconds: float | None = 2.0,
        snr_db: tuple[float, float] = (-5.0, 20.0),
        level_db: tuple[float, float] = (-35.0, -15.0),
        fixed: bool = False,
        seed: int = 0,
        noise_only: float = 0.0,
    ) -> None:
        if len(speech) == 0 or len(noise) == 0:
            raise ValueError("MixtureDataset needs at least one speech clip and one noise clip")
        if not 0.0 <= noise_only <= 1.0:
            raise ValueError(f"noise_only is a share of items, between 0 and 1; got {noise_only}")
        self.noise_only = noise_only
        self.speech, self.noise = speech, noise
        self.sample_rate = sample_rate
        self.length = length if length is not None else len(speech)
        self.segment = None if segment_seconds is None else int(segment_seconds * sample_rate)
        self.snr_db, self.level_db = tuple(snr_db), tuple(level_db)
        self.draws = RandomDraws(seed, fixed)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self.draws(index)
        if self.segment is None:
            clean = np.asarray(self.speech[index % len(self.speech)], dtype=np.float32)
        else:
            clean = _crop_or_pad(rng, self.speech[int(rng.integers(len(self.speech)))], self.segment)
        noise = _loop_to(rng, np.asarray(self.noise[int(rng.integers(len(self.noise)))], np.float32), len(clean))
        snr_db = rng.uniform(*self.snr_db)
        if self.noise_only and rng.uniform() < self.noise_only:  # no draw at all when off: mixtures stay as they were
            clean = np.zeros_like(clean)
        labels = vad_labels(clean, self.sample_rate)
        if labels.any():
            active = np.repeat(labels, int(round(self.sample_rate * VAD_FRAME_SECONDS)))[: len(clean)] > 0
            noise = mix_at_snr(clean, noise, snr_db, active)
        noisy = clean + noise
        gain = 10 ** (rng.uniform(*self.level_db) / 20) / (np.sqrt(np.mean(noisy**2)) + 1e-9)
        gain = min(gain, 0.99 / (np.abs(noisy).max() + 1e-9))  # never clip
        return {
            "noisy": torch.from_numpy((noisy * gain).astype(np.float32)),
            "clean": torch.from_numpy((clean * gain).astype(np.float32)),
            "vad": torch.from_numpy(labels),
            "index": torch.tensor(index),
        }


def pad_collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack items of unequal length, zero-padded; `length` keeps each item's true sample count.
    Scalars (the item's dataset `index`, which metrics use to count each item once) are stacked."""
    lengths = torch.tensor([item["noisy"].shape[-1] for item in items])
    batch = {"length": lengths}
    for key in items[0]:
        if items[0][key].dim() == 0:
            batch[key] = torch.stack([item[key] for item in items])
            continue
        longest = max(item[key].shape[-1] for item in items)
        batch[key] = torch.stack([torch.nn.functional.pad(item[key], (0, longest - item[key].shape[-1])) for item in items])
    return batch
