"""Procedural noise, 25 families: 23 kinds of sound that on-device audio meets, crowd babble, and
mixtures of two or three of the others.

Every family draws its own parameters (slopes, rates, pitches, envelopes) from the numpy
Generator it is given, so a clip is fixed by the seed that drew it and no two clips of a family
sound alike. Every clip comes back at unit RMS, so the mixer alone sets the SNR. Families are
written for any sample rate: no tone or filter edge is placed above 0.45 × the rate.

`render_noise(family, ...)` is the one entry point; `NOISE_FAMILIES` lists the names.
`data/README.md` describes each family in one line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import signal

# --- building blocks ----------------------------------------------------------------------------


def _unit_rms(x: np.ndarray) -> np.ndarray:
    return (x / (np.sqrt(np.mean(np.square(x))) + 1e-12)).astype(np.float32)


def _colored(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power ∝ 1/f^exponent (0 white, 1 pink, 2 brown, negative: blue), shaped in frequency."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.arange(len(spectrum), dtype=np.float64)
    freqs[0] = 1.0
    return _unit_rms(np.fft.irfft(spectrum / freqs ** (exponent / 2), n))


def _filtered(x: np.ndarray, sample_rate: int, low: float | None = None, high: float | None = None,
              order: int = 2) -> np.ndarray:
    """Butterworth band-, high- or low-pass; edges are kept inside (10 Hz, 0.45 × rate)."""
    top = 0.45 * sample_rate
    low = None if low is None else min(max(low, 10.0), top * 0.9)
    high = None if high is None else min(max(high, 20.0), top)
    if low is not None and high is not None:
        if high <= low * 1.05:
            high = min(low * 1.5, top)
        sos = signal.butter(order, [low, high], btype="bandpass", fs=sample_rate, output="sos")
    elif low is not None:
        sos = signal.butter(order, low, btype="highpass", fs=sample_rate, output="sos")
    elif high is not None:
        sos = signal.butter(order, high, btype="lowpass", fs=sample_rate, output="sos")
    else:
        return x
    return signal.sosfilt(sos, x)


def random_curve(rng: np.random.Generator, n: int, sample_rate: float, rate_hz: float) -> np.ndarray:
    """A smooth random curve of about zero mean and unit spread that changes about `rate_hz` times a
    second: random knots joined by straight lines, averaged over one knot spacing (a quadratic
    B-spline), computed every `step` samples and joined by lines again, which costs far less and
    changes nothing audible."""
    spacing = sample_rate / rate_hz  # samples between knots
    step = max(1, int(spacing // 32))
    coarse = n // step + 2
    width = max(2, int(round(spacing / step)))
    knots = rng.standard_normal(coarse // width + 3)
    summed = np.cumsum(np.interp(np.arange(coarse + width) / width, np.arange(len(knots)), knots))
    curve = (summed[width:] - summed[:-width])[:coarse] / width * 1.33  # the average shrinks the spread (1.33 restores it, measured)
    return curve[:n] if step == 1 else np.interp(np.arange(n) / step, np.arange(coarse), curve)


def _harmonics(freq: np.ndarray | float, n: int, sample_rate: int, amplitudes: Sequence[float],
               rng: np.random.Generator) -> np.ndarray:
    """A sum of harmonics k·f (k = 1..len(amplitudes)) of a fundamental that may vary sample by sample;
    harmonics above 0.45 × rate are left out where they would alias."""
    freq = np.broadcast_to(np.asarray(freq, np.float64), (n,))
    phase = 2 * np.pi * np.cumsum(freq) / sample_rate
    out = np.zeros(n)
    for k, amplitude in enumerate(amplitudes, start=1):
        audible = k * freq < 0.45 * sample_rate
        out += amplitude * audible * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    return out


def _decay(length: int, sample_rate: int, seconds: float) -> np.ndarray:
    return np.exp(-np.arange(length) / (seconds * sample_rate))


def _add(out: np.ndarray, start: int, burst: np.ndarray, gain: float = 1.0) -> None:
    """Adds `burst` into `out` from `start`, cut at the end of `out`."""
    if 0 <= start < len(out):
        stop = min(len(out), start + len(burst))
        out[start:stop] += gain * burst[: stop - start]


def _times(rng: np.random.Generator, n: int, sample_rate: int, per_second: float) -> np.ndarray:
    """Sample positions of Poisson events at `per_second`."""
    return np.sort(rng.integers(0, n, rng.poisson(per_second * n / sample_rate)))


def _burst(rng: np.random.Generator, sample_rate: int, seconds: float, decay: float, low: float | None,
           high: float | None) -> np.ndarray:
    """A band-limited noise burst with an exponential decay: a click, a thump, a clink's attack."""
    length = max(2, int(seconds * sample_rate))
    return _filtered(rng.standard_normal(length), sample_rate, low, high) * _decay(length, sample_rate, decay)


def _ringing(rng: np.random.Generator, sample_rate: int, freqs: Sequence[float], decay: float,
             seconds: float) -> np.ndarray:
    """Damped sinusoidal modes (a struck object): each mode decays faster the higher it is."""
    length = max(2, int(seconds * sample_rate))
    t = np.arange(length) / sample_rate
    out = np.zeros(length)
    for i, f in enumerate(freqs):
        if f < 0.45 * sample_rate:
            out += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) * np.exp(-t * (i + 1) / decay)
    return out


def _gate(rng: np.random.Generator, n: int, sample_rate: int, period: tuple[float, float],
          duty: tuple[float, float]) -> np.ndarray:
    """On/off pattern with 5 ms ramps: on for `duty` of each `period` (both drawn once)."""
    period_n = max(2, int(rng.uniform(*period) * sample_rate))
    on = int(period_n * rng.uniform(*duty))
    pattern = np.zeros(period_n)
    pattern[:on] = 1.0
    ramp = max(1, int(0.005 * sample_rate))
    pattern = np.convolve(pattern, np.ones(ramp) / ramp, mode="same")
    return np.resize(np.roll(pattern, int(rng.integers(period_n))), n)


# --- stationary ---------------------------------------------------------------------------------


def colored(rng, n, sample_rate):
    """Coloured noise at a random spectral slope, from blue (1/f^-1) to past brown (1/f^2.5)."""
    return _colored(rng, n, rng.uniform(-1.0, 2.5))


def fan(rng, n, sample_rate):
    """Fan or HVAC: broadband airflow, a resonance of the duct, blade-pass harmonics that drift slightly."""
    air = _filtered(_colored(rng, n, rng.uniform(0.5, 1.5)), sample_rate, rng.uniform(40, 150), rng.uniform(1500, 6000))
    resonance = rng.uniform(200, 1500)
    duct = _filtered(rng.standard_normal(n), sample_rate, resonance / 1.3, resonance * 1.3)
    blade = rng.uniform(20, 150) * (1 + 0.01 * random_curve(rng, n, sample_rate, 0.3))
    tones = _harmonics(blade, n, sample_rate, rng.uniform(0.1, 1.0, rng.integers(2, 7)), rng)
    return _unit_rms(_unit_rms(air) + rng.uniform(0.1, 0.5) * _unit_rms(duct) + rng.uniform(0.1, 0.8) * _unit_rms(tones))


def engine(rng, n, sample_rate):
    """Engine or car interior: firing harmonics whose RPM drifts, over road rumble."""
    rpm = np.clip(rng.uniform(900, 3500) * (1 + 0.15 * random_curve(rng, n, sample_rate, 0.2)), 600, 6000)
    firing = rpm / 60 * rng.choice([4, 6, 8]) / 2  # four-stroke: half the cylinders fire per turn
    tones = _harmonics(firing, n, sample_rate, [1 / k ** rng.uniform(0.5, 1.5) for k in range(1, 12)], rng)
    road = _filtered(_colored(rng, n, 1.5), sample_rate, 20, rng.uniform(300, 1000))
    return _unit_rms(_unit_rms(tones) * rng.uniform(0.3, 1.0) + _unit_rms(road))


def hum(rng, n, sample_rate):
    """Mains hum: 50 or 60 Hz (±2 %) with decaying harmonics, slow wobble, short dropouts, a little hiss."""
    f0 = rng.choice([50.0, 60.0]) * rng.uniform(0.98, 1.02)
    amplitudes = [rng.uniform(0.2, 1.0) / k ** rng.uniform(0.5, 1.5) for k in range(1, 40)]
    out = _harmonics(f0, n, sample_rate, amplitudes, rng) * (1 + 0.2 * random_curve(rng, n, sample_rate, 0.5))
    out *= 1 - 0.9 * (_gate(rng, n, sample_rate, (0.5, 4.0), (0.02, 0.2)) if rng.uniform() < 0.5 else 0)
    return _unit_rms(_unit_rms(out) + 0.05 * _colored(rng, n, 1.0))


def buzz(rng, n, sample_rate):
    """Electrical buzz: a harsh square- or saw-like tone at 2× mains, crackle, and dropouts."""
    f0 = 2 * rng.choice([50.0, 60.0]) * rng.uniform(0.99, 1.01)
    odd_only = rng.uniform() < 0.5  # square-like, else saw-like
    amplitudes = [0.0 if odd_only and k % 2 == 0 else 1.0 / k for k in range(1, 60)]
    out = _unit_rms(_harmonics(f0, n, sample_rate, amplitudes, rng))
    crackle = np.zeros(n)
    crackle[_times(rng, n, sample_rate, rng.uniform(5, 60))] = rng.standard_normal() * 10
    out = out * (1 - _gate(rng, n, sample_rate, (0.3, 3.0), (0.05, 0.4))) + _filtered(crackle, sample_rate, 2000)
    return _unit_rms(out)


def vacuum(rng, n, sample_rate):
    """Vacuum cleaner or hair dryer: a high motor whine with harmonics over loud broadband air."""
    whine = rng.uniform(300, 1500) * (1 + 0.02 * random_curve(rng, n, sample_rate, 0.5))
    tones = _harmonics(whine, n, sample_rate, rng.uniform(0.2, 1.0, 4), rng)
    air = _filtered(_colored(rng, n, rng.uniform(0.0, 1.0)), sample_rate, rng.uniform(100, 400), rng.uniform(4000, 9000))
    return _unit_rms(_unit_rms(air) + rng.uniform(0.2, 0.7) * _unit_rms(tones))


# --- non-stationary -----------------------------------------------------------------------------


def traffic(rng, n, sample_rate):
    """Traffic: vehicles that swell and fade as they pass, with a Doppler-shifted engine tone, over distant rumble."""
    out = _unit_rms(_filtered(_colored(rng, n, 2.0), sample_rate, None, 400)) * rng.uniform(0.2, 0.6)
    t = np.arange(n) / sample_rate
    for start in _times(rng, n, sample_rate, rng.uniform(0.2, 1.0)):
        centre, width = start / sample_rate, rng.uniform(1.0, 4.0)
        swell = 1 / (1 + ((t - centre) / (width / 2)) ** 2)  # closest approach at `centre`
        doppler = 1 + 0.08 * np.tanh(-(t - centre) / (width / 4))  # higher coming, lower going
        tone = _harmonics(rng.uniform(30, 120) * doppler, n, sample_rate, [1, 0.5, 0.3, 0.2], rng)
        tyres = _filtered(rng.standard_normal(n), sample_rate, rng.uniform(200, 600), rng.uniform(2000, 5000))
        out += swell * rng.uniform(0.5, 2.0) * (0.5 * _unit_rms(tone) + _unit_rms(tyres))
    return _unit_rms(out)


def rain(rng, n, sample_rate):
    """Rain: a dense stream of droplet ticks at random strengths, over hiss; the density drifts."""
    rate = rng.uniform(200, 3000)
    impulses = np.zeros(n)
    positions = _times(rng, n, sample_rate, rate)
    impulses[positions] = rng.lognormal(0, 1.0, len(positions))
    impulses *= np.clip(1 + 0.5 * random_curve(rng, n, sample_rate, 0.3), 0.1, None)
    drop = _burst(rng, sample_rate, 0.004, rng.uniform(0.0005, 0.002), rng.uniform(1000, 3000), None)
    ticks = signal.fftconvolve(impulses, drop)[:n]
    hiss = _filtered(rng.standard_normal(n), sample_rate, rng.uniform(500, 2000), None)
    return _unit_rms(_unit_rms(ticks) + rng.uniform(0.2, 1.0) * _unit_rms(hiss))


def wind(rng, n, sample_rate):
    """Wind: low-passed rush whose level and brightness follow gusts, with microphone buffeting."""
    gust = np.clip(1 + rng.uniform(0.4, 1.0) * random_curve(rng, n, sample_rate, rng.uniform(0.2, 1.5)), 0.05, None)
    rush = _filtered(_colored(rng, n, rng.uniform(1.0, 2.0)), sample_rate, None, rng.uniform(300, 1500))
    bright = _filtered(rng.standard_normal(n), sample_rate, 800, 4000)
    buffet = _filtered(rng.standard_normal(n), sample_rate, None, 80) * (gust > np.quantile(gust, 0.7))
    return _unit_rms(gust * _unit_rms(rush) + 0.2 * gust**2 * _unit_rms(bright) + rng.uniform(0, 1) * _unit_rms(buffet))


def keyboard(rng, n, sample_rate):
    """Keyboard and mouse: keystrokes in bursts of words (press and release clicks), now and then a mouse click."""
    out = 0.01 * _colored(rng, n, 1.0)
    position = int(rng.integers(0, sample_rate // 2))
    colour = rng.uniform(1000, 3000)
    while position < n:
        for _ in range(rng.integers(2, 9)):  # one word
            _add(out, position, _burst(rng, sample_rate, 0.015, 0.003, colour / 2, colour * 3), rng.uniform(0.5, 1.5))
            _add(out, position + int(rng.uniform(0.06, 0.15) * sample_rate),
                 _burst(rng, sample_rate, 0.01, 0.002, colour, None), rng.uniform(0.2, 0.6))
            position += int(rng.uniform(0.08, 0.3) * sample_rate)
        if rng.uniform() < 0.3:  # a mouse click: sharper, brighter
            _add(out, position, _burst(rng, sample_rate, 0.006, 0.001, 3000, None), rng.uniform(0.5, 2.0))
        position += int(rng.uniform(0.2, 1.5) * sample_rate)
    return _unit_rms(out)


def dishes(rng, n, sample_rate):
    """Dishes and cutlery: clinks of inharmonic ringing modes, now and then a clattering run of them."""
    out = 0.02 * _colored(rng, n, 1.0)
    for position in _times(rng, n, sample_rate, rng.uniform(0.5, 4.0)):
        for offset in np.cumsum(rng.uniform(0.02, 0.12, rng.integers(1, 6 if rng.uniform() < 0.3 else 2))):
            f0 = rng.uniform(700, 3500)
            modes = f0 * np.array([1.0, 2.32, 4.25, 6.63]) * rng.uniform(0.97, 1.03, 4)
            clink = _ringing(rng, sample_rate, modes, rng.uniform(0.05, 0.4), 0.6)
            clink[: int(0.002 * sample_rate)] += rng.standard_normal(int(0.002 * sample_rate))
            _add(out, position + int(offset * sample_rate), clink, rng.uniform(0.3, 1.5))
    return _unit_rms(out)


def door(rng, n, sample_rate):
    """Doors and knocks: low slams with a latch click, or runs of two to four knocks."""
    out = 0.02 * _colored(rng, n, 2.0)
    for position in _times(rng, n, sample_rate, rng.uniform(0.15, 0.6)):
        if rng.uniform() < 0.5:  # a slam: body thump, panel ring, latch
            thump = _burst(rng, sample_rate, 0.4, rng.uniform(0.05, 0.2), None, rng.uniform(150, 500))
            thump[: int(0.4 * sample_rate)] += 0.5 * _ringing(rng, sample_rate, [rng.uniform(60, 150)], 0.15, 0.4)
            _add(out, position, thump, rng.uniform(1, 3))
            _add(out, position + int(0.01 * sample_rate), _burst(rng, sample_rate, 0.02, 0.004, 2000, None), 0.5)
        else:  # knocks on wood
            for k in range(rng.integers(2, 5)):
                knock = _burst(rng, sample_rate, 0.08, rng.uniform(0.01, 0.03), 100, rng.uniform(800, 2000))
                _add(out, position + int(k * rng.uniform(0.12, 0.25) * sample_rate), knock, rng.uniform(0.7, 1.3))
    return _unit_rms(out)


def footsteps(rng, n, sample_rate):
    """Footsteps: heel-toe thuds at a walking pace, in walks and pauses, on a random floor."""
    out = 0.02 * _colored(rng, n, 1.5)
    pace, hard = rng.uniform(0.4, 0.65), rng.uniform(300, 3000)  # seconds per step; floor brightness
    position = int(rng.integers(0, sample_rate))
    while position < n:
        for _ in range(rng.integers(3, 15)):
            _add(out, position, _burst(rng, sample_rate, 0.08, 0.015, 40, hard), rng.uniform(0.6, 1.2))
            _add(out, position + int(0.05 * sample_rate), _burst(rng, sample_rate, 0.03, 0.006, 200, hard * 2), 0.4)
            position += int(pace * rng.uniform(0.9, 1.1) * sample_rate)
        position += int(rng.uniform(0.5, 3.0) * sample_rate)
    return _unit_rms(out)


def music(rng, n, sample_rate):
    """Music: a melody and chords of harmonic notes, a bass line, and (mostly) drums: kick, snare and hi-hat."""
    out = np.zeros(n)
    beat = rng.uniform(0.3, 0.7)  # seconds per beat
    base = rng.uniform(45, 60)  # MIDI pitch of the tonic
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
    position = 0
    while position < n:
        length = min(int(beat * sample_rate * rng.choice([0.5, 1, 1, 2])), n - position)
        t = np.arange(length) / sample_rate
        envelope = (1 - np.exp(-t / 0.01)) * np.exp(-t / rng.uniform(0.1, 0.8))
        for shift in [0, -24] + [12 * int(rng.integers(-1, 2)) for _ in range(rng.integers(1, 3))]:
            f0 = 440.0 * 2 ** ((base + rng.choice(scale) + shift - 69) / 12)
            notes = _harmonics(f0, length, sample_rate, [1 / k for k in range(1, 8)], rng)
            out[position : position + length] += envelope * notes * (0.7 if shift == -24 else 0.4)
        position += max(length, 1)
    if rng.uniform() < 0.8:
        out = _unit_rms(out) + rng.uniform(0.3, 1.0) * _drums(rng, n, sample_rate, beat)
    return _unit_rms(out)


def _drums(rng, n, sample_rate, beat):
    out = np.zeros(n)
    step = int(beat * sample_rate / 2)  # eighth notes
    t = np.arange(int(0.3 * sample_rate)) / sample_rate
    kick = np.sin(2 * np.pi * np.cumsum(50 + 100 * np.exp(-t / 0.03)) / sample_rate) * np.exp(-t / 0.12)
    for i, position in enumerate(range(0, n, step)):
        if i % 4 == 0:
            _add(out, position, kick, 2.0)
        if i % 4 == 2:
            _add(out, position, _burst(rng, sample_rate, 0.2, 0.05, 300, 6000), 1.2)
        _add(out, position, _burst(rng, sample_rate, 0.05, 0.01, 6000, None), 0.3)
    return _unit_rms(out)


def tv(rng, n, sample_rate):
    """TV or radio: a sung vowel line (harmonics through formants, with vibrato) over music, now and then
    applause, all through a small loudspeaker's band."""
    t = np.arange(n) / sample_rate
    notes = np.resize(np.repeat(rng.uniform(110, 440, 16), int(rng.uniform(0.3, 0.8) * sample_rate)), n)
    pitch = notes * (1 + 0.02 * np.sin(2 * np.pi * rng.uniform(4, 7) * t))
    voice = _harmonics(pitch, n, sample_rate, [1 / k for k in range(1, 30)], rng)
    sung = sum(_filtered(voice, sample_rate, f / 1.2, f * 1.2) * g
               for f, g in zip(rng.uniform([300, 900, 2300], [800, 2000, 3200]), (1.0, 0.6, 0.3), strict=True))
    sung *= _gate(rng, n, sample_rate, (1.5, 4.0), (0.5, 0.9))
    out = _unit_rms(sung) + rng.uniform(0.3, 1.0) * music(rng, n, sample_rate)
    if rng.uniform() < 0.3:  # applause: dense claps
        claps = np.zeros(n)
        claps[_times(rng, n, sample_rate, 300)] = 1.0
        clap = _burst(rng, sample_rate, 0.01, 0.002, 800, 5000)
        out += _gate(rng, n, sample_rate, (3.0, 8.0), (0.2, 0.5)) * _unit_rms(signal.fftconvolve(claps, clap)[:n])
    return _unit_rms(_filtered(out, sample_rate, rng.uniform(150, 400), rng.uniform(4000, 8000)))


def siren(rng, n, sample_rate):
    """Sirens: wail (slow sweep), yelp (fast sweep) or hi-lo (two tones), swelling as the vehicle passes."""
    t = np.arange(n) / sample_rate
    low, high = rng.uniform(500, 900), rng.uniform(1100, 1800)
    kind = rng.integers(3)
    if kind == 2:
        freq = np.where(_gate(rng, n, sample_rate, (0.8, 1.4), (0.5, 0.5)) > 0.5, high, low)
    else:
        period = rng.uniform(2.0, 6.0) if kind == 0 else rng.uniform(0.15, 0.4)
        freq = low + (high - low) * (0.5 - 0.5 * np.cos(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi)))
    tone = _harmonics(freq, n, sample_rate, [1, 0.5, 0.33, 0.25, 0.2], rng)
    swell = 1 / (1 + ((t - rng.uniform(0, n / sample_rate)) / rng.uniform(2, 6)) ** 2)
    return _unit_rms(tone * (0.3 + swell) + 0.1 * _colored(rng, n, 2.0))


def alarm(rng, n, sample_rate):
    """Alarms and ringers: beeping square-ish tones, or a phone's warbled two-tone ring in bursts."""
    t = np.arange(n) / sample_rate
    if rng.uniform() < 0.5:  # beeps
        tone = _harmonics(rng.uniform(900, 4000), n, sample_rate, [1, 0, 0.33, 0, 0.2], rng)
        gate = _gate(rng, n, sample_rate, (0.15, 1.0), (0.3, 0.7))
    else:  # ring: two tones, warbled, in bursts
        pair = rng.uniform(400, 1200)
        tone = (np.sin(2 * np.pi * pair * t) + np.sin(2 * np.pi * pair * rng.uniform(1.05, 1.25) * t))
        tone *= 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * rng.uniform(15, 25) * t))
        gate = _gate(rng, n, sample_rate, (2.0, 5.0), (0.3, 0.5))
    return _unit_rms(tone * gate + 0.02 * _colored(rng, n, 1.0))


def birds(rng, n, sample_rate):
    """Birdsong: several birds, each with its own chirp (a fast frequency sweep) repeated in trills."""
    out = 0.02 * _colored(rng, n, 1.0)
    for _ in range(rng.integers(1, 5)):
        start_f, end_f = rng.uniform(2000, 7000, 2)
        length = int(rng.uniform(0.02, 0.15) * sample_rate)
        sweep = np.linspace(start_f, end_f, length) * (1 + 0.1 * np.sin(np.linspace(0, rng.uniform(1, 10), length)))
        chirp = _harmonics(sweep, length, sample_rate, [1, rng.uniform(0, 0.3)], rng) * np.hanning(length)
        gap = rng.uniform(0.03, 0.2)
        for position in _times(rng, n, sample_rate, rng.uniform(0.2, 1.0)):  # a trill starts here
            for k in range(rng.integers(1, 12)):
                _add(out, position + int(k * (length / sample_rate + gap) * sample_rate), chirp, rng.uniform(0.5, 1))
    return _unit_rms(_filtered(out, sample_rate, 1000, None))


def machinery(rng, n, sample_rate):
    """Machinery: a motor's harmonics and grinding noise with periodic impacts (a press, a hammer) that ring."""
    motor = _harmonics(rng.uniform(25, 300), n, sample_rate, rng.uniform(0.1, 1, 8), rng)
    grind = _filtered(rng.standard_normal(n), sample_rate, rng.uniform(200, 1000), rng.uniform(2000, 7000))
    impacts = np.zeros(n)
    period = int(rng.uniform(0.25, 2.0) * sample_rate)
    strike = _ringing(rng, sample_rate, rng.uniform(200, 3000, 5), rng.uniform(0.05, 0.3), 0.5)
    strike[: int(0.003 * sample_rate)] += 3 * rng.standard_normal(int(0.003 * sample_rate))
    for position in range(int(rng.integers(period)), n, period):
        _add(impacts, position + int(rng.normal(0, 0.01) * sample_rate), strike, rng.uniform(0.8, 1.2))
    return _unit_rms(_unit_rms(motor) * rng.uniform(0.2, 1) + _unit_rms(grind) * rng.uniform(0.2, 1)
                     + _unit_rms(impacts) * rng.uniform(0.5, 2))


def water(rng, n, sample_rate):
    """Running water: a tap or stream's band of rushing noise with fast flutter and rising bubble chirps."""
    rush = _filtered(rng.standard_normal(n), sample_rate, rng.uniform(300, 1000), rng.uniform(3000, 8000))
    rush *= np.clip(1 + 0.5 * random_curve(rng, n, sample_rate, 20), 0.1, None)
    bubbles = np.zeros(n)
    for position in _times(rng, n, sample_rate, rng.uniform(20, 150)):
        length = int(rng.uniform(0.005, 0.03) * sample_rate)
        f = rng.uniform(500, 3000) * np.linspace(1, rng.uniform(1.1, 1.6), length)  # bubbles rise in pitch
        _add(bubbles, position, np.sin(2 * np.pi * np.cumsum(f) / sample_rate) * _decay(length, sample_rate, length / sample_rate / 3))
    return _unit_rms(_unit_rms(rush) + rng.uniform(0.2, 1.0) * _unit_rms(bubbles))


def whistle(rng, n, sample_rate):
    """Whistles: a kettle's steady shriek, a referee's trilled blasts, or a whistled tune that glides
    between notes; a nearly pure tone with breath noise."""
    t = np.arange(n) / sample_rate
    kind = rng.integers(3)
    if kind == 0:  # kettle: rises to a steady pitch
        freq = rng.uniform(1500, 3500) * (1 - 0.3 * np.exp(-t / rng.uniform(0.5, 3.0)))
        gate = np.ones(n)
    elif kind == 1:  # referee: trilled by the pea, in blasts
        freq = rng.uniform(2500, 4000) * (1 + 0.03 * np.sign(np.sin(2 * np.pi * rng.uniform(20, 40) * t)))
        gate = _gate(rng, n, sample_rate, (0.8, 2.5), (0.2, 0.6))
    else:  # a tune: notes held and glided between
        notes = np.repeat(rng.uniform(800, 2500, int(n / sample_rate / 0.2) + 2), int(0.2 * sample_rate))[:n]
        freq = signal.sosfiltfilt(signal.butter(1, 8, fs=sample_rate, output="sos"), notes)
        gate = _gate(rng, n, sample_rate, (2.0, 5.0), (0.6, 0.9))
    tone = _harmonics(freq, n, sample_rate, [1, rng.uniform(0, 0.1)], rng)
    breath = _filtered(rng.standard_normal(n), sample_rate, 1000, 6000)
    return _unit_rms(gate * (_unit_rms(tone) + rng.uniform(0.05, 0.3) * _unit_rms(breath)) + 0.01 * _colored(rng, n, 1.0))


def insects(rng, n, sample_rate):
    """Insects: crickets' pulsed chirps or cicadas' buzzing drone, high tones modulated fast, a few at once."""
    t = np.arange(n) / sample_rate
    out = 0.02 * _colored(rng, n, 1.0)
    for _ in range(rng.integers(1, 5)):
        carrier = _harmonics(rng.uniform(3000, 7000), n, sample_rate, [1, rng.uniform(0, 0.3)], rng)
        pulses = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * rng.uniform(15, 60) * t + rng.uniform(0, 6.3)))
        if rng.uniform() < 0.5:  # cricket: pulses in chirps
            pulses *= _gate(rng, n, sample_rate, (0.3, 1.0), (0.2, 0.5))
        out += rng.uniform(0.3, 1.0) * carrier * pulses
    return _unit_rms(out)


def feedback(rng, n, sample_rate):
    """Acoustic feedback and squeals: a pure tone that swells and glides (a howling PA, squealing
    brakes), with its onsets and fades."""
    freq = rng.uniform(300, 4000) * (1 + rng.uniform(0, 0.05) * random_curve(rng, n, sample_rate, 0.5))
    swell = np.clip(random_curve(rng, n, sample_rate, rng.uniform(0.2, 1.0)) + rng.uniform(0, 1), 0, None) ** 2
    tone = _harmonics(freq, n, sample_rate, [1, rng.uniform(0, 0.2), rng.uniform(0, 0.1)], rng)
    return _unit_rms(tone * swell + 0.05 * _colored(rng, n, 1.0))


def babble(rng, n, sample_rate, talkers: Sequence[np.ndarray]):
    """Crowd babble at a random density: 5 to 20 other talkers, each looped from a random start, at random
    levels. Fewer would be conversation a VAD should call speech, not noise."""
    if not talkers:
        raise ValueError("babble noise needs a pool of talkers' speech")
    out = np.zeros(n)
    for _ in range(rng.integers(5, 21)):
        talker = talkers[rng.integers(len(talkers))]
        looped = np.resize(np.roll(talker, -int(rng.integers(len(talker)))), n)
        out += _unit_rms(looped) * 10 ** (rng.uniform(-6, 0) / 20)
    return _unit_rms(out)


SIGNAL_FAMILIES: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "colored": colored, "fan": fan, "engine": engine, "hum": hum, "buzz": buzz, "vacuum": vacuum,
    "traffic": traffic, "rain": rain, "wind": wind, "keyboard": keyboard, "dishes": dishes, "door": door,
    "footsteps": footsteps, "music": music, "tv": tv, "siren": siren, "alarm": alarm, "birds": birds,
    "machinery": machinery, "water": water, "whistle": whistle, "insects": insects, "feedback": feedback,
}
NOISE_FAMILIES: tuple[str, ...] = (*SIGNAL_FAMILIES, "babble", "mixture")


def render_noise(family: str, rng: np.random.Generator, n: int, sample_rate: int,
                 talkers: Sequence[np.ndarray] = (), pool: Sequence[str] = NOISE_FAMILIES) -> np.ndarray:
    """`n` samples of `family` at unit RMS. babble draws on `talkers`; "mixture" sums two or three
    other families of `pool` at random levels (within 10 dB of each other)."""
    if family == "babble":
        return babble(rng, n, sample_rate, talkers)
    if family == "mixture":
        parts = [f for f in pool if f != "mixture" and (f != "babble" or len(talkers))]
        if len(parts) < 2:
            raise ValueError(f"a noise mixture needs two other families to mix; the pool has {parts}")
        chosen = rng.choice(parts, size=min(len(parts), int(rng.integers(2, 4))), replace=False)
        return _unit_rms(sum(render_noise(str(f), rng, n, sample_rate, talkers) * 10 ** (rng.uniform(-10, 0) / 20)
                             for f in chosen))
    if family not in SIGNAL_FAMILIES:
        raise ValueError(f"unknown noise family {family!r}: choose from {', '.join(NOISE_FAMILIES)}")
    return _unit_rms(SIGNAL_FAMILIES[family](rng, n, sample_rate))
