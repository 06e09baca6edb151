"""Honest size accounting: what each tensor costs dense, and in the arrays RNNoise's C runtime loads.

The deployable figures follow xiph's weight exporter (weight-exchange's `print_linear_layer`, as
rnnoise's `dump_rnnoise_weights.py` calls it) array by array, for the library as its configure
script builds it by default (DISABLE_DEBUG_FLOAT: int8 layers carry no float copy of their weights):

- every Linear, Conv1d and GRU becomes a LinearLayer over a matrix [inputs, outputs]: a Linear's
  weight transposed; a Conv1d's laid out tap-major, (k · in, out); a GRU two of them, input and
  recurrent, with torch's gate order r, z, n turned into xiph's z, r, n;
- the GRU matrices are block-sparse, as xiph's dump script writes them: per 8 outputs an int count
  of kept blocks (4 consecutive inputs × 8 outputs, kept when any weight is non-zero), an int input
  offset per kept block, then its 32 weights; the recurrent matrix's diagonal is taken out into a
  vector of 3·H floats first. Other layers are dense, or block-sparse where that is smaller (the
  exporter's `sparse=True`; an exporter of ours must make the same choice for these figures to hold);
- fp32: float weights and a float bias (zeros for a layer without one);
  int8: int8 weights, the bias, `subias` (the bias minus the weights' column sums, for the
  runtime's unsigned-input kernels) and one float `scale` per output. Layers a model lists in
  `unquantized_layers` stay fp32 (RNNoise: conv1, dense_out and vad_dense, as xiph's script).

The C runtime has no complex layers: a complex convolution (FRCRN) is counted as two such layers,
its real and its imaginary weights, each a matrix [outputs, inputs · kernel].
A matrix whose shape is not a multiple of 4 inputs × 8 outputs is counted as zero-padded to one
(the C runtime needs the multiples). Parameters of other modules are counted dense fp32.
`size/bytes_blob*` add the weights file's framing (`rnnoise_model_from_buffer` reads it): a 64-byte
header per array, its data padded to 64 bytes.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from speechcompress.compression.blocks import DEFAULT_BLOCK, as_matrix, block_sums
from speechcompress.export.rnnoise_c import BLOB_BLOCK
from speechcompress.models.complex import ComplexConv2d, ComplexConvTranspose2d

_ITEM_BYTES = {"float": 4, "int": 4, "int8": 1}


@dataclass(frozen=True)
class Array:
    """One array of xiph's export: its C name, the parameter it encodes, its C type and length."""

    name: str
    tensor: str
    kind: str  # float | int | int8
    count: int

    @property
    def nbytes(self) -> int:
        return _ITEM_BYTES[self.kind] * self.count

    @property
    def blob_bytes(self) -> int:
        return BLOB_BLOCK + -(-self.nbytes // BLOB_BLOCK) * BLOB_BLOCK


def _kept_blocks(matrix: torch.Tensor) -> int:
    """Blocks of 8 outputs × 4 inputs of a torch-oriented [outputs, inputs] matrix that xiph keeps:
    those whose sum of |w| exceeds 1e-10."""
    return int((block_sums(matrix.abs().double()) > 1e-10).sum())


def _linear_layer(name: str, matrix: torch.Tensor, weight: str, bias: str, quantize: bool,
                  sparse: bool | None, diagonal: bool = False) -> list[Array]:
    """The arrays of one LinearLayer; `matrix` [outputs, inputs] (torch's orientation); `sparse`
    None: whichever of dense and block-sparse is smaller."""
    outputs, inputs = matrix.shape
    rows, cols = DEFAULT_BLOCK
    padded_outputs, padded_inputs = -(-outputs // rows) * rows, -(-inputs // cols) * cols
    arrays = []
    if diagonal:  # GRU recurrent weights: each gate's own-unit feedback as a separate vector
        arrays.append(Array(f"{name}_weights_diag", weight, "float", outputs))
        units = torch.arange(inputs)
        matrix = matrix.clone()
        for gate in range(outputs // inputs):
            matrix[gate * inputs + units, units] = 0.0
    kind = "int8" if quantize else "float"
    blocks = _kept_blocks(matrix)
    block_sparse = [Array(f"{name}_weights_idx", weight, "int", padded_outputs // rows + blocks),
                    Array(f"{name}_weights_{kind}", weight, kind, rows * cols * blocks)]
    dense = [Array(f"{name}_weights_{kind}", weight, kind,
                   padded_outputs * padded_inputs if quantize else outputs * inputs)]
    if sparse is None:
        sparse = sum(a.nbytes for a in block_sparse) < sum(a.nbytes for a in dense)
    arrays += block_sparse if sparse else dense
    arrays.append(Array(f"{name}_bias", bias, "float", outputs))
    if quantize:
        arrays += [Array(f"{name}_subias", weight, "float", outputs), Array(f"{name}_scale", weight, "float", outputs)]
    return arrays


def xiph_arrays(model: nn.Module, quantize: bool) -> list[Array]:
    """Every array xiph's exporter writes for `model` (fp32, or int8 with `quantize`)."""
    unquantized = set(getattr(model, "unquantized_layers", ()))
    arrays: list[Array] = []
    covered: set[str] = set()
    for prefix, module in model.named_modules():
        c_name, q = prefix.replace(".", "_"), quantize and prefix not in unquantized
        params = {n: f"{prefix}.{n}" if prefix else n for n, _ in module.named_parameters(recurse=False)}
        if isinstance(module, nn.GRU) and module.num_layers == 1 and not module.bidirectional:
            for part, suffix, diagonal in (("input", "ih", False), ("recurrent", "hh", True)):
                r, z, n = getattr(module, f"weight_{suffix}_l0").detach().chunk(3)
                z_r_n = torch.cat([z, r, n])
                bias = params.get(f"bias_{suffix}_l0", params[f"weight_{suffix}_l0"])
                arrays += _linear_layer(f"{c_name}_{part}", z_r_n, params[f"weight_{suffix}_l0"], bias, q,
                                        sparse=True, diagonal=diagonal)
        elif isinstance(module, nn.Linear | nn.Conv1d) and getattr(module, "groups", 1) == 1:
            bias = params.get("bias", params["weight"])
            arrays += _linear_layer(c_name, as_matrix(module.weight.detach()), params["weight"], bias, q, sparse=None)
        elif isinstance(module, ComplexConv2d | ComplexConvTranspose2d):
            for part in ("re", "im"):
                weight = getattr(module, f"weight_{part}").detach()
                weight = weight.transpose(0, 1) if module.transposed else weight  # [out, in, kf, kt]
                bias = params.get(f"bias_{part}", params[f"weight_{part}"])
                arrays += _linear_layer(f"{c_name}_{part}", as_matrix(weight), params[f"weight_{part}"], bias, q,
                                        sparse=None)
        else:
            continue
        covered |= set(params.values())
    for name, param in model.named_parameters():  # whatever the format has no layer for stays dense fp32
        if name not in covered:
            arrays.append(Array(name.replace(".", "_"), name, "float", param.numel()))
    return arrays


@dataclass
class TensorSize:
    name: str
    module: str  # class of the owning module, e.g. GRU, Linear, Conv1d
    shape: str
    params: int
    nonzero: int
    density: float
    bytes_dense_fp32: int
    bytes_sparse: int  # xiph's export, fp32 (the arrays that encode this parameter)
    bytes_sparse_int8: int  # xiph's export, int8 where the model allows it
    bytes_blob: int  # the same arrays with the weights file's framing, fp32
    bytes_blob_int8: int  # and int8


def tensor_sizes(model: nn.Module) -> list[TensorSize]:
    """Per parameter: counts, dense bytes, and the bytes of the arrays xiph's export writes for it."""
    owners = {f"{prefix}.{name}" if prefix else name: type(module).__name__
              for prefix, module in model.named_modules() for name, _ in module.named_parameters(recurse=False)}
    totals: dict[tuple[str, bool, bool], int] = {}  # (parameter, int8, framed) → bytes
    for quantize in (False, True):
        for array in xiph_arrays(model, quantize):
            for framed, size in ((False, array.nbytes), (True, array.blob_bytes)):
                totals[array.tensor, quantize, framed] = totals.get((array.tensor, quantize, framed), 0) + size
    sizes = []
    for name, param in model.named_parameters():
        nonzero = int(torch.count_nonzero(param))
        exported = [totals.get((name, quantize, framed), 0) for framed in (False, True) for quantize in (False, True)]
        sizes.append(TensorSize(name, owners[name], "x".join(map(str, param.shape)), param.numel(), nonzero,
                                nonzero / max(param.numel(), 1), 4 * param.numel(), *exported))
    return sizes


def size_metrics(sizes: list[TensorSize]) -> dict[str, float]:
    """`size/*` totals: counts, dense bytes, and xiph's export in fp32 and int8, as arrays and as a
    weights file; `size/bytes_sparse_gru` is the GRUs' share (what RNNoise's "3× bigger" reports are about)."""
    params = sum(s.params for s in sizes)
    nonzero = sum(s.nonzero for s in sizes)
    gru = [s for s in sizes if s.module == "GRU"]
    totals = {name: float(sum(getattr(s, name) for s in sizes)) for name in
              ("bytes_dense_fp32", "bytes_sparse", "bytes_sparse_int8", "bytes_blob", "bytes_blob_int8")}
    return {
        "size/params": float(params),
        "size/nonzero": float(nonzero),
        "size/density": nonzero / max(params, 1),
        **{f"size/{name}": value for name, value in totals.items()},
        "size/bytes_sparse_gru": float(sum(s.bytes_sparse for s in gru)),
        "size/bytes_dense_fp32_gru": float(sum(s.bytes_dense_fp32 for s in gru)),
    }


def write_size_csv(sizes: list[TensorSize], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(sizes[0])))
        writer.writeheader()
        writer.writerows(asdict(s) for s in sizes)
    return path
