"""xiph's weights format, the one description of it: how any model's layers become the named arrays
of a librnnoise weights file, and how that file is framed.

One encoder (`encode`) serves both the file that ships (`export.xiph_weights`, for xiph's
RNNoise) and the size accounting of every model (`compression.size`), so the bytes the accounting
reports are the bytes of the arrays the writer produces, for any model. It follows xiph's weight
exporter (weight-exchange's `print_linear_layer`, as rnnoise's `dump_rnnoise_weights.py` calls it)
for the library as its configure script builds it by default (DISABLE_DEBUG_FLOAT: int8 layers
carry no float copy of their weights):

- every Linear, Conv1d and GRU becomes a LinearLayer over a matrix [inputs, outputs]: a Linear's
  weight transposed; a Conv1d's laid out tap-major, (k · in, out); a GRU two of them, input and
  recurrent, with torch's gate order r, z, n turned into xiph's z, r, n. A complex convolution
  (FRCRN; the C runtime has none) is two, its real and its imaginary weights, [inputs · kernel, outputs];
- GRU matrices are block-sparse (per 8 outputs an int count of kept blocks, an int first input per
  kept block, then its 32 weights; a block of 4 inputs × 8 outputs is kept when the sum of its |w|
  exceeds 1e-10), the recurrent matrix's diagonal taken out first into a vector of 3·H floats.
  Other layers are block-sparse where that is smaller, but for a model's `dense_layers` (those
  librnnoise reads dense);
- int8 (`quantize`): int8 weights, the bias, `subias` (the bias minus the weights' column sums, for
  the runtime's unsigned-input kernels) and one float `scale` per output, but for a model's
  `unquantized_layers`; float: float weights and the bias (zeros for a layer without one);
- a matrix quantized or block-sparse is zero-padded to multiples of 4 inputs × 8 outputs (the C
  kernels need them); parameters of other modules are dense float arrays;
- the file: per array a 64-byte header (`"DNNw"`, version 0, type, byte size, padded byte size, a
  NUL-terminated name of at most 43 characters), then its data zero-padded to 64 bytes
  (`write_blob`, `read_blob`; what `rnnoise_model_from_buffer` reads).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from speechcompress.models.complex import ComplexConv2d, ComplexConvTranspose2d

BLOB_BLOCK = 64  # WEIGHT_BLOCK_SIZE of nnet.h: an array header's size, and the alignment of its data
MAGIC = b"DNNw"
BLOB_VERSION = 0  # WEIGHT_BLOB_VERSION of nnet.h
NAME_BYTES = 44
_HEADER = struct.Struct(f"<4siiii{NAME_BYTES}s")  # head, version, type, size, block_size, name: 64 bytes
WEIGHT_TYPES = {0: np.float32, 1: np.int32, 3: np.int8}  # WEIGHT_TYPE_float, _int, _int8 (qweight is unused)
_TYPE_OF = {np.dtype(dtype): code for code, dtype in WEIGHT_TYPES.items()}
BLOCK_OUTPUTS, BLOCK_INPUTS = 8, 4


# --- the file ------------------------------------------------------------------------------------

def framed_bytes(array: np.ndarray) -> int:
    """The bytes `array` takes in a weights file: its header and its data padded to 64 bytes."""
    return BLOB_BLOCK + -(-array.nbytes // BLOB_BLOCK) * BLOB_BLOCK


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
        padded = framed_bytes(values) - BLOB_BLOCK
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


# --- block-sparse matrices -----------------------------------------------------------------------

def _kept_inputs(matrix: np.ndarray, start: int) -> list[int]:
    """The first inputs of the blocks of output group `start` that xiph's exporter keeps: all but
    the all-zero ones."""
    return [first for first in range(0, matrix.shape[0], BLOCK_INPUTS)
            if np.abs(matrix[first : first + BLOCK_INPUTS, start : start + BLOCK_OUTPUTS]).sum() > 1e-10]


def encode_block_sparse(matrix: np.ndarray, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(values, idx) of a [inputs, outputs] matrix (multiples of 4 and 8); values float32, input-major
    per block (for `sparse_sgemv8x4`), or int8 output-major (for `sparse_cgemv8x4`'s dot products)
    when `matrix` is int8, in which case `keep` (float, same shape) decides which blocks are kept,
    as xiph's exporter decides on the unquantized weights."""
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


# --- one LinearLayer -----------------------------------------------------------------------------

def int8_scales(matrix: np.ndarray) -> np.ndarray:
    """Per output: the step of its int8 weights. Large enough that |w| ≤ 127 steps, and that the
    sum of two neighbouring inputs' weights stays within 129 steps (the AVX2 kernels add pairs of
    products in 16 bits)."""
    even = np.pad(matrix, ((0, matrix.shape[0] % 2), (0, 0)))
    largest = np.abs(even).max(axis=0)
    largest_pair = np.abs(even[0::2] + even[1::2]).max(axis=0)
    return np.maximum(largest / 127, largest_pair / 129)


def dense_int8(values: np.ndarray, inputs: int, outputs: int) -> np.ndarray:
    """A dense int8 matrix as xiph's exporter lays it out (per 8 outputs and 4 inputs, output-major) → [inputs, outputs]."""
    return values.reshape(outputs // 8, inputs // 4, 8, 4).transpose(1, 3, 0, 2).reshape(inputs, outputs)


def _dense_int8_layout(matrix: np.ndarray) -> np.ndarray:
    """The inverse of `dense_int8`: [inputs, outputs] → per 8 outputs and 4 inputs, output-major."""
    inputs, outputs = matrix.shape
    return matrix.reshape(inputs // 4, 4, outputs // 8, 8).transpose(2, 0, 3, 1).reshape(-1)


def _padded(matrix: np.ndarray) -> np.ndarray:
    """Zero-padded to multiples of 4 inputs × 8 outputs."""
    inputs, outputs = matrix.shape
    return np.pad(matrix, ((0, -inputs % BLOCK_INPUTS), (0, -outputs % BLOCK_OUTPUTS)))


def _weights(name: str, matrix: np.ndarray, quantized: np.ndarray | None, sparse: bool | None,
             float_copy: bool) -> dict[str, np.ndarray]:
    """The weight arrays of a LinearLayer: int8 (`quantized`) and/or float, block-sparse or dense
    (`sparse` None: whichever is smaller)."""
    def encode(sparse: bool) -> dict[str, np.ndarray]:
        arrays = {}
        if quantized is not None:
            arrays[f"{name}_weights_int8"], idx = (encode_block_sparse(_padded(quantized), keep=_padded(matrix)) if sparse
                                                   else (_dense_int8_layout(_padded(quantized)), None))
        if float_copy or quantized is None:
            arrays[f"{name}_weights_float"], idx = (encode_block_sparse(_padded(matrix)) if sparse
                                                    else (matrix.reshape(-1), None))
        return arrays | ({f"{name}_weights_idx": idx} if sparse else {})  # both layouts keep the same blocks

    if sparse is not None:
        return encode(sparse)
    dense, block_sparse = encode(False), encode(True)
    return block_sparse if sum(a.nbytes for a in block_sparse.values()) < sum(a.nbytes for a in dense.values()) else dense


def linear_arrays(name: str, matrix: np.ndarray, bias: np.ndarray, quantize: bool, sparse: bool | None,
                  diagonal: bool = False, float_copy: bool = False) -> dict[str, np.ndarray]:
    """The arrays of LinearLayer `name` ([inputs, outputs] float32 `matrix`; see the module's
    docstring). `float_copy` adds the float weights to int8 ones, which the library then computes
    with instead (xiph's build without DISABLE_DEBUG_FLOAT; its shipped table has them)."""
    matrix, bias = np.asarray(matrix, np.float32), np.asarray(bias, np.float32)
    arrays = {}
    scale = int8_scales(matrix) if quantize else None  # of the whole matrix, diagonal included
    if diagonal:  # GRU recurrent weights: each gate's own-unit feedback as a separate float vector
        units = np.arange(matrix.shape[0])
        gates = [matrix[units, gate * len(units) + units] for gate in range(matrix.shape[1] // len(units))]
        arrays[f"{name}_weights_diag"] = np.concatenate(gates).astype(np.float32)
        matrix = matrix.copy()
        for gate in range(len(gates)):
            matrix[units, gate * len(units) + units] = 0.0
    quantized = None
    if quantize:
        steps = np.round(matrix / (scale + np.float32(1e-30)))
        if steps.max(initial=0) > 127 or steps.min(initial=0) < -128:
            raise ValueError(f"{name}: a weight is out of int8 range at its scale")
        quantized = steps.astype(np.int8)
    arrays |= _weights(name, matrix, quantized, sparse, float_copy)
    if quantize:
        arrays[f"{name}_subias"] = (bias - (quantized.astype(np.float64) * scale).sum(axis=0)).astype(np.float32)
        arrays[f"{name}_scale"] = (scale / 127).astype(np.float32)  # the library scales inputs by 127
    arrays[f"{name}_bias"] = bias
    return arrays


# --- a whole model -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Encoded:
    arrays: dict[str, np.ndarray]  # in file order
    tensors: dict[str, str]  # array name → the parameter it encodes (a bias array: the bias, or the weight without one)


def zrn(values: torch.Tensor) -> torch.Tensor:
    """torch's GRU gate order (reset r, update z, new n) → xiph's (z, r, n), along the first axis."""
    r, z, n = values.chunk(3)
    return torch.cat([z, r, n])


def _layers(module: nn.Module, name: str, params: dict[str, str]):
    """(array name, [inputs, outputs] matrix, bias, weight parameter, bias parameter, sparse, diagonal)
    for each LinearLayer of `module`; none for modules the format has no layer for."""
    def bias_of(weight: str, bias: str, outputs: int):
        value = getattr(module, bias, None)
        return (torch.zeros(outputs) if value is None else value.detach()), params.get(bias, params[weight])

    if isinstance(module, nn.GRU) and module.num_layers == 1 and not module.bidirectional:
        for part, suffix, diagonal in (("input", "ih", False), ("recurrent", "hh", True)):
            weight = getattr(module, f"weight_{suffix}_l0").detach()
            bias, bias_param = bias_of(f"weight_{suffix}_l0", f"bias_{suffix}_l0", weight.shape[0])
            yield (f"{name}_{part}", zrn(weight).T, zrn(bias), params[f"weight_{suffix}_l0"], bias_param, True, diagonal)
    elif isinstance(module, nn.Linear | nn.Conv1d) and getattr(module, "groups", 1) == 1:
        weight = module.weight.detach()
        bias, bias_param = bias_of("weight", "bias", weight.shape[0])
        yield name, as_matrix(weight).T, bias, params["weight"], bias_param, None, False
    elif isinstance(module, ComplexConv2d | ComplexConvTranspose2d):
        for part in ("re", "im"):
            weight = getattr(module, f"weight_{part}").detach()
            weight = weight.transpose(0, 1) if module.transposed else weight  # [out, in, kf, kt]
            bias, bias_param = bias_of(f"weight_{part}", f"bias_{part}", weight.shape[0])
            yield f"{name}_{part}", as_matrix(weight).T, bias, params[f"weight_{part}"], bias_param, None, False


def as_matrix(weight: torch.Tensor) -> torch.Tensor:
    """A weight of any rank as the [outputs, inputs] matrix the C runtime multiplies: [out, ...] →
    [out, inputs]; a Conv1d kernel [out, in, k] tap-major, [out, k · in], so that a block's 4 inputs
    are 4 channels of one tap."""
    if weight.dim() == 3:
        return weight.transpose(1, 2).reshape(weight.shape[0], -1)
    return weight.reshape(weight.shape[0], -1)


def encode(model: nn.Module, quantize: bool = True, float_copies: bool = False) -> Encoded:
    """Every array xiph's exporter writes for `model`, in module order (see the module's docstring);
    `quantize` False: all float."""
    unquantized, dense = set(getattr(model, "unquantized_layers", ())), set(getattr(model, "dense_layers", ()))
    arrays: dict[str, np.ndarray] = {}
    tensors: dict[str, str] = {}
    for prefix, module in model.named_modules():
        params = {n: f"{prefix}.{n}" if prefix else n for n, _ in module.named_parameters(recurse=False)}
        for name, matrix, bias, weight, bias_param, sparse, diagonal in _layers(module, prefix.replace(".", "_"), params):
            layer = linear_arrays(name, matrix.float().cpu().numpy(), bias.float().cpu().numpy(),
                                  quantize and prefix not in unquantized, False if prefix in dense else sparse,
                                  diagonal, float_copies)
            arrays |= layer
            tensors |= {array: bias_param if array == f"{name}_bias" else weight for array in layer}
    for name, param in model.named_parameters():  # whatever the format has no layer for stays dense float
        if name not in tensors.values():
            array = name.replace(".", "_")
            arrays[array], tensors[array] = param.detach().float().cpu().numpy().reshape(-1), name
    return Encoded(arrays, tensors)
