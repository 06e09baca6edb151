"""Generated noise, seven kinds, each returned at unit RMS so the mixer alone sets the SNR.

Every generator takes a numpy Generator, so a noise clip is fixed by the seed that drew it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import signal


def _unit_rms(x: np.ndarray) -> np.ndarray:
    return (x / (np.sqrt(np.mean(x**2)) + 1e-12)).astype(np.float32)


def _colored(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power ∝ 1/f^exponent (0 white, 1 pink, 2 brown), shaped in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.arange(len(spectrum), dtype=np.float64)
    freqs[0] = 1.0
    return _unit_rms(np.fft.irfft(spectrum / freqs ** (exponent / 2), n))


def white(rng, n, sample_rate, speech=None):
    return _colored(rng, n, 0.0)


def pink(rng, n, sample_rate, speech=None):
    return _colored(rng, n, 1.0)


def brown(rng, n, sample_rate, speech=None):
    return _colored(rng, n, 2.0)


def babble(rng, n, sample_rate, speech: Sequence[np.ndarray] = ()):
    """Three to seven other talkers, each looped from a random start, summed at random levels."""
    if not speech:
        raise ValueError("babble noise needs a pool of speech clips")
    out = np.zeros(n)
    for _ in range(rng.integers(3, 8)):
        talker = speech[rng.integers(len(speech))]
        looped = np.resize(np.roll(talker, -int(rng.integers(len(talker)))), n)
        out += _unit_rms(looped) * 10 ** (rng.uniform(-6, 0) / 20)
    return _unit_rms(out)


def hum(rng, n, sample_rate, speech=None):
    """Mains hum: 50 or 60 Hz (±2 %) with decaying harmonics, slow amplitude wobble, a little hiss."""
    t = np.arange(n) / sample_rate
    f0 = rng.choice([50.0, 60.0]) * rng.uniform(0.98, 1.02)
    out = np.zeros(n)
    for k in range(1, int(min(40, sample_rate / 2 / f0))):
        out += rng.uniform(0.2, 1.0) / k**rng.uniform(0.5, 1.5) * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
    out *= 1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.1, 1.0) * t)
    return _unit_rms(_unit_rms(out) + 0.05 * _colored(rng, n, 1.0))


def clicks(rng, n, sample_rate, speech=None):
    """Transient clicks and knocks: decaying filtered bursts at random times over faint noise."""
    out = 0.02 * _colored(rng, n, 1.0)
    for _ in range(rng.poisson(rng.uniform(2, 12) * n / sample_rate)):
        length = int(sample_rate * rng.uniform(0.002, 0.05))
        burst = rng.standard_normal(length) * np.exp(-np.arange(length) / (length / rng.uniform(3, 8)))
        low = rng.uniform(100, sample_rate / 4)
        high = rng.uniform(low * 1.5, sample_rate / 2 * 0.95)
        sos = signal.butter(2, [low, high], btype="band", fs=sample_rate, output="sos")
        start = int(rng.integers(0, max(1, n - length)))
        out[start : start + length] += signal.sosfilt(sos, burst)[: n - start] * rng.uniform(0.5, 5.0)
    return _unit_rms(out)


def music(rng, n, sample_rate, speech=None):
    """Tonal music: a random melody and chords of harmonic notes with attack/decay envelopes."""
    out = np.zeros(n)
    tempo = rng.uniform(0.15, 0.6)  # seconds per note
    base = rng.uniform(45, 60)  # MIDI pitch of the tonic
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
    position = 0
    while position < n:
        length = min(int(tempo * sample_rate * rng.choice([1, 1, 2, 0.5])), n - position)
        t = np.arange(length) / sample_rate
        envelope = (1 - np.exp(-t / 0.01)) * np.exp(-t / rng.uniform(0.1, 0.8))
        for _ in range(rng.integers(1, 4)):  # a note or a chord
            pitch = base + rng.choice(scale) + 12 * rng.integers(-1, 2)
            f0 = 440.0 * 2 ** ((pitch - 69) / 12)
            for k in range(1, 8):
                if k * f0 < sample_rate / 2:
                    out[position : position + length] += envelope * np.sin(2 * np.pi * k * f0 * t) * rng.uniform(0.1, 1) / k
        position += max(length, 1)
    return _unit_rms(out)


NOISE_KINDS: dict[str, Callable[..., np.ndarray]] = {
    "white": white, "pink": pink, "brown": brown, "babble": babble,
    "hum": hum, "clicks": clicks, "music": music,
}
