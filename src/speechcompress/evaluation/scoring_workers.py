"""PESQ and STOI of many items at once, in worker processes.

Both run on one core (PESQ is C code, pystoi is numpy), and together they are most of what the end
of a denoiser's run costs: every test item is scored twice (the enhanced output and the noisy
input), and each lossy export scores the test split again. `submit` hands an item to a pool of
worker processes and returns at once, so the model goes on running while items are scored.

This module imports numpy, pesq and pystoi only: a worker process needs nothing more.
"""

from __future__ import annotations

import math
import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np
from pesq import PesqError, pesq
from pystoi import stoi as _stoi

PESQ_RATE = 16000  # PESQ wide-band is defined at 16 kHz

_pools: dict[int, ProcessPoolExecutor] = {}  # by size; one per process, kept for the process's life


def pesq_16k(reference: np.ndarray, degraded: np.ndarray) -> float:
    """PESQ wide-band of 16 kHz signals; NaN where PESQ refuses the item (no speech in the
    reference, a clip too short)."""
    try:
        return float(pesq(PESQ_RATE, reference.astype(np.float64), degraded.astype(np.float64), "wb"))
    except PesqError:
        return math.nan


def stoi(reference: np.ndarray, degraded: np.ndarray, sample_rate: int) -> float:
    return float(_stoi(reference, degraded, sample_rate, extended=False))


def pesq_and_stoi(reference_16k: np.ndarray, degraded_16k: np.ndarray, reference: np.ndarray,
                  degraded: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """(PESQ of the 16 kHz pair, STOI of the pair at its own rate) of one item."""
    return pesq_16k(reference_16k, degraded_16k), stoi(reference, degraded, sample_rate)


def finished(result: object) -> Future:
    """A future that already holds `result`."""
    future: Future = Future()
    future.set_result(result)
    return future


def submit(processes: int, *item) -> Future:
    """`pesq_and_stoi(*item)`, computed by one of `processes` worker processes; with
    `processes` ≤ 1 in this process, before this returns."""
    if processes <= 1:
        return finished(pesq_and_stoi(*item))
    if processes not in _pools:
        # spawned, not forked: a fork of a process whose torch holds OpenMP threads can hang
        _pools[processes] = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))
    return _pools[processes].submit(pesq_and_stoi, *item)
