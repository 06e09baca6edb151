"""What every pruning callback shares: masks over named parameters, applied after optimizer steps,
kept in the callback's state so a checkpoint carries them and a resumed run continues with them."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn


class MaskingCallback(pl.Callback):
    """Subclasses decide when and how masks change (`update_masks`); this class keeps and applies them.

    Masks live on the CPU in `self.masks` (parameter name → bool tensor); `self.enforce` says whether
    they are re-applied after every optimizer step (True) or only when they are recomputed.
    """

    def __init__(self) -> None:
        self.masks: dict[str, torch.Tensor] = {}
        self.enforce = False

    # --- for subclasses -----------------------------------------------------------------------
    def update_masks(self, step: int, model: nn.Module) -> bool:
        """Recompute `self.masks` for `step` if due; return True when they changed."""
        raise NotImplementedError

    # --- mechanics -----------------------------------------------------------------------------
    @torch.no_grad()
    def apply_masks(self, model: nn.Module) -> None:
        params = dict(model.named_parameters())
        for name, mask in self.masks.items():
            params[name].mul_(mask.to(params[name].device, params[name].dtype))

    def masked_density(self) -> float:
        total = sum(m.numel() for m in self.masks.values())
        return sum(int(m.sum()) for m in self.masks.values()) / total if total else 1.0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx) -> None:
        model = pl_module.model
        changed = self.update_masks(trainer.global_step, model)
        if changed or self.enforce:
            self.apply_masks(model)
        if self.masks:
            pl_module.log("compression/density", self.masked_density())

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.masks:
            return
        self.apply_masks(pl_module.model)
        if trainer.logger is not None:
            per_tensor = {f"compression/density/{name}": float(mask.float().mean()) for name, mask in self.masks.items()}
            trainer.logger.log_metrics(per_tensor, step=trainer.global_step)

    def state_dict(self) -> dict:
        return {"masks": {name: mask.clone() for name, mask in self.masks.items()}, "enforce": self.enforce}

    def load_state_dict(self, state_dict: dict) -> None:
        self.masks = {name: mask.bool() for name, mask in state_dict["masks"].items()}
        self.enforce = bool(state_dict["enforce"])
