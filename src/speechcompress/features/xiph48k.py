"""xiph's RNNoise front-end at 48 kHz (the 2024 model), in torch: what librnnoise computes per frame.

- Frames of 480 samples (10 ms); each analysis window is the previous and the current frame
  (960 samples) under the Vorbis power-complementary window, and its FFT is scaled by 1/960 (kiss
  FFT's forward scaling), so energies are those of the samples on the int16 scale divided by 960².
- 32 bands on `BAND_EDGES` (FFT bins of 50 Hz, up to 20 kHz; ERB-like widths, 100 Hz at the
  bottom), each a triangle over two intervals of the edges; the first band is its triangle plus the
  half-triangle below it, times 2/3, the last likewise with the one above it. Bins from 20 kHz up
  belong to no band.
- Cepstrum: log10(0.01 + E) per band, floored at 7 below the highest band seen so far and at 1.5
  below the previous band's (floored) value, going up from the first band, starting from −2; then
  an orthonormal DCT-II scaled by √(32/22) (xiph keeps the 2/22 of its 22-band first version), the
  first two coefficients lowered by 12 and 4.
- Pitch (`track_pitch`, numpy; the search of every frame at once, as each sees only its own
  buffer, then the doubling check frame by frame with the state librnnoise keeps): Opus CELT's
  search in float. The last 1728 samples are halved in rate and whitened by a 4th-order LPC; a
  coarse search at a quarter rate keeps two candidates, a fine one at half rate picks the best; then
  submultiples of that period are tried, favouring the previous frame's period. The period is 60 …
  768 samples; the "pitch spectrum" P is the 960 samples one period before the analysis window.
- Features 33–64 (`analyse`): the same DCT of each band's normalised correlation of X and P
  (no offsets); the 65th: (period − 300) / 100. A frame whose band energies sum under 0.04 has all
  features zero (librnnoise then skips its network for that frame).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from speechcompress.features.bands import dct_matrix
from speechcompress.features.stft import stft, vorbis_window

SAMPLE_RATE = 48000
FRAME_SIZE = 480
N_BANDS = 32
# xiph's eband20ms: band edges in bins of 50 Hz (0, 100, 200, ... 17.8 kHz, 20 kHz)
BAND_EDGES = (0, 2, 4, 6, 8, 10, 12, 15, 18, 21, 24, 28, 32, 36, 41, 47, 53, 60, 68, 77, 87, 98, 110, 124, 140,
              157, 176, 198, 223, 251, 282, 317, 356, 400)
N_BINS = FRAME_SIZE + 1
_DCT_SCALE = math.sqrt(32 / 22)
_LOG_FLOOR, _FOLLOW_DROP, _RANGE = 1e-2, 1.5, 7.0
_CEPSTRUM_OFFSET = (12.0, 4.0)
_SILENCE = 0.04  # total band energy of a frame with no audio (int16 scale / 960²)


def band_matrix() -> torch.Tensor:
    """[32, 481]: band energies = |X|² @ band_matrix().T."""
    nodes = torch.zeros(N_BANDS + 2, N_BINS, dtype=torch.float64)
    for i in range(N_BANDS + 1):
        start, width = BAND_EDGES[i], BAND_EDGES[i + 1] - BAND_EDGES[i]
        frac = torch.arange(width, dtype=torch.float64) / width
        nodes[i, start : start + width] += 1 - frac
        nodes[i + 1, start : start + width] += frac
    nodes[1] = (nodes[0] + nodes[1]) * 2 / 3
    nodes[N_BANDS] = (nodes[N_BANDS] + nodes[N_BANDS + 1]) * 2 / 3
    return nodes[1 : N_BANDS + 1].float()


def spectrum(wave: torch.Tensor) -> torch.Tensor:
    """[B, T] samples (int16 scale) → complex [B, frames, 481]: frame t is the window ending with
    the (t+1)-th 480 samples, as librnnoise's t-th call analyses it."""
    window = vorbis_window(2 * FRAME_SIZE).to(wave.device)
    return stft(wave, FRAME_SIZE, window)[:, :-1] / (2 * FRAME_SIZE)


def band_energy(spec: torch.Tensor, bands: torch.Tensor | None = None) -> torch.Tensor:
    """complex [..., 481] → [..., 32] (`bands`: `band_matrix()`, made once by callers that loop)."""
    bands = band_matrix().to(spec.device, spec.real.dtype) if bands is None else bands
    return (spec.real.square() + spec.imag.square()) @ bands.T


def log_bands(energy: torch.Tensor) -> torch.Tensor:
    """log10(0.01 + E), floored band by band from the lowest up (see the module docstring)."""
    log = torch.log10(_LOG_FLOOR + energy)
    highest = follow = torch.full_like(log[..., 0], -2.0)
    floored = []
    for band in range(log.shape[-1]):
        value = torch.maximum(highest - _RANGE, torch.maximum(follow - _FOLLOW_DROP, log[..., band]))
        highest, follow = torch.maximum(highest, value), torch.maximum(follow - _FOLLOW_DROP, value)
        floored.append(value)
    return torch.stack(floored, dim=-1)


def cepstrum(energy: torch.Tensor) -> torch.Tensor:
    """[B, frames, 32] band energies → the first 32 features of xiph's 65."""
    coefficients = log_bands(energy) @ (dct_matrix(N_BANDS).to(energy).T * _DCT_SCALE)
    offset = torch.zeros(N_BANDS, device=energy.device, dtype=energy.dtype)
    offset[: len(_CEPSTRUM_OFFSET)] = torch.tensor(_CEPSTRUM_OFFSET)
    return coefficients - offset


# ---- pitch: xiph's search (Opus CELT's, in float), on every frame's buffer as librnnoise runs it ----
PITCH_MIN_PERIOD, PITCH_MAX_PERIOD = 60, 768
PITCH_FRAME = 960  # samples correlated per search
PITCH_BUFFER = PITCH_MAX_PERIOD + PITCH_FRAME
_DOUBLING_CHECK = (0, 0, 3, 2, 3, 2, 5, 2, 3, 2, 3, 2, 5, 2, 3, 2)  # second_check: other multiples tried for 1/k


def _levinson(ac: np.ndarray, order: int) -> np.ndarray:
    """LPC coefficients a (x[n] + Σ a_k x[n−1−k] is the residual) from autocorrelations, stopping
    once the prediction error is 30 dB down."""
    lpc, error = np.zeros(order), ac[0]
    if ac[0] == 0:
        return lpc
    for i in range(order):
        if not error > 0:  # underflow on a nearly silent window (the C's float32 sums are zero sooner)
            break
        reflection = -(ac[i + 1] + np.dot(lpc[:i], ac[i:0:-1])) / error
        lpc[:i] = lpc[:i] + reflection * lpc[:i][::-1]
        lpc[i] = reflection
        error -= reflection * reflection * error
        if error < 0.001 * ac[0]:
            break
    return lpc


def _downsample(buffers: np.ndarray) -> np.ndarray:
    """[F, n] → [F, n/2]: each row at half rate through [¼ ½ ¼], then whitened by its own
    4th-order LPC residual with 0.8 of pre-emphasis."""
    low = np.empty((len(buffers), buffers.shape[1] // 2))
    low[:, 1:] = 0.5 * (0.5 * (buffers[:, 1:-2:2] + buffers[:, 3::2]) + buffers[:, 2:-1:2])
    low[:, 0] = 0.5 * (0.5 * buffers[:, 1] + buffers[:, 0])
    n = low.shape[1]
    ac = np.stack([np.einsum("fi,fi->f", low[:, k:], low[:, : n - k]) for k in range(5)], axis=1)
    ac[:, 0] *= 1.0001  # a −40 dB noise floor
    ac[:, 1:] -= ac[:, 1:] * (0.008 * np.arange(1, 5)) ** 2  # lag windowing
    lpc = np.stack([_levinson(row, 4) for row in ac]) * 0.9 ** np.arange(1, 5)  # bandwidth expansion
    a1, a2, a3, a4 = lpc.T
    taps = np.stack([a1 + 0.8, a2 + 0.8 * a1, a3 + 0.8 * a2, a4 + 0.8 * a3, 0.8 * a4], axis=1)
    past = np.pad(low, ((0, 0), (5, 0)))
    return low + sum(taps[:, k, None] * past[:, 4 - k : 4 - k + n] for k in range(5))


def _best_two(xcorr: np.ndarray, y: np.ndarray, length: int) -> np.ndarray:
    """[F, 2]: per row, the two lags of highest normalised correlation xcorr² / energy of
    y[lag : lag + length] among those with positive xcorr, the earlier lag first among equals
    (xiph's scan keeps a candidate only when strictly better); (0, 1) when no xcorr is positive,
    (lag, 0) when one is."""
    sums = np.pad(np.cumsum(np.square(y), axis=1), ((0, 0), (1, 0)))
    lags = np.arange(xcorr.shape[1])
    energy = np.maximum(1.0, 1 + sums[:, lags + length] - sums[:, lags])
    positive = xcorr > 0
    ratio = np.where(positive, np.square(xcorr * 1e-12) / energy, -np.inf)  # scaled as xiph, against overflow
    order = np.argsort(-ratio, axis=1, kind="stable")[:, :2]
    count = positive.sum(axis=1)
    first = np.where(count > 0, order[:, 0], 0)
    return np.stack([first, np.where(count > 1, order[:, 1], np.where(count == 1, 0, 1))], axis=1)


def _interpolated_offset(a, b, c):
    """−1, 0 or 1: which neighbour of the middle lag (correlations a, b, c) the peak leans to."""
    return np.where(c - a > 0.7 * (b - a), 1, np.where(a - c > 0.7 * (b - c), -1, 0))


def _pitch_search(low: np.ndarray) -> np.ndarray:
    """[F]: per row of `low` (the half-rate, whitened buffers), the lag (at 48 kHz,
    PITCH_MAX_PERIOD − period) of its latest PITCH_FRAME samples against its past."""
    x, length, max_lag = low[:, PITCH_MAX_PERIOD // 2 :], PITCH_FRAME, PITCH_MAX_PERIOD - 3 * PITCH_MIN_PERIOD
    x4, y4 = x[:, : 2 * (length // 4) : 2], low[:, : 2 * ((length + max_lag) // 4) : 2]
    windows4 = np.lib.stride_tricks.sliding_window_view(y4, length // 4, axis=1)[:, : max_lag // 4]
    best = _best_two(np.einsum("fkl,fl->fk", windows4, x4), y4, length // 4)
    # the half-rate correlation only within 2 lags of the two coarse peaks, as xiph computes it.
    # Clipping to the lag range stands in for skipping: a peak at either end has the end lag in reach
    near = np.clip((2 * best[:, :, None] + np.arange(-2, 3)).reshape(len(low), -1), 0, max_lag // 2 - 1)
    rows = np.arange(len(low))[:, None]
    windows = np.lib.stride_tricks.sliding_window_view(low, length // 2, axis=1)[rows, near]
    fine = np.zeros((len(low), max_lag // 2))
    fine[rows, near] = np.maximum(-1.0, np.einsum("fnl,fl->fn", windows, x[:, : length // 2]))
    top = _best_two(fine, low, length // 2)[:, 0]
    rows, inner = rows[:, 0], (top > 0) & (top < max_lag // 2 - 1)
    around = np.clip(top[:, None] + np.arange(-1, 2), 0, max_lag // 2 - 1)
    offset = _interpolated_offset(*fine[rows[:, None], around].T)
    return 2 * top - np.where(inner, offset, 0)


def _remove_doubling(low: np.ndarray, period: int, previous_period: int, previous_gain: float) -> tuple[int, float]:
    """(period, pitch gain): the search's period, or a submultiple 1/k of it (k ≤ 15) that
    correlates nearly as well, favouring continuity with the previous frame."""
    max_period, min_period, n = PITCH_MAX_PERIOD // 2, PITCH_MIN_PERIOD // 2, PITCH_FRAME // 2
    period, previous_period = min(period // 2, max_period - 1), previous_period // 2
    x = low[max_period : max_period + n]

    def lagged(lag: int) -> np.ndarray:
        return low[max_period - lag : max_period - lag + n]

    def gain(xy: float, xx: float, yy: float) -> float:
        return xy / math.sqrt(1 + xx * yy)

    xx, xy = np.dot(x, x), np.dot(x, lagged(period))
    # energy of the lagged window, for every lag: one sample enters and one leaves per lag
    entering, leaving = low[:max_period][::-1], low[n : max_period + n][::-1]
    energies = np.maximum(0.0, xx + np.concatenate([[0.0], np.cumsum(entering**2 - leaving**2)]))
    best_xy, best_yy, best, first_gain = xy, energies[period], period, gain(xy, xx, energies[period])
    best_gain = first_gain
    for k in range(2, 16):
        candidate = (2 * period + k) // (2 * k)
        if candidate < min_period:
            break
        if k == 2:
            partner = period if candidate + period > max_period else period + candidate
        else:
            partner = (2 * _DOUBLING_CHECK[k] * period + k) // (2 * k)
        xy = 0.5 * (np.dot(x, lagged(candidate)) + np.dot(x, lagged(partner)))
        yy = 0.5 * (energies[candidate] + energies[partner])
        candidate_gain = gain(xy, xx, yy)
        if abs(candidate - previous_period) <= 1:
            continuity = previous_gain
        elif abs(candidate - previous_period) <= 2 and 5 * k * k < period:
            continuity = 0.5 * previous_gain
        else:
            continuity = 0.0
        threshold = max(0.3, 0.7 * first_gain - continuity)
        if candidate < 3 * min_period:  # against very short periods, which short-term correlation fakes
            threshold = max(0.4, 0.85 * first_gain - continuity)  # (xiph's stricter test below 2·min never runs)
        if candidate_gain > threshold:
            best_xy, best_yy, best, best_gain = xy, yy, candidate, candidate_gain
    best_xy = max(0.0, best_xy)
    pitch_gain = 1.0 if best_yy <= best_xy else best_xy / (best_yy + 1)
    offset = int(_interpolated_offset(*(np.dot(x, lagged(best + k - 1)) for k in range(3))))
    return max(2 * best + offset, PITCH_MIN_PERIOD), min(pitch_gain, best_gain)


def track_pitch(wave: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per 480-sample frame of `wave` (48 kHz, int16 scale, one channel), as librnnoise tracks them
    from a silent start: the pitch period in samples (60 … 768), the pitch gain, and the 960 past
    samples one period back from the analysis window (what its pitch spectrum is taken of).

    Each frame's search looks only at its own buffer (the last 1728 samples), so all frames are
    searched at once; the doubling check carries the previous period and gain, frame by frame."""
    frames = len(wave) // FRAME_SIZE
    if frames == 0:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros((0, 2 * FRAME_SIZE))
    padded = np.concatenate([np.zeros(PITCH_BUFFER - FRAME_SIZE), wave[: frames * FRAME_SIZE]])
    buffers = np.lib.stride_tricks.sliding_window_view(padded, PITCH_BUFFER)[::FRAME_SIZE]
    lows = _downsample(buffers)
    lags = _pitch_search(lows)
    periods, gains, lagged = np.zeros(frames, np.int64), np.zeros(frames), np.zeros((frames, 2 * FRAME_SIZE))
    period, gain = 0, 0.0
    for t in range(frames):
        period, gain = _remove_doubling(lows[t], PITCH_MAX_PERIOD - int(lags[t]), period, gain)
        periods[t], gains[t] = period, gain
        lagged[t] = buffers[t, PITCH_BUFFER - 2 * FRAME_SIZE - period : PITCH_BUFFER - period]
    return periods, gains, lagged


@dataclass
class Analysis:
    """One signal's frames as librnnoise analyses them (F frames of 480 samples)."""

    spectrum: torch.Tensor  # complex [F, 481]: X
    pitch_spectrum: torch.Tensor  # complex [F, 481]: P, of the window one pitch period back
    energy: torch.Tensor  # [F, 32]: Ex
    pitch_energy: torch.Tensor  # [F, 32]: Ep
    correlation: torch.Tensor  # [F, 32]: Exp, the normalised band correlation of X and P
    period: torch.Tensor  # [F] samples
    features: torch.Tensor  # [F, 65]: cepstrum, DCT of the correlations, (period − 300) / 100; zeros when silent
    silent: torch.Tensor  # [F] bool: total band energy under 0.04, where librnnoise skips its network


def analyse(wave: np.ndarray) -> Analysis:
    """xiph's 65 features of `wave` (48 kHz, int16 scale) and what its pitch filter needs."""
    wave = np.asarray(wave, np.float64)
    frames = len(wave) // FRAME_SIZE
    spec = spectrum(torch.from_numpy(wave[: frames * FRAME_SIZE])[None])[0]
    periods, _, lagged = track_pitch(wave)
    window = vorbis_window(2 * FRAME_SIZE).double()
    pitch_spec = torch.fft.rfft(torch.from_numpy(lagged) * window, dim=-1) / (2 * FRAME_SIZE)
    bands = band_matrix().double()
    energy, pitch_energy = band_energy(spec, bands), band_energy(pitch_spec, bands)
    cross = (spec.real * pitch_spec.real + spec.imag * pitch_spec.imag) @ bands.T
    correlation = cross / torch.sqrt(0.001 + energy * pitch_energy)
    period = torch.from_numpy(periods)
    features = torch.cat([cepstrum(energy), correlation @ (dct_matrix(N_BANDS).double().T * _DCT_SCALE),
                          (0.01 * (period - 300)).double()[:, None]], dim=-1)
    silent = energy.sum(dim=-1) < _SILENCE
    features[silent] = 0.0
    return Analysis(spec, pitch_spec, energy, pitch_energy, correlation, period, features, silent)
