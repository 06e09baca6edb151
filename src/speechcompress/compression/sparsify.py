"""RNNoise-style block sparsification of GRUs (and chosen linear/conv layers) on a cubic schedule.

Every `sparsify_interval` steps between `sparsify_start` and `sparsify_stop` the masks are recomputed
for density(step) = α + (1 − α)·target with α = ((stop − step) / (stop − start))^exponent, keeping the
highest-energy 8×4 blocks; in between, pruned weights may grow back. From `sparsify_stop` on, the
final masks are re-applied after every optimizer step.
"""

from __future__ import annotations

import fnmatch
import math

import torch
from torch import nn

from speechcompress.compression.blocks import block_mask, from_matrix
from speechcompress.compression.masking import ScheduledMaskCallback, density_at
from speechcompress.config import ConfigError
from speechcompress.xiph_format import as_matrix

XIPH_GATE_DENSITY = {"r": 0.3, "z": 0.2, "n": 0.5}  # PyTorch's GRU row order is r, z, n
_XIPH_MEAN = sum(XIPH_GATE_DENSITY.values()) / 3


def _scaled(t: float) -> dict[str, float]:
    """xiph's gate targets moved along g_gate = t^(log g_xiph / log mean): t = 1 dense, t = mean xiph's."""
    return {gate: t ** (math.log(g) / math.log(_XIPH_MEAN)) for gate, g in XIPH_GATE_DENSITY.items()}


def gate_densities(density: float | None) -> dict[str, float]:
    """xiph's per-gate targets, or targets scaled so that their mean is exactly `density`.

    The gates share one geometric scaling (see `_scaled`), so density 1 is dense, density 1/3 is
    exactly xiph's (0.3, 0.2, 0.5), and the gates keep their order; the mean of the three is a
    monotone function of t, solved for `density` by bisection.
    """
    if density is None:
        return dict(XIPH_GATE_DENSITY)
    if not 0.0 < density <= 1.0:
        raise ConfigError(f"compression.density must be in (0, 1], got {density}")
    low, high = 0.0, 1.0
    for _ in range(100):  # far below float resolution
        middle = (low + high) / 2
        low, high = (middle, high) if sum(_scaled(middle).values()) / 3 < density else (low, middle)
    return _scaled(high)


class SparsifyCallback(ScheduledMaskCallback):
    regrow = True  # xiph: pruned blocks may come back until sparsify_stop
    setting_names = ("sparsify_start", "sparsify_stop")

    def __init__(
        self,
        sparsify_start: float = 6000,
        sparsify_stop: float = 20000,
        sparsify_interval: int = 100,
        exponent: float = 3.0,
        schedule: str = "absolute",
        density: float | None = None,
        block_rows: int = 8,
        block_cols: int = 4,
        keep_diagonal: bool = True,
        layer_patterns: list[str] | None = None,
        layer_density: float | None = None,
        keys: dict[str, str] | None = None,
    ) -> None:
        """`schedule`: "absolute" (start/stop are optimizer steps) or "relative" (fractions of the run).
        `layer_patterns`: fnmatch patterns of Linear/Conv weights (e.g. "dense_out.weight") sparsified
        to `layer_density` (default: `density`, or 0.5)."""
        super().__init__(sparsify_start, sparsify_stop, sparsify_interval, exponent, schedule, keys)
        self.gates = gate_densities(density)
        self.block = (int(block_rows), int(block_cols))
        self.keep_diagonal = keep_diagonal
        self.layer_patterns = list(layer_patterns or [])
        self.layer_density = layer_density if layer_density is not None else (density or 0.5)

    # --- masks -----------------------------------------------------------------------------------
    def targets(self, model: nn.Module) -> dict[str, tuple[nn.Parameter, dict[str, float] | float, bool]]:
        """name → (parameter, per-gate or single target density, keep_diagonal)."""
        found: dict[str, tuple] = {}
        for prefix, module in model.named_modules():
            for name, param in module.named_parameters(recurse=False):
                full = f"{prefix}.{name}" if prefix else name
                if isinstance(module, nn.GRU) and name.startswith(("weight_ih", "weight_hh")):
                    found[full] = (param, self.gates, self.keep_diagonal and name.startswith("weight_hh"))
                elif name == "weight" and any(fnmatch.fnmatch(full, p) for p in self.layer_patterns):
                    found[full] = (param, self.layer_density, False)
        if not found:
            raise ConfigError("SparsifyCallback found nothing to sparsify: the model has no GRU and "
                              f"compression.layer_patterns={self.layer_patterns} matches no weight")
        return found

    def _mask_for(self, param: torch.Tensor, target, keep_diagonal: bool, alpha: float) -> torch.Tensor:
        """The mask of one parameter at schedule position `alpha` (1 dense … 0 at target)."""
        if isinstance(target, dict):  # a GRU weight: one mask per gate, stacked in r, z, n order
            gates = param.detach().chunk(3, dim=0)
            return torch.cat([block_mask(g, density_at(alpha, target[k]), self.block, keep_diagonal)
                              for g, k in zip(gates, ("r", "z", "n"), strict=True)]).cpu()
        mask = block_mask(as_matrix(param.detach()), density_at(alpha, target), self.block, False)
        return from_matrix(mask, param.shape).contiguous().cpu()

    def compute_masks(self, model: nn.Module, alpha: float) -> dict[str, torch.Tensor]:
        return {name: self._mask_for(param, target, diag, alpha) for name, (param, target, diag) in self.targets(model).items()}
