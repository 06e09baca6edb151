"""Speech quality of denoisers: PESQ (wide-band), STOI and SI-SDR, per item and averaged over items.

Functions score one item; `SpeechQuality` accumulates a split, on one process or many. Within
`scored_in_workers()` it scores PESQ and STOI in worker processes (`evaluation.scoring_workers`)
while the model goes on to the next batch and, given a folder, keeps the noisy input's scores there
by their content: a fixed test split's noisy input is the same in every run, and half of what a
test scores.
- PESQ wide-band is defined at 16 kHz, so other rates are resampled first. PESQ refuses references
  with no speech (`NoUtterancesError`) and very short clips: such items are counted in
  `pesq_errors` (enhanced) and `pesq_errors_noisy` (the noisy input), never dropped silently, and
  left out of that PESQ mean only.
- SI-SDR is the zero-mean definition (both signals have their mean removed first), in dB;
  `si_sdr_i` is its improvement over the noisy input.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio
from torchmetrics.utilities import dim_zero_cat

from speechcompress.atomic_files import atomic_path
from speechcompress.data.audio import resample
from speechcompress.evaluation.items import first_of_each_item
from speechcompress.evaluation.scoring_workers import PESQ_RATE, finished, pesq_16k, stoi, submit

MEASURES = ("pesq", "stoi", "si_sdr")


class NoisyScoreCache:
    """(PESQ, STOI) of noisy inputs, one small file each in `folder`, named by the content of the
    reference and the input, their rate and the versions of pesq and pystoi."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.versions = f"pesq {version('pesq')} pystoi {version('pystoi')}".encode()

    def key(self, reference: np.ndarray, noisy: np.ndarray, sample_rate: int) -> str:
        digest = hashlib.blake2b(self.versions, digest_size=16)
        for part in (np.float32(sample_rate), reference.astype(np.float32), noisy.astype(np.float32)):
            digest.update(np.ascontiguousarray(part).tobytes())
        return digest.hexdigest()

    def get(self, key: str) -> tuple[float, float] | None:
        try:
            return tuple(json.loads((self.folder / f"{key}.json").read_text()))
        except (FileNotFoundError, ValueError):  # not scored yet, or a file that is not ours: score it
            return None

    def put(self, key: str, scores: tuple[float, float]) -> None:
        with atomic_path(self.folder / f"{key}.json") as partial:
            partial.write_text(json.dumps(list(scores)))


def noisy_scores_folder(data_dir: str | Path) -> Path:
    """Where runs and baselines keep the noisy inputs' scores: `data/scores/` of the data folder."""
    return Path(data_dir) / "scores"


@dataclass
class _Scoring:
    workers: int = 1  # worker processes (1: none, in this process)
    noisy_cache: NoisyScoreCache | None = None


_scoring = _Scoring()  # how a SpeechQuality made now scores


@contextmanager
def scored_in_workers(noisy_cache: str | Path | None = None) -> Iterator[None]:
    """Within this block, a new `SpeechQuality` scores in as many worker processes as torch has
    threads, and keeps its noisy inputs' scores in `noisy_cache` (a folder; None: none); torch
    runs on one thread, as its other threads would spin-wait against the workers for the same cores
    (on 2 cores that tripled the time of RNNoise's GRU)."""
    global _scoring
    threads, before = torch.get_num_threads(), _scoring
    _scoring = _Scoring(threads, NoisyScoreCache(noisy_cache) if noisy_cache else None)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        _scoring = before


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB, zero-mean (means removed before scaling)."""
    value = scale_invariant_signal_distortion_ratio(torch.from_numpy(estimate), torch.from_numpy(reference),
                                                    zero_mean=True)
    return float(value)


def pesq_wb(reference: np.ndarray, degraded: np.ndarray, sample_rate: int) -> float | None:
    """PESQ wide-band (MOS-LQO, about 1.0–4.6); None where PESQ cannot score the item."""
    score = pesq_16k(resample(reference, sample_rate, PESQ_RATE), resample(degraded, sample_rate, PESQ_RATE))
    return None if math.isnan(score) else score


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

    def __init__(self, sample_rate: int, with_noisy: bool = True, processes: int | None = None, **kwargs) -> None:
        """`processes`: worker processes that score PESQ and STOI (None: as `scored_in_workers`
        says, else 1: in this process, as each batch comes). The noisy scores' cache is the one
        `scored_in_workers` names where the metric is made."""
        super().__init__(**kwargs)
        self.sample_rate, self.with_noisy = sample_rate, with_noisy
        self.processes, self.noisy_cache = processes or _scoring.workers, _scoring.noisy_cache
        self.columns = [*MEASURES, *(f"{m}_noisy" for m in MEASURES)] if with_noisy else list(MEASURES)
        self.add_state("index", default=[], dist_reduce_fx="cat")
        self.add_state("scores", default=[], dist_reduce_fx="cat")  # [items, columns], float64
        # batches whose PESQ and STOI are still being computed: (index [B], per item and signal
        # (future of (PESQ, STOI), SI-SDR, the cache key to keep them under)); they join the states
        # before the states are read
        self._pending: list[tuple[torch.Tensor, list[list[tuple[Future, float, str | None]]]]] = []

    def update(self, clean: torch.Tensor, enhanced: torch.Tensor, lengths: torch.Tensor, index: torch.Tensor,
               noisy: torch.Tensor | None = None) -> None:
        if self.with_noisy and noisy is None:
            raise ValueError("SpeechQuality(with_noisy=True) needs the noisy input too")
        signals = (enhanced, noisy) if self.with_noisy else (enhanced,)
        rows = []
        for i, length in enumerate(lengths.tolist()):
            reference = clean[i, :length].float().cpu().numpy()
            rows.append([self._submit(reference, signal[i, :length].float().cpu().numpy(), cached=signal is noisy)
                         for signal in signals])
        self._pending.append((index.detach().long().reshape(-1).to(self.device), rows))

    def _submit(self, reference: np.ndarray, signal: np.ndarray, cached: bool) -> tuple[Future, float, str | None]:
        rate, key = self.sample_rate, None
        if cached and self.noisy_cache:
            key = self.noisy_cache.key(reference, signal, rate)
            known = self.noisy_cache.get(key)
            if known is not None:
                return finished(known), si_sdr(reference, signal), None
        item = (resample(reference, rate, PESQ_RATE), resample(signal, rate, PESQ_RATE), reference, signal, rate)
        return submit(self.processes, *item), si_sdr(reference, signal), key

    def _collect(self) -> None:
        """Waits for the pending scores and adds them to the states, in the order of the batches."""
        for index, rows in self._pending:
            for row in rows:
                for future, _, key in row:
                    if key is not None:
                        self.noisy_cache.put(key, future.result())
            scores = [[*future.result(), sdr] for row in rows for future, sdr, _ in row]
            self.index.append(index)
            self.scores.append(torch.tensor(scores, dtype=torch.float64, device=self.device)
                               .reshape(-1, len(self.columns)))
        self._pending = []

    def sync(self, *args, **kwargs) -> None:
        self._collect()  # torchmetrics syncs (across processes, or not at all) before every compute
        super().sync(*args, **kwargs)

    def reset(self) -> None:
        for _, rows in self._pending:
            for row in rows:
                for future, _, _ in row:
                    future.cancel()
        self._pending = []
        super().reset()

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
