"""Checkpoint files: written atomically, read without running anything a stranger put in them.

This is the one place that turns a file into a task (the CLI, distillation teachers, resumed runs
and shrinking all come through here):
- `torch.load(weights_only=True)` unpickles tensors and plain containers only, never objects;
- the classes a checkpoint names (its task, and the `_target_` of its model and loss) are built only
  when they are defined in speechcompress itself: a task in `speechcompress.tasks`, a model in
  `speechcompress.models`, a loss in `speechcompress.tasks.losses`. Anything else is refused.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import get_class
from pytorch_lightning.plugins.io import TorchCheckpointIO

from speechcompress.atomic_files import atomic_path

TASK_CLASS_KEY = "speechcompress_task_class"
_BEFORE_THE_KEY = "speechcompress.tasks.denoise.DenoiseTask"  # checkpoints written before it existed
# where a class named in a checkpoint may come from, by role
_TASK_MODULES = ("speechcompress.tasks.",)
_TARGET_MODULES = ("speechcompress.models.", "speechcompress.tasks.losses")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, through a temporary file renamed into place: a killed run keeps its last good file."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        with atomic_path(path) as partial:
            super().save_checkpoint(checkpoint, partial, storage_options)


def _allowed_class(name: object, modules: tuple[str, ...], path: Path) -> type:
    """The class `name` if it is defined in one of `modules`; ValueError otherwise (nothing else is imported)."""
    if not isinstance(name, str) or not name.startswith(modules):
        raise ValueError(f"{path} names {name!r}, which is not a speechcompress class ({' or '.join(modules)}); "
                         f"refused: only checkpoints written by speechcompress can be loaded")
    try:
        found = get_class(name)
    except Exception as error:  # hydra wraps import and attribute errors alike
        raise ValueError(f"{path} names {name!r}, which does not exist in this version of speechcompress") from error
    if not found.__module__.startswith(modules):  # e.g. torch's nn.Module reached through one of our modules
        raise ValueError(f"{path} names {name!r}, defined in {found.__module__}, outside speechcompress; refused")
    return found


def _check_targets(node: Any, path: Path) -> None:
    if isinstance(node, dict):
        if "_target_" in node:
            _allowed_class(node["_target_"], _TARGET_MODULES, path)
        for value in node.values():
            _check_targets(value, path)
    elif isinstance(node, list | tuple):
        for value in node:
            _check_targets(value, path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's dict, read with `weights_only=True`, every `_target_` in its hyperparameters checked."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(f"{path} holds Python objects, not just tensors and plain data, so it was not loaded "
                         f"(it could run code): {str(error).splitlines()[0]}") from error
    except Exception as error:  # truncated zip, not a torch file at all, ...
        raise ValueError(f"{path} is not a readable checkpoint: {error}") from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"{path} is not a speechcompress checkpoint (no state_dict)")
    _check_targets(checkpoint.get("hyper_parameters", {}), path)
    return checkpoint


def load_task(checkpoint: str | Path, device: str = "cpu", expected: type[pl.LightningModule] = pl.LightningModule):
    """The task (model, loss, settings) of a speechcompress checkpoint, in eval mode on `device`."""
    path = Path(checkpoint)
    saved = read_checkpoint(path)
    task_class = _allowed_class(saved.get(TASK_CLASS_KEY, _BEFORE_THE_KEY), _TASK_MODULES, path)
    # the Lightning modules of speechcompress.tasks are its tasks (checked without importing them,
    # which import this module)
    if not issubclass(task_class, pl.LightningModule):
        raise ValueError(f"{path} names {task_class.__name__}, which is not a speechcompress task; refused")
    if not issubclass(task_class, expected):
        raise ValueError(f"{path} holds a {task_class.__name__}, but this needs a {expected.__name__}: "
                         f"pass a checkpoint of the other kind of run")
    try:
        task = task_class(**saved["hyper_parameters"])
        task.load_state_dict(saved["state_dict"])
    except (KeyError, TypeError, RuntimeError) as error:
        raise ValueError(f"{path} is not a speechcompress {task_class.__name__} checkpoint: {error}") from error
    return task.to(device).eval()


def save_task(task: pl.LightningModule, path: str | Path) -> Path:
    """A checkpoint of `task`'s weights and settings that `load_task` (and `Trainer.test`) read back."""
    checkpoint = {
        "state_dict": task.state_dict(),
        "hyper_parameters": dict(task.hparams),
        TASK_CLASS_KEY: f"{type(task).__module__}.{type(task).__qualname__}",
        "pytorch-lightning_version": pl.__version__,
    }
    with atomic_path(path) as partial:
        torch.save(checkpoint, partial)
    return Path(path)
