"""Speech-quality metrics of denoisers: PESQ (wide-band), STOI and SI-SDR, per item and averaged.

PESQ wide-band is defined at 16 kHz, so other rates are resampled first. PESQ refuses references
with no speech (`NoUtterancesError`) and very short clips: such items are counted in
`pesq_errors`, never dropped silently, and left out of the PESQ means only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from pesq import PesqError, pesq
from pystoi import stoi as _stoi
from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio

from speechcompress.data.audio import resample

PESQ_RATE = 16000


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (zero-mean)."""
    value = scale_invariant_signal_distortion_ratio(torch.from_numpy(estimate), torch.from_numpy(reference))
    return float(value)


def pesq_wb(reference: np.ndarray, degraded: np.ndarray, sample_rate: int) -> float | None:
    """PESQ wide-band (MOS-LQO, about 1.0–4.6); None where PESQ cannot score the item."""
    reference = resample(reference, sample_rate, PESQ_RATE)
    degraded = resample(degraded, sample_rate, PESQ_RATE)
    try:
        return float(pesq(PESQ_RATE, reference.astype(np.float64), degraded.astype(np.float64), "wb"))
    except PesqError:
        return None


def stoi(reference: np.ndarray, degraded: np.ndarray, sample_rate: int) -> float:
    return float(_stoi(reference, degraded, sample_rate, extended=False))


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


@dataclass
class DenoiseScores:
    """Accumulates per-item PESQ / STOI / SI-SDR of the enhanced output and of the noisy input."""

    sample_rate: int
    with_noisy: bool = True
    values: dict[str, list[float]] = field(default_factory=dict)
    pesq_errors: int = 0
    items: int = 0

    def _add(self, name: str, value: float | None) -> None:
        if value is None:
            self.pesq_errors += 1
        else:
            self.values.setdefault(name, []).append(value)

    def update(self, clean: np.ndarray, enhanced: np.ndarray, noisy: np.ndarray | None = None) -> None:
        """Score one item (1-D arrays of equal length at `sample_rate`)."""
        self.items += 1
        candidates = {"": enhanced}
        if self.with_noisy and noisy is not None:
            candidates["_noisy"] = noisy
        for suffix, signal in candidates.items():
            self._add("pesq" + suffix, pesq_wb(clean, signal, self.sample_rate))
            self._add("stoi" + suffix, stoi(clean, signal, self.sample_rate))
            self._add("si_sdr" + suffix, si_sdr(clean, signal))

    def summary(self) -> dict[str, float]:
        """Means over items, plus `si_sdr_i` (improvement over noisy), `pesq_errors` and `items`."""
        out = {name: _mean(values) for name, values in sorted(self.values.items())}
        if "si_sdr_noisy" in out:
            out["si_sdr_i"] = out["si_sdr"] - out["si_sdr_noisy"]
        out["pesq_errors"] = float(self.pesq_errors)
        out["items"] = float(self.items)
        return out
