"""Honest size accounting: what each tensor costs dense, and in the arrays of xiph's weights format.

The deployable figures are the bytes of the arrays `xiph_format.encode` produces for the
model (the encoder the librnnoise weights file is written with), each counted for the parameter
it encodes: `bytes_sparse` float, `bytes_sparse_int8` int8 where the model allows it, and
`bytes_blob*` the same arrays framed as in the file (a 64-byte header per array, its data padded
to 64 bytes). For xiph's RNNoise, `size/bytes_blob_int8` is the size of the file that ships.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from speechcompress.xiph_format import encode, framed_bytes


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
    """Per parameter: counts, dense bytes, and the bytes of the arrays xiph's format writes for it."""
    owners = {f"{prefix}.{name}" if prefix else name: type(module).__name__
              for prefix, module in model.named_modules() for name, _ in module.named_parameters(recurse=False)}
    totals: dict[tuple[str, bool, bool], int] = {}  # (parameter, int8, framed) → bytes
    for quantize in (False, True):
        encoded = encode(model, quantize)
        for name, array in encoded.arrays.items():
            for framed, size in ((False, array.nbytes), (True, framed_bytes(array))):
                key = (encoded.tensors[name], quantize, framed)
                totals[key] = totals.get(key, 0) + size
    sizes = []
    for name, param in model.named_parameters():
        nonzero = int(torch.count_nonzero(param))
        exported = [totals.get((name, quantize, framed), 0) for framed in (False, True) for quantize in (False, True)]
        sizes.append(TensorSize(name, owners[name], "x".join(map(str, param.shape)), param.numel(), nonzero,
                                nonzero / max(param.numel(), 1), 4 * param.numel(), *exported))
    return sizes


def size_report(model: nn.Module) -> dict[str, float]:
    """`size_metrics` of the model, plus `size/bytes_checkpoint`: the fp32 state dict as torch.save writes it."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return {**size_metrics(tensor_sizes(model)), "size/bytes_checkpoint": float(buffer.getbuffer().nbytes)}


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
