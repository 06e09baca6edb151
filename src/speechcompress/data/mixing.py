"""On-the-fly mixing of clean speech and noise, and the 10 ms VAD labels of the clean speech.

Training draws a fresh pairing, SNR, gain, crop, level changes and clipping for every item, so
every epoch sees new mixtures; evaluation splits draw them from a fixed seed per item, so they
never change. Rooms and device responses come with the clips (`synthetic` applies them once, when
it makes its cache), so an item costs a few array operations: the mixer keeps far ahead of training
(`benchmarks/data_pipeline.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from speechcompress.data.microphone import clip_peaks, level_changes

VAD_FRAME_SECONDS = 0.01


def frame_energy(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mean square of each 10 ms frame of `x` (the last one zero-padded to a whole frame)."""
    hop = int(round(sample_rate * VAD_FRAME_SECONDS))
    frames = -(-len(x) // hop)
    if frames * hop != len(x):
        x = np.pad(x, (0, frames * hop - len(x)))
    blocks = x.reshape(frames, hop)
    return np.einsum("ij,ij->i", blocks, blocks) / hop


FLOOR_SHARE = 0.1  # the quietest tenth of a clip's sounding frames tells its noise floor
FLOOR_MARGIN_DB = 12.0  # a voiced frame stands this far above the floor (a steady floor's frames vary by a few dB)
FLOOR_CAP_DB = -25.0  # the floor never lifts the threshold past this, relative to the loudest frame
FLOOR_SPREAD_DB = 6.0  # a floor is steady: its quietest frames lie this close together, where fades spread wide


def noise_floor(energy: np.ndarray) -> float:
    """The energy of a clip's steady noise floor, 0 where it has none: the `FLOOR_SHARE` quantile
    of its frames that sound at all (digital silence, such as the pauses between assembled clips,
    tells nothing), when the quietest of them lie within `FLOOR_SPREAD_DB` of it. Clean speech has
    no such floor: its quietest frames are fades and breaths over tens of dB."""
    sounding = energy[energy > energy.max(initial=0.0) * 1e-8]
    if not len(sounding):
        return 0.0
    low, floor = np.quantile(sounding, [FLOOR_SHARE / 5, FLOOR_SHARE])
    return float(floor) if floor <= low * 10 ** (FLOOR_SPREAD_DB / 10) else 0.0


def _labels(energy: np.ndarray, threshold_db: float = -40.0, floor: float = 1e-7) -> np.ndarray:
    peak = energy.max(initial=0.0)
    above_floor = min(noise_floor(energy) * 10 ** (FLOOR_MARGIN_DB / 10), peak * 10 ** (FLOOR_CAP_DB / 10))
    threshold = max(peak * 10 ** (threshold_db / 10), above_floor, floor)
    return (energy > threshold).astype(np.float32)


def vad_labels(clean: np.ndarray, sample_rate: int, threshold_db: float = -40.0, floor: float = 1e-7) -> np.ndarray:
    """1 for each 10 ms frame where the voice is: its clean energy within `threshold_db` of the
    loudest frame and `FLOOR_MARGIN_DB` above the clip's own noise floor (`noise_floor`), so that
    a recording's hum, hiss or music bed between words is not called speech. The floor counts only
    up to `FLOOR_CAP_DB` below the loudest frame, where a clip that is voice throughout (its
    quietest frames are voice) would otherwise lose its quieter syllables."""
    return _labels(frame_energy(clean, sample_rate), threshold_db, floor)


def _power(x: np.ndarray) -> float:
    return float(np.dot(x, x)) / max(len(x), 1)


def _peak(x: np.ndarray) -> float:
    return max(float(x.max(initial=0.0)), -float(x.min(initial=0.0)))  # no |x| copy: this runs per item


def _scaled_to_snr(noise: np.ndarray, speech_power: float, snr_db: float) -> np.ndarray:
    noise_power = _power(noise) + 1e-12
    return noise * np.float32(np.sqrt((speech_power + 1e-12) / (noise_power * 10 ** (snr_db / 10))))


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float, active: np.ndarray | None = None) -> np.ndarray:
    """Noise scaled so that speech power (over `active` samples, if given) / noise power = snr_db."""
    speech = clean[active] if active is not None and active.any() else clean
    return _scaled_to_snr(noise, float(np.mean(np.square(speech))), snr_db)


def _crop_or_pad(rng: np.random.Generator, length: int, *clips: np.ndarray) -> list[np.ndarray]:
    """The same random `length` window of each of `clips` (all as long as the first), zero-padded at
    a random place where the clips are shorter."""
    samples = len(clips[0])
    if samples >= length:
        start = int(rng.integers(0, samples - length + 1))
        return [clip[start : start + length] for clip in clips]
    start = int(rng.integers(0, length - samples + 1))
    return [np.pad(clip, (start, length - samples - start)) for clip in clips]


def _loop_to(rng: np.random.Generator, x: np.ndarray, length: int) -> np.ndarray:
    """A random excerpt of `x`, looped if `x` is shorter than `length`."""
    start = int(rng.integers(len(x)))
    if start + length <= len(x):
        return x[start : start + length]
    if length <= len(x):  # wraps around once: join the two pieces, not the whole clip
        return np.concatenate([x[start:], x[: length - (len(x) - start)]])
    return np.resize(np.concatenate([x[start:], x[:start]]), length)


def _cumulative(weights: Sequence[float] | None, count: int, name: str) -> np.ndarray | None:
    """Cumulative odds of drawing each of `count` clips, or None for equal odds."""
    if weights is None:
        return None
    weights = np.asarray(weights, dtype=np.float64)
    if len(weights) != count or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"{name} needs {count} non-negative weights, not all zero; got {len(weights)}")
    return np.cumsum(weights) / weights.sum()


def _draw(rng: np.random.Generator, count: int, odds: np.ndarray | None) -> int:
    """A random clip index: alike for every clip (one integer draw, as before weights existed) or by `odds`."""
    if odds is None:
        return int(rng.integers(count))
    return min(int(np.searchsorted(odds, rng.uniform(), side="right")), count - 1)


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

    `speech` holds the targets; `heard`, if given, what the microphone picked up of each (the
    same length: reverberant speech, whose target is its direct path and early reflections).
    fixed=True: item i is always the same mixture (val/test); fixed=False: fresh draws (train).
    segment_seconds=None keeps whole utterances (one item per utterance) instead of crops.
    noise_only: the share of items that are noise alone (clean all zeros, labels all 0), which
    teach a VAD not to fire on noise and measure how often it does.
    level_changes: the share of items whose level wanders within the item (input and target alike);
    clip: the share whose input alone is clipped lightly. Each of these at 0 draws nothing, so the
    other draws stay as they were without it.
    speech_weights / noise_weights: how likely each clip is to be drawn (they need not sum to 1);
    None draws them all alike. Whole-utterance splits (segment_seconds=None) take every utterance
    in turn whatever its weight.
    sources: the cache files or folders the clips came from, which a run logs as its data lineage.
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
        heard: Sequence[np.ndarray] | None = None,
        level_changes: float = 0.0,
        clip: float = 0.0,
        speech_weights: Sequence[float] | None = None,
        noise_weights: Sequence[float] | None = None,
        sources: Sequence[Path] = (),
    ) -> None:
        if len(speech) == 0 or len(noise) == 0:
            raise ValueError("MixtureDataset needs at least one speech clip and one noise clip")
        for name, share in dict(noise_only=noise_only, level_changes=level_changes, clip=clip).items():
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} is a share of items, between 0 and 1; got {share}")
        if heard is not None and len(heard) != len(speech):
            raise ValueError(f"heard has {len(heard)} clips for {len(speech)} speech clips: give one per clip")
        self.noise_only, self.level_changes, self.clip = noise_only, level_changes, clip
        self.speech, self.heard, self.noise = speech, heard, noise
        self.sample_rate = sample_rate
        self.sources = [Path(s) for s in sources]
        self.length = length if length is not None else len(speech)
        self.segment = None if segment_seconds is None else int(segment_seconds * sample_rate)
        self.snr_db, self.level_db = tuple(snr_db), tuple(level_db)
        self.draws = RandomDraws(seed, fixed)
        self.speech_odds = _cumulative(speech_weights, len(speech), "speech_weights")
        self.noise_odds = _cumulative(noise_weights, len(noise), "noise_weights")

    def __len__(self) -> int:
        return self.length

    def _speech(self, rng: np.random.Generator, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(target, heard) of one item: a whole utterance, or one crop taken from both alike."""
        chosen = index % len(self.speech) if self.segment is None else _draw(rng, len(self.speech), self.speech_odds)
        target = np.asarray(self.speech[chosen], dtype=np.float32)
        heard = target if self.heard is None else np.asarray(self.heard[chosen], dtype=np.float32)
        if self.segment is None:
            return target, heard
        if heard is target:  # dry speech: one crop serves as both, and `__getitem__` sees that it does
            (target,) = _crop_or_pad(rng, self.segment, target)
            return target, target
        target, heard = _crop_or_pad(rng, self.segment, target, heard)
        return target, heard

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self.draws(index)
        clean, heard = self._speech(rng, index)
        noise = _loop_to(rng, np.asarray(self.noise[_draw(rng, len(self.noise), self.noise_odds)], np.float32), len(clean))
        snr_db = rng.uniform(*self.snr_db)
        if self.noise_only and rng.uniform() < self.noise_only:  # no draw at all when off: mixtures stay as they were
            clean = heard = np.zeros_like(clean)
        energy = frame_energy(clean, self.sample_rate)
        labels = _labels(energy)
        if labels.any():  # SNR of what the microphone heard, over the frames that hold speech
            heard_energy = energy if heard is clean else frame_energy(heard, self.sample_rate)
            noise = _scaled_to_snr(noise, float(np.mean(heard_energy[labels > 0])), snr_db)
        noisy = heard + noise
        if self.level_changes and rng.uniform() < self.level_changes:
            gain = level_changes(rng, len(noisy), self.sample_rate)
            noisy, clean = noisy * gain, clean * gain
        if self.clip and rng.uniform() < self.clip:
            noisy = clip_peaks(rng, noisy)
        gain = 10 ** (rng.uniform(*self.level_db) / 20) / (np.sqrt(_power(noisy)) + 1e-9)
        gain = min(gain, 0.99 / (_peak(noisy) + 1e-9), 0.99 / (_peak(clean) + 1e-9))  # never clip
        return {
            "noisy": torch.from_numpy(np.asarray(noisy * gain, dtype=np.float32)),
            "clean": torch.from_numpy(np.asarray(clean * gain, dtype=np.float32)),
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
