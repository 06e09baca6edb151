"""Honest size accounting: what each tensor costs dense, and in the deployable block-sparse encoding.

The deployable encoding is the one RNNoise's C runtime reads (`sparse_sgemv8x4`): for every group of
8 output rows, a 32-bit count of kept 8×4 blocks and a 32-bit input offset per block, then the
block's 32 weights (fp32: 4 bytes each; int8: 1 byte each plus one fp32 scale per output row).
A tensor is charged the smaller of that and its dense form; 1-D tensors (biases) stay dense fp32.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from speechcompress.compression.blocks import DEFAULT_BLOCK, as_matrix, block_energy

INDEX_BYTES = 4  # one C int


@dataclass
class TensorSize:
    name: str
    module: str  # class of the owning module, e.g. GRU, Linear, Conv1d
    shape: str
    params: int
    nonzero: int
    density: float
    bytes_dense_fp32: int
    bytes_sparse: int  # deployable, fp32 weights
    bytes_sparse_int8: int  # deployable, int8 weights + per-row scales


def encoded_bytes(weight: torch.Tensor, block: tuple[int, int] = DEFAULT_BLOCK) -> tuple[int, int]:
    """(fp32, int8) bytes of one weight in its deployable form."""
    if weight.dim() < 2:
        return 4 * weight.numel(), 4 * weight.numel()
    matrix = as_matrix(weight)
    rows, cols = block
    outputs = matrix.shape[0]
    kept_blocks = int((block_energy(matrix, block) > 0).sum())
    index = INDEX_BYTES * (-(-outputs // rows) + kept_blocks)
    sparse_fp32 = index + 4 * rows * cols * kept_blocks
    sparse_int8 = index + rows * cols * kept_blocks + 4 * outputs
    dense_fp32, dense_int8 = 4 * matrix.numel(), matrix.numel() + 4 * outputs
    return min(sparse_fp32, dense_fp32), min(sparse_int8, dense_int8)


def tensor_sizes(model: nn.Module) -> list[TensorSize]:
    owners = {f"{prefix}.{name}" if prefix else name: type(module).__name__
              for prefix, module in model.named_modules() for name, _ in module.named_parameters(recurse=False)}
    sizes = []
    for name, param in model.named_parameters():
        fp32, int8 = encoded_bytes(param.detach())
        nonzero = int(torch.count_nonzero(param))
        sizes.append(TensorSize(name, owners[name], "x".join(map(str, param.shape)), param.numel(), nonzero,
                                nonzero / max(param.numel(), 1), 4 * param.numel(), fp32, int8))
    return sizes


def size_metrics(sizes: list[TensorSize]) -> dict[str, float]:
    """`size/*` totals, plus `size/bytes_sparse_gru` (the figure RNNoise's "3× bigger" reports are about)."""
    params = sum(s.params for s in sizes)
    nonzero = sum(s.nonzero for s in sizes)
    gru = [s for s in sizes if s.module == "GRU"]
    return {
        "size/params": float(params),
        "size/nonzero": float(nonzero),
        "size/density": nonzero / max(params, 1),
        "size/bytes_dense_fp32": float(sum(s.bytes_dense_fp32 for s in sizes)),
        "size/bytes_sparse": float(sum(s.bytes_sparse for s in sizes)),
        "size/bytes_sparse_int8": float(sum(s.bytes_sparse_int8 for s in sizes)),
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
