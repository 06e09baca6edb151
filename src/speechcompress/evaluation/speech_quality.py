"""Speech quality of denoisers: PESQ (wide-band), STOI and SI-SDR, per item and averaged over items.

Functions score one item; `SpeechQuality` accumulates a split, on one process or many.
- PESQ wide-band is defined at 16 kHz, so other rates are resampled first. PESQ refuses references
  with no speech (`NoUtterancesError`) and very short clips: such items are counted in
  `pesq_errors` (enhanced) and `pesq_errors_noisy` (the noisy input), never dropped silently, and
  left out of that PESQ mean only.
- SI-SDR is the zero-mean definition (both signals have their mean removed first), in dB;
  `si_sdr_i` is its improvement over the noisy input.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from pesq import PesqError, pesq
from pystoi import stoi as _stoi
from torchmetrics import Metric
from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio
from torchmetrics.utilities import dim_zero_cat

from speechcompress.data.audio import resample
from speechcompress.evaluation.items import first_of_each_item

PESQ_RATE = 16000
MEASURES = ("pesq", "stoi", "si_sdr")


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB, zero-mean (means removed before scaling)."""
    value = scale_invariant_signal_distortion_ratio(torch.from_numpy(estimate), torch.from_numpy(reference),
                                                    zero_mean=True)
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


def item_scores(reference: np.ndarray, signal: np.ndarray, sample_rate: int) -> tuple[float, float, float]:
    """(PESQ or NaN where PESQ refuses the item, STOI, SI-SDR) of one item."""
    score = pesq_wb(reference, signal, sample_rate)
    return (math.nan if score is None else score), stoi(reference, signal, sample_rate), si_sdr(reference, signal)


class SpeechQuality(Metric):
    """PESQ / STOI / SI-SDR of a denoiser's output, and optionally of its noisy input, over a split.

    `update(clean, enhanced, lengths, index, noisy=None)` takes batches [B, T] (items zero-padded to
    the longest; `lengths` [B] their true lengths) and the items' dataset `index` [B]. `compute()`
    returns the means over distinct items, `si_sdr_i`, `pesq_errors` (and `_noisy`) and `items`.
    Every item is counted once across processes (see `evaluation.items`).
    """

    full_state_update = False

    def __init__(self, sample_rate: int, with_noisy: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sample_rate, self.with_noisy = sample_rate, with_noisy
        self.columns = [*MEASURES, *(f"{m}_noisy" for m in MEASURES)] if with_noisy else list(MEASURES)
        self.add_state("index", default=[], dist_reduce_fx="cat")
        self.add_state("scores", default=[], dist_reduce_fx="cat")  # [items, columns], float64

    def update(self, clean: torch.Tensor, enhanced: torch.Tensor, lengths: torch.Tensor, index: torch.Tensor,
               noisy: torch.Tensor | None = None) -> None:
        if self.with_noisy and noisy is None:
            raise ValueError("SpeechQuality(with_noisy=True) needs the noisy input too")
        rows = []
        for i, length in enumerate(lengths.tolist()):
            reference = clean[i, :length].float().cpu().numpy()
            row = item_scores(reference, enhanced[i, :length].float().cpu().numpy(), self.sample_rate)
            if self.with_noisy:
                row += item_scores(reference, noisy[i, :length].float().cpu().numpy(), self.sample_rate)
            rows.append(row)
        self.index.append(index.detach().long().reshape(-1).to(self.device))
        self.scores.append(torch.tensor(rows, dtype=torch.float64, device=self.device).reshape(-1, len(self.columns)))

    def compute(self) -> dict[str, float]:
        if len(self.index) == 0:  # a list before any update; a tensor once synced
            return {"items": 0.0}
        index, scores = dim_zero_cat(self.index), dim_zero_cat(self.scores)
        scores = scores[first_of_each_item(index)]
        out = {name: float(torch.nanmean(scores[:, k])) for k, name in enumerate(self.columns)}
        pesq_failed = torch.isnan(scores[:, self.columns.index("pesq")])
        out["pesq_errors"] = float(pesq_failed.sum())
        if self.with_noisy:
            out["pesq_errors_noisy"] = float(torch.isnan(scores[:, self.columns.index("pesq_noisy")]).sum())
            out["si_sdr_i"] = out["si_sdr"] - out["si_sdr_noisy"]
        out["items"] = float(len(scores))
        return out
