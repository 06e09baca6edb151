"""Iterative magnitude pruning: prune, fine-tune, prune more, on a cubic schedule to a final sparsity.

Unstructured (single weights, ranked per tensor or globally) or structured (whole channels of the
model's channel groups — conv output channels, GRU units, linear outputs — ranked by the L2 norm of
the weights that compute them, removed with the weights that read them; see compression.structured).
Output layers are never pruned by the structured mode. Pruned weights stay pruned between updates
(the fine-tuning happens around them). A ratios file (e.g. from `speechcompress sensitivity
--emit-ratios`) overrides the final sparsity per parameter (unstructured) or per channel group
(structured).
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import torch
import yaml
from torch import nn

from speechcompress.compression.masking import ScheduledMaskCallback, density_at
from speechcompress.compression.structured import channel_groups, channel_masks, channel_norms
from speechcompress.config import ConfigError


def magnitude_mask(weight: torch.Tensor, density: float) -> torch.Tensor:
    """Keep the `density` fraction of entries with the largest magnitude (at least one)."""
    return strongest(weight.detach().abs(), density)


def strongest(scores: torch.Tensor, density: float) -> torch.Tensor:
    """Bool mask keeping the `density` fraction of `scores` (any shape) with the largest values, at least one."""
    keep = max(1, round(density * scores.numel()))
    mask = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
    mask[torch.topk(scores.flatten(), keep).indices] = True
    return mask.reshape(scores.shape)


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
    setting_names = ("prune_start", "prune_stop")

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
        keys: dict[str, str] | None = None,
    ) -> None:
        """structure: "unstructured" | "structured" (channels); scope (unstructured): "per_tensor" | "global".
        patterns: fnmatch patterns of the parameters (unstructured; default: every weight with 2+
        dimensions) or channel groups (structured; default: all) to prune."""
        super().__init__(prune_start, prune_stop, prune_interval, exponent, schedule, keys)
        if not 0 <= final_sparsity < 1:
            raise ConfigError(f"compression.final_sparsity must be in [0, 1), got {final_sparsity}")
        if structure not in ("unstructured", "structured") or scope not in ("per_tensor", "global"):
            raise ConfigError(f"compression.structure must be unstructured|structured and compression.scope "
                              f"per_tensor|global; got {structure!r}, {scope!r}")
        if structure == "structured" and scope == "global":
            raise ConfigError("structured pruning ranks channels within each group: use compression.scope=per_tensor")
        if scope == "global" and ratios_file:
            raise ConfigError("compression.scope=global ranks every weight against one threshold, so it cannot follow "
                              "per-tensor ratios: drop compression.ratios_file or use compression.scope=per_tensor")
        self.final_sparsity, self.structure, self.scope = final_sparsity, structure, scope
        self.patterns = list(patterns or [])
        self.ratios = load_ratios(ratios_file)

    def targets(self, model: nn.Module) -> dict[str, nn.Parameter]:
        """The parameters (unstructured) to prune; refuses patterns or ratios that name nothing."""
        found = {name: p for name, p in model.named_parameters()
                 if (any(fnmatch.fnmatch(name, pat) for pat in self.patterns) if self.patterns else p.dim() >= 2)}
        self._refuse_unknown(found, set(dict(model.named_parameters())), "parameters")
        return found

    def groups(self, model: nn.Module) -> list:
        """The channel groups (structured) to prune."""
        every = channel_groups(model)
        found = [g for g in every if not self.patterns or any(fnmatch.fnmatch(g.name, pat) for pat in self.patterns)]
        self._refuse_unknown(found, {g.name for g in every}, "channel groups")
        return found

    def _refuse_unknown(self, found, known: set[str], what: str) -> None:
        if not found:
            raise ConfigError(f"PruneCallback: no {what} match compression.patterns={self.patterns}; "
                              f"the model has {sorted(known)}")
        unknown = sorted(set(self.ratios) - known)
        if unknown:
            raise ConfigError(f"PruneCallback: the ratios file names {what} the model lacks: {unknown}")

    def compute_masks(self, model: nn.Module, alpha: float) -> dict[str, torch.Tensor]:
        def density(name: str) -> float:
            return density_at(alpha, 1.0 - self.ratios.get(name, self.final_sparsity))

        if self.structure == "structured":
            params = dict(model.named_parameters())
            with torch.no_grad():
                keep = {g.name: strongest(channel_norms(g, params), density(g.name)).cpu() for g in self.groups(model)}
            return channel_masks(model, keep)
        targets = self.targets(model)
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
