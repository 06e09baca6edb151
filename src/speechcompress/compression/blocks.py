"""Block structure of weight matrices: energies of 8×4 blocks and masks that keep the strongest.

A weight of any rank is viewed as a matrix [outputs, inputs] as RNNoise's C runtime multiplies it:
a conv kernel [out, in, k] tap-major, [out, k · in], so that a block's 4 inputs are 4 channels of
one tap (xiph's exporter lays convs out as (k · in, out)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from speechcompress.xiph_format import BLOCK_INPUTS, BLOCK_OUTPUTS

DEFAULT_BLOCK = (BLOCK_OUTPUTS, BLOCK_INPUTS)  # 8 outputs × 4 inputs: the blocks librnnoise stores


def from_matrix(matrix: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """The inverse of `as_matrix` for a weight of `shape`."""
    if len(shape) == 3:
        return matrix.reshape(shape[0], shape[2], shape[1]).transpose(1, 2)
    return matrix.reshape(shape)


def block_sums(values: torch.Tensor, block: tuple[int, int] = DEFAULT_BLOCK) -> torch.Tensor:
    """Sum of `values` [out, in] over each block: [ceil(out/8), ceil(in/4)] (edges zero-padded); differentiable."""
    rows, cols = block
    padded = F.pad(values, (0, -values.shape[1] % cols, 0, -values.shape[0] % rows))
    return padded.reshape(padded.shape[0] // rows, rows, padded.shape[1] // cols, cols).sum(dim=(1, 3))


def block_energy(matrix: torch.Tensor, block: tuple[int, int] = DEFAULT_BLOCK) -> torch.Tensor:
    """Sum of squares of each block: [ceil(out/8), ceil(in/4)] (edges zero-padded); differentiable."""
    return block_sums(matrix.float().square(), block)


def expand_blocks(block_mask: torch.Tensor, shape: tuple[int, int], block: tuple[int, int] = DEFAULT_BLOCK) -> torch.Tensor:
    rows, cols = block
    full = block_mask.repeat_interleave(rows, 0).repeat_interleave(cols, 1)
    return full[: shape[0], : shape[1]]


def block_mask(matrix: torch.Tensor, density: float, block: tuple[int, int] = DEFAULT_BLOCK,
               keep_diagonal: bool = False) -> torch.Tensor:
    """Boolean mask keeping the `density` fraction of blocks with the most energy (at least one).

    keep_diagonal (square matrices): the diagonal is always kept and left out of the block ranking,
    as xiph does for recurrent weights, where each unit's own feedback matters most.
    """
    if density >= 1.0:
        return torch.ones_like(matrix, dtype=torch.bool)
    ranked = matrix
    if keep_diagonal:
        ranked = matrix - torch.diag_embed(torch.diagonal(matrix))
    energy = block_energy(ranked, block)
    keep = max(1, round(density * energy.numel()))
    chosen = torch.zeros(energy.numel(), dtype=torch.bool, device=matrix.device)
    chosen[torch.topk(energy.flatten(), keep).indices] = True
    mask = expand_blocks(chosen.reshape(energy.shape), tuple(matrix.shape), block)
    if keep_diagonal:
        mask |= torch.eye(matrix.shape[0], matrix.shape[1], dtype=torch.bool, device=matrix.device)
    return mask
