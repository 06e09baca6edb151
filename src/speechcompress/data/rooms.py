"""Rooms: impulse responses simulated with pyroomacoustics' image method, and reverberation that
keeps the training target aligned with the dry speech.

The target of a reverberant utterance is the direct path plus the early reflections, the first
`EARLY_SECONDS` after the direct sound: 50 ms is where room acoustics splits useful early energy
from harmful late reverberation (the C50 clarity index), so a denoiser trained this way removes the
late tail, which smears speech and hurts intelligibility, without being asked to undo the room
colouring a listener hardly hears. Every convolution is cut so that the direct path lands on the
dry sample it came from: the target, the reverberant speech and the VAD labels stay aligned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

EARLY_SECONDS = 0.05


@dataclass(frozen=True)
class RoomResponse:
    """One impulse response; `direct` is the sample at which the direct sound arrives."""

    rir: np.ndarray
    direct: int


def simulate_room(rng: np.random.Generator, sample_rate: int, rt60: tuple[float, float] = (0.15, 0.9),
                  distance: tuple[float, float] = (0.3, 4.0), max_seconds: float = 0.6) -> RoomResponse:
    """A shoebox room of random size (3–10 × 2.5–8 × 2.4–4 m) and reverberation time, with a talker
    and a microphone at random places `distance` metres apart; the response is cut `max_seconds`
    after the direct sound and scaled so that its early part has unit energy."""
    import pyroomacoustics as pra  # only needed while a cache is generated

    size = rng.uniform([3.0, 2.5, 2.4], [10.0, 8.0, 4.0])
    reverberation = rng.uniform(*rt60)
    try:
        absorption, order = pra.inverse_sabine(reverberation, size)
    except ValueError:  # more reverberant than Sabine's formula allows for so large a room
        absorption, order = pra.inverse_sabine(0.6, size)
    for _ in range(100):
        source, microphone = (rng.uniform(0.4, size - 0.4) for _ in range(2))
        if distance[0] <= np.linalg.norm(source - microphone) <= distance[1]:
            break
    room = pra.ShoeBox(size, fs=sample_rate, materials=pra.Material(absorption), max_order=min(order, 60))
    room.add_source(source)
    room.add_microphone(microphone)
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], dtype=np.float64)
    # pyroomacoustics centres each arrival in a fractional-delay filter of `frac_delay_length` taps
    delay = np.linalg.norm(source - microphone) / pra.constants.get("c") * sample_rate
    direct = int(round(delay)) + pra.constants.get("frac_delay_length") // 2
    rir = rir[: direct + int(max_seconds * sample_rate)]
    early = rir[: direct + int(EARLY_SECONDS * sample_rate)]
    return RoomResponse((rir / np.sqrt(np.sum(early**2))).astype(np.float32), direct)


def reverberate(x: np.ndarray, room: RoomResponse, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(reverberant, early) versions of `x`, both as long as `x` and aligned with it: the direct
    sound of sample t lands on sample t. `early` keeps the direct path and the first EARLY_SECONDS."""
    aligned = slice(room.direct, room.direct + len(x))
    early = room.rir[: room.direct + int(EARLY_SECONDS * sample_rate)]
    return (signal.fftconvolve(x, room.rir)[aligned].astype(np.float32),
            signal.fftconvolve(x, early)[aligned].astype(np.float32))
