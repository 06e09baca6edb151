"""A split's recorded clips and their cache: utterances and noise clips heard in rooms and through
devices (`record`, `record_split`), kept in one .npz per split (`write_split`, `read_split`). The
espeak-ng corpus (`data.synthetic`) and the real recordings (`data.real`) both build their splits
with these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal

from speechcompress.atomic_files import atomic_path
from speechcompress.data.microphone import random_response
from speechcompress.data.rooms import reverberate


@dataclass
class SyntheticSplit:
    speech: list[np.ndarray]  # float32 target utterances at the requested sample rate
    heard: list[np.ndarray]  # what the microphone picks up of each: reverberant where a room was drawn, else
    # the target's own array
    noise: list[np.ndarray]  # float32 noise clips, unit RMS
    noise_kinds: list[str]  # the family of each noise clip
    source: Path | None = None  # the cache file it was read from (the run's lineage names it)


def _pack(clips: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.cumsum([0] + [len(c) for c in clips])
    return np.concatenate(clips), offsets


def _unpack(samples: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [samples[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]


def record_split(rng: np.random.Generator, speech: list[np.ndarray], noise: list[np.ndarray], kinds: list[str],
                 rooms: list, settings: Mapping, sample_rate: int) -> SyntheticSplit:
    """A split's dry utterances and noise clips as recorded (`record`, with the shares in `settings`):
    each utterance's target and heard audio at one peak scale, each noise clip at unit RMS."""
    targets, heard = [], []
    for dry in speech:
        target, wet = record(rng, dry, rooms, settings["reverb_speech"], settings["devices"], sample_rate)
        peak = 0.9 / (max(np.abs(target).max(), np.abs(wet).max()) + 1e-9)  # int16 holds both, at one scale
        targets.append(target * peak)
        heard.append(targets[-1] if wet is target else wet * peak)
    recorded = []
    for clip in noise:
        clip = record(rng, clip, rooms, settings["reverb_noise"], settings["devices"], sample_rate)[1]
        recorded.append(clip / (np.sqrt(np.mean(clip**2)) + 1e-12))
    return SyntheticSplit(targets, heard, recorded, list(kinds))


def write_split(path: Path, split: SyntheticSplit) -> None:
    """Cache a split in one .npz: speech as int16, noise as float16; of the heard audio only what
    differs from the target (reverberant utterances)."""
    wet = [i for i, (target, heard) in enumerate(zip(split.speech, split.heard, strict=True)) if heard is not target]
    speech_samples, speech_offsets = _pack(split.speech)
    noise_samples, noise_offsets = _pack(split.noise)
    heard_samples, heard_offsets = (_pack([split.heard[i] for i in wet]) if wet
                                    else (np.zeros(0, np.float32), np.zeros(1, np.int64)))
    with atomic_path(path) as partial, partial.open("wb") as handle:  # a killed run never leaves a half-written cache
        np.savez(handle, speech=(speech_samples * 32767).astype(np.int16), speech_offsets=speech_offsets,
                 heard=(heard_samples * 32767).astype(np.int16), heard_offsets=heard_offsets,
                 heard_ids=np.array(wet, dtype=np.int64), noise=noise_samples.astype(np.float16),
                 noise_offsets=noise_offsets, noise_kinds=np.array(split.noise_kinds))


def read_split(path: Path) -> SyntheticSplit:
    """A split cached by `write_split`."""
    with np.load(path) as cached:
        speech = _unpack(cached["speech"].astype(np.float32) / 32767, cached["speech_offsets"])
        heard = list(speech)  # the dry utterances' own arrays: no second copy in memory
        for i, wet in zip(cached["heard_ids"], _unpack(cached["heard"].astype(np.float32) / 32767,
                                                        cached["heard_offsets"]), strict=True):
            heard[i] = wet
        noise = _unpack(cached["noise"].astype(np.float32), cached["noise_offsets"])
        kinds = [str(k) for k in cached["noise_kinds"]]
    return SyntheticSplit(speech, heard, noise, kinds, path)


def record(rng: np.random.Generator, dry: np.ndarray, rooms: list, reverb: float, devices: float,
            sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(target, heard) of a clip: in a random room for a share `reverb` of clips (target: its direct
    path and early reflections), through a random device for a share `devices` (both alike)."""
    target = heard = dry
    if reverb and rng.uniform() < reverb:
        heard, target = reverberate(dry, rooms[int(rng.integers(len(rooms)))], sample_rate)
    if devices and rng.uniform() < devices:
        response = random_response(rng, sample_rate)
        if heard is target:  # dry: one array serves as both
            target = heard = signal.sosfilt(response, target).astype(np.float32)
        else:
            target, heard = signal.sosfilt(response, np.stack([target, heard])).astype(np.float32)
    return target, heard
