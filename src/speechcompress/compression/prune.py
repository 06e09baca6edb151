"""Iterative magnitude pruning: prune, fine-tune, prune more, on a cubic schedule to a final sparsity.

Unstructured (single weights, ranked per tensor or globally) or structured (whole output rows /
channels, ranked by L2 norm). Pruned weights stay pruned between updates (the fine-tuning happens
around them). Per-tensor sparsities, e.g. from `speechcompress sensitivity --emit-ratios`, override
the final sparsity for the tensors they name.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import torch
import yaml
from torch import nn

from speechcompress.compression.blocks import as_matrix
from speechcompress.compression.masking import ScheduledMaskCallback, density_at
from speechcompress.config import ConfigError


def magnitude_mask(weight: torch.Tensor, density: float) -> torch.Tensor:
    """Keep the `density` fraction of entries with the largest magnitude (at least one)."""
    keep = max(1, round(density * weight.numel()))
    mask = torch.zeros(weight.numel(), dtype=torch.bool, device=weight.device)
    mask[torch.topk(weight.detach().abs().flatten(), keep).indices] = True
    return mask.reshape(weight.shape)


def row_mask(weight: torch.Tensor, density: float) -> torch.Tensor:
    """Keep whole output rows (dim 0: neurons, channels, gate units) with the largest L2 norm."""
    norms = as_matrix(weight.detach()).norm(dim=1)
    keep = max(1, round(density * norms.numel()))
    rows = torch.zeros(norms.numel(), dtype=torch.bool, device=weight.device)
    rows[torch.topk(norms, keep).indices] = True
    return rows.reshape(-1, *([1] * (weight.dim() - 1))).expand_as(weight).clone()


def load_ratios(path: str | None) -> dict[str, float]:
    if not path:
        return {}
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"compression ratios_file {file} does not exist; write one with "
                          f"`speechcompress sensitivity --checkpoint CKPT --emit-ratios {file}`")
    ratios = yaml.safe_load(file.read_text()) or {}
    if not isinstance(ratios, dict) or not all(0 <= float(v) < 1 for v in ratios.values()):
        raise ConfigError(f"{file} must map parameter names to sparsities in [0, 1)")
    return {str(k): float(v) for k, v in ratios.items()}


class PruneCallback(ScheduledMaskCallback):
    def __init__(
        self,
        final_sparsity: float = 0.5,
        prune_start: float = 0,
        prune_stop: float = 1000,
        prune_interval: int = 100,
        exponent: float = 3.0,
        schedule: str = "absolute",
        structure: str = "unstructured",
        scope: str = "per_tensor",
        patterns: list[str] | None = None,
        ratios_file: str | None = None,
    ) -> None:
        """structure: "unstructured" | "structured" (rows); scope (unstructured): "per_tensor" | "global".
        patterns: fnmatch patterns of parameters to prune (default: every weight with 2+ dimensions)."""
        super().__init__(prune_start, prune_stop, prune_interval, exponent, schedule)
        if not 0 <= final_sparsity < 1:
            raise ConfigError(f"compression.final_sparsity must be in [0, 1), got {final_sparsity}")
        if structure not in ("unstructured", "structured") or scope not in ("per_tensor", "global"):
            raise ConfigError(f"compression.structure must be unstructured|structured and compression.scope "
                              f"per_tensor|global; got {structure!r}, {scope!r}")
        if structure == "structured" and scope == "global":
            raise ConfigError("structured pruning ranks rows within each tensor: use compression.scope=per_tensor")
        self.final_sparsity, self.structure, self.scope = final_sparsity, structure, scope
        self.patterns = list(patterns or [])
        self.ratios = load_ratios(ratios_file)

    def targets(self, model: nn.Module) -> dict[str, nn.Parameter]:
        found = {name: p for name, p in model.named_parameters()
                 if (any(fnmatch.fnmatch(name, pat) for pat in self.patterns) if self.patterns else p.dim() >= 2)}
        if not found:
            raise ConfigError(f"PruneCallback: no parameter matches compression.patterns={self.patterns}")
        unknown = sorted(set(self.ratios) - set(dict(model.named_parameters())))
        if unknown:
            raise ConfigError(f"PruneCallback: the ratios file names parameters the model lacks: {unknown}")
        return found

    def compute_masks(self, model: nn.Module, alpha: float) -> dict[str, torch.Tensor]:
        targets = self.targets(model)

        def density(name: str) -> float:
            return density_at(alpha, 1.0 - self.ratios.get(name, self.final_sparsity))

        if self.structure == "structured":
            return {name: row_mask(p, density(name)).cpu() for name, p in targets.items()}
        if self.scope == "per_tensor":
            return {name: magnitude_mask(p, density(name)).cpu() for name, p in targets.items()}
        # global: one magnitude threshold over every target tensor
        joined = torch.cat([p.detach().abs().flatten().cpu() for p in targets.values()])
        kept = magnitude_mask(joined, density_at(alpha, 1.0 - self.final_sparsity))
        masks, offset = {}, 0
        for name, p in targets.items():
            masks[name] = kept[offset : offset + p.numel()].reshape(p.shape)
            offset += p.numel()
        return masks
