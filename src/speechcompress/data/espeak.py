"""Speech from espeak-ng, called through ctypes on the library the `espeakng-loader` wheel ships.

Each `synthesize` call (a few sentences in one voice) speaks in a fork of this process, taken as the
library stood after it was initialised, and sends the int16 samples back through a pipe. Two
things about espeak-ng make that worth its few milliseconds:
- it carries timing and phase state from one utterance into the next (the same call returns
  different audio after different predecessors; re-initialising does not reset it), and it seeds
  its breathy voices' noise (`+f2`, `+f3`, `+Alicia`, ...) from the clock. In a fork, every call
  starts from the same state with its own `seed`: the audio is a function of the call alone.
- some requests crash it: a wide pitch range at low pitch with some variants (`+rob` at pitch 10,
  range 100) ends in a segmentation fault. In a fork, that costs the call only: it raises
  `EspeakCrashed`.
POSIX only (`os.fork`). The fork runs espeak-ng's C code and writes to a pipe, nothing else, so it
is as safe from a process with torch's threads as PyTorch's own forked DataLoader workers.
"""

from __future__ import annotations

import ctypes
import faulthandler
import os
import traceback
from collections.abc import Sequence

import espeakng_loader
import numpy as np

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_NO_SUCH_VOICE = 3  # the fork's exit status when espeak-ng does not know the voice


class EspeakCrashed(RuntimeError):
    """espeak-ng died (a signal) while speaking one request."""


class EspeakSynthesizer:
    """Text to a mono float32 waveform at espeak-ng's native rate (`self.sample_rate`, 22050 Hz)."""

    _lib: ctypes.CDLL | None = None
    _sample_rate: int = 0

    def __init__(self) -> None:
        cls = type(self)
        if cls._lib is None:
            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            lib.espeak_Initialize.restype = ctypes.c_int
            lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
            lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
            lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
            lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
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

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    def _collect(self, samples, count, _events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0  # 0 = keep synthesising

    def synthesize(self, texts: Sequence[str], voice: str = "en", rate: int = 175, pitch: int = 50,
                   pitch_range: int = 50, seed: int = 0) -> list[np.ndarray]:
        """Speak each of `texts` in turn with `voice` (e.g. "en+f3"): rate in words per minute, pitch and
        range 0-100, `seed` for the noise of breathy voices. One waveform per text; the same arguments
        give the same samples."""
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the fork: speak, hand the samples over, and leave without running any cleanup
            status = 1
            try:
                os.close(read_end)
                faulthandler.disable()  # a crash is reported by the parent, as EspeakCrashed
                spoken = self._speak(texts, voice, rate, pitch, pitch_range, seed)
                if spoken is None:
                    status = _NO_SUCH_VOICE
                else:
                    with os.fdopen(write_end, "wb") as pipe:
                        for samples in spoken:
                            pipe.write(np.int64(len(samples)).tobytes() + samples.tobytes())
                    status = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(status)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            raise EspeakCrashed(f"espeak-ng crashed (signal {os.WTERMSIG(status)}) speaking {list(texts)!r} with "
                                f"voice {voice!r}, rate {rate}, pitch {pitch}, range {pitch_range}")
        if os.WEXITSTATUS(status) == _NO_SUCH_VOICE:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        if status != 0:
            raise RuntimeError(f"espeak-ng failed (exit status {os.WEXITSTATUS(status)}) speaking {list(texts)!r} "
                               f"with voice {voice!r}")
        waves, at = [], 0
        while at < len(data):
            count = int(np.frombuffer(data, np.int64, 1, at)[0])
            waves.append(np.frombuffer(data, np.int16, count, at + 8).astype(np.float32) / 32768.0)
            at += 8 + 2 * count
        return waves

    def _speak(self, texts: Sequence[str], voice: str, rate: int, pitch: int, pitch_range: int,
               seed: int) -> list[np.ndarray] | None:
        """In this process: the int16 samples of each text, or None if espeak-ng lacks `voice`."""
        lib = self._lib
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            return None
        lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
        lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        lib.espeak_SetParameter(_PARAM_RANGE, int(pitch_range), 0)
        lib.espeak_SetParameter(_PARAM_VOLUME, 100, 0)
        lib.espeak_ng_SetRandSeed(int(seed))
        lib.espeak_SetSynthCallback(self._callback)
        spoken = []
        for text in texts:
            self._chunks = []
            encoded = text.encode("utf-8") + b"\0"
            lib.espeak_Synth(encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            lib.espeak_Synchronize()
            spoken.append(np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16))
        return spoken
