"""What every pruning callback shares: a step schedule that ramps density from 1 to a target, masks
over named parameters recomputed on that schedule and applied after optimizer steps, and the state
(masks, last update) that a checkpoint carries so a resumed run continues exactly."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn

from speechcompress.compression.callback import CompressionCallback
from speechcompress.config import ConfigError


def schedule_alpha(step: int, start: int, stop: int, exponent: float = 3.0) -> float:
    """How dense the schedule still is: 1 up to `start`, 0 from `stop` on, ((stop−step)/(stop−start))^exponent between."""
    if step <= start:
        return 1.0
    if step >= stop:
        return 0.0
    return ((stop - step) / (stop - start)) ** exponent


def density_at(alpha: float, target: float) -> float:
    """α + (1 − α)·target: dense at α = 1, `target` at α = 0."""
    return alpha + (1.0 - alpha) * target


def scheduled_density(step: int, start: int, stop: int, target: float, exponent: float = 3.0) -> float:
    """1 before `start`, `target` from `stop` on, the cubic (by default) ramp in between."""
    return density_at(schedule_alpha(step, start, stop, exponent), target)


class ScheduledMaskCallback(CompressionCallback):
    """Recomputes masks every `interval` steps from `start` to `stop`, then keeps the final ones.

    Subclasses implement `compute_masks(model, alpha)`, alpha being the schedule's position (1 dense,
    0 at the target). `regrow` says whether pruned weights may grow back between two updates before
    `stop` (xiph's sparsification) or stay pruned (prune, then fine-tune). Masks are CPU bool tensors.
    """

    regrow = False
    final_model_only = True  # the run is judged by its final model, once the schedule is done
    setting_names = ("start", "stop")  # the subclass's names of its start and stop arguments

    def __init__(self, start: float, stop: float, interval: int, exponent: float = 3.0,
                 schedule: str = "absolute", keys: dict[str, str] | None = None) -> None:
        super().__init__(keys)
        if schedule not in ("absolute", "relative"):
            raise ConfigError(f"compression.schedule must be 'absolute' or 'relative', got {schedule!r}")
        self.start_setting, self.stop_setting = start, stop
        self.interval, self.exponent, self.schedule = max(1, int(interval)), float(exponent), schedule
        self.start = self.stop = 0
        self.masks: dict[str, torch.Tensor] = {}
        self.last_update = -1

    # --- for subclasses -----------------------------------------------------------------------
    def compute_masks(self, model: nn.Module, alpha: float) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    # --- schedule -----------------------------------------------------------------------------
    def resolve_schedule(self, total_steps: int) -> None:
        """Turn start/stop into steps; refuse, before training, a run too short to reach the stop."""
        what = type(self).__name__
        start_key, stop_key = (self.key(name) for name in self.setting_names)
        schedule_key = self.key("schedule")
        if self.schedule == "relative":
            if not 0 <= self.start_setting < self.stop_setting <= 1:
                raise ConfigError(f"{what}: with {schedule_key}=relative, {start_key} < {stop_key} must be fractions "
                                  f"in [0, 1]; got {self.start_setting} and {self.stop_setting}")
            self.start = int(self.start_setting * total_steps)
            self.stop = max(self.start + 1, int(self.stop_setting * total_steps))
        else:
            self.start, self.stop = int(self.start_setting), int(self.stop_setting)
        if self.stop <= self.start:
            raise ConfigError(f"{what}: {stop_key}={self.stop} must come after {start_key}={self.start}")
        if total_steps < self.stop:
            raise ConfigError(
                f"this run has {total_steps} optimizer steps but {what} works from step {self.start} to "
                f"{self.stop} ({start_key}={self.start_setting}, {stop_key}={self.stop_setting}): the model would "
                f"end {'dense' if total_steps <= self.start else 'half-compressed'}, far bigger than intended. "
                f"Either train longer (trainer.max_steps={self.stop} or more), or set {schedule_key}=relative and "
                f"give {start_key} / {stop_key} as fractions of the run (e.g. 0.2 and 0.8)."
            )

    def check(self, pl_module: pl.LightningModule, total_steps: int) -> None:
        """Before the run exists: refuse a schedule the run cannot finish, and patterns or ratios
        that name nothing in the model (computing the dense masks does that)."""
        self.resolve_schedule(total_steps)
        self.compute_masks(pl_module.model, 1.0)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.resolve_schedule(int(trainer.estimated_stepping_batches))

    # --- masks ----------------------------------------------------------------------------------
    def update_masks(self, step: int, model: nn.Module) -> bool:
        """Recompute the masks if `step` is an update step; True when they changed."""
        due = step == self.stop or (self.start <= step < self.stop and (step - self.start) % self.interval == 0)
        if not due or step == self.last_update:
            return False
        self.masks = self.compute_masks(model, schedule_alpha(step, self.start, self.stop, self.exponent))
        self.last_update = step
        return True

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
        enforce = self.masks and (not self.regrow or self.last_update >= self.stop)
        if changed or enforce:
            self.apply_masks(model)
        if self.masks:
            pl_module.log("compression/density", self.masked_density())

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The masks are multiplied into the weights, so the pruning is permanent in what is saved."""
        if not self.masks:
            return
        self.apply_masks(pl_module.model)
        if trainer.logger is not None:
            per_tensor = {f"compression/density/{name}": float(mask.float().mean()) for name, mask in self.masks.items()}
            trainer.logger.log_metrics(per_tensor, step=trainer.global_step)

    def state_dict(self) -> dict:
        return {"masks": {name: mask.clone() for name, mask in self.masks.items()}, "last_update": self.last_update}

    def load_state_dict(self, state_dict: dict) -> None:
        self.masks = {name: mask.bool() for name, mask in state_dict["masks"].items()}
        self.last_update = int(state_dict["last_update"])
