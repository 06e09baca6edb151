"""Microphone and codec colouring: a random frequency response with band limits (applied to clips
when a corpus is made), and level changes and light clipping (drawn per item by the mixer).

Written with scipy rather than taken from audiomentations: every random choice comes from the
numpy Generator handed in (the corpus seed, or the per-item `mixing.RandomDraws`), which keeps
caches reproducible, evaluation items fixed and resumed runs exact, and one response must reach
both a clip's input and its target. audiomentations draws from Python's and numpy's global
generators.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from speechcompress.data.noise import random_curve


def _peaking(frequency: float, gain_db: float, q: float, sample_rate: int) -> np.ndarray:
    """One peaking-EQ biquad as a second-order section (the Audio EQ Cookbook's formulas)."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * frequency / sample_rate
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a])
    return np.concatenate([b / den[0], den / den[0]])


def random_response(rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Second-order sections of a device's response: 3–6 peaking bands of ±6 dB at random
    frequencies, a high-pass at 50–300 Hz half the time, and a low-pass at 3.4 kHz to 0.45 × the
    rate a third of the time (a phone line, a cheap codec)."""
    top = 0.45 * sample_rate
    sections = [_peaking(np.exp(rng.uniform(np.log(100), np.log(top * 0.9))), rng.uniform(-6, 6),
                         rng.uniform(0.5, 2.0), sample_rate) for _ in range(rng.integers(3, 7))]
    if rng.uniform() < 0.5:
        sections.append(signal.butter(2, rng.uniform(50, 300), "highpass", fs=sample_rate, output="sos")[0])
    if rng.uniform() < 1 / 3:
        sections.extend(signal.butter(4, rng.uniform(3400, top), "lowpass", fs=sample_rate, output="sos"))
    return np.stack(sections)


def level_changes(rng: np.random.Generator, n: int, sample_rate: int, depth_db: float = 6.0) -> np.ndarray:
    """A smooth gain curve that wanders by up to about ±depth_db within an item (a talker moving,
    an automatic gain control). It is drawn one value per millisecond, held for the millisecond:
    the steps are hundredths of a dB, and the curve costs a sixteenth as much."""
    hold = max(1, sample_rate // 1000)
    curve = np.clip(random_curve(rng, n // hold + 1, sample_rate / hold, rng.uniform(0.3, 2.0)), -1.5, 1.5)
    return np.repeat((10 ** (rng.uniform(0, depth_db) * curve / 20)).astype(np.float32), hold)[:n]


def clip_peaks(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """`x` clipped lightly: at the level its loudest 0.1–1 % of samples exceed."""
    rank = int(len(x) * (1 - rng.uniform(0.001, 0.01)))
    limit = np.partition(np.abs(x), rank)[rank]
    return np.clip(x, -limit, limit)
