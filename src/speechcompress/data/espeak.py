"""Speech from espeak-ng, called through ctypes on the library the `espeakng-loader` wheel ships.

espeak-ng keeps global state, so one `EspeakSynthesizer` per process drives it; synthesis is
synchronous and collects the int16 samples its callback hands over.

Reproducibility: espeak-ng seeds the noise of its breathy voices (`+f2`, `+f3`, `+Alicia`, ...)
from the clock when it starts, and every utterance carries timing and phase state over into the
next one (the same call returns different audio after different predecessors; re-initialising the
library does not reset it). So the same requests give the same audio only in a fresh process,
seeded (`seed`), making them in the same order: `synthetic.load_synthetic_split` does exactly that.
"""

from __future__ import annotations

import ctypes

import espeakng_loader
import numpy as np

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EspeakSynthesizer:
    """Text to a mono float32 waveform at espeak-ng's native rate (`self.sample_rate`, 22050 Hz)."""

    _lib: ctypes.CDLL | None = None
    _sample_rate: int = 0

    def __init__(self, seed: int = 0) -> None:
        cls = type(self)
        if cls._lib is None:
            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            lib.espeak_Initialize.restype = ctypes.c_int
            lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
            lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
            lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
            lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
            lib.espeak_Synth.argtypes = [
                ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
            ]
            data_path = espeakng_loader.get_data_path().encode()
            rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0)
            if rate <= 0:
                raise RuntimeError(f"espeak-ng failed to initialise with data at {data_path.decode()}")
            cls._lib, cls._sample_rate = lib, rate
        self._chunks: list[np.ndarray] = []
        # Keep a reference to the callback: ctypes frees it otherwise and espeak calls freed memory.
        self._callback = _CALLBACK(self._collect)
        cls._lib.espeak_SetSynthCallback(self._callback)
        cls._lib.espeak_ng_SetRandSeed(seed)  # replaces the clock seed espeak_Initialize drew

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    def _collect(self, samples, count, _events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0  # 0 = keep synthesising

    def synthesize(self, text: str, voice: str = "en", rate: int = 175, pitch: int = 50,
                   pitch_range: int = 50) -> np.ndarray:
        """Speak `text` with `voice` (e.g. "en+f3"); rate in words per minute, pitch and range 0-100."""
        lib = self._lib
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
        lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        lib.espeak_SetParameter(_PARAM_RANGE, int(pitch_range), 0)
        lib.espeak_SetParameter(_PARAM_VOLUME, 100, 0)
        lib.espeak_SetSynthCallback(self._callback)
        self._chunks = []
        encoded = text.encode("utf-8") + b"\0"
        lib.espeak_Synth(encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        lib.espeak_Synchronize()
        if not self._chunks:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(self._chunks).astype(np.float32) / 32768.0
