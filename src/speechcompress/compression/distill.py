"""Teacher-student distillation as a callback: a frozen teacher's outputs on the same batch guide the student.

Classifiers (tasks with `valid_logits`, e.g. VADs), with p_T, q_S the softmax of teacher and
student logits at temperature T:

    L = (1 − α) · CE(y, q_S) + α · T² · KL(p_T ∥ q_S)

(T² keeps the gradient scale of the soft term independent of T; Hinton et al. 2015.)
Denoisers: L = (1 − α) · task loss + α · distance(student.match, teacher.match), distance L1 or
MSE, `match` an output field such as `gains` or `enhanced`.
The task's own loss is the first term: the callback sets `task_loss_weight = 1 − α` (see
tasks.loss_terms) and adds the second. The teacher is a checkpoint path or `mlflow:RUN_ID`, and
must take the same inputs as the student (sample rate, front-end), or it is refused.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from speechcompress.checkpoints import load_task
from speechcompress.compression.callback import CompressionCallback
from speechcompress.config import ConfigError

MLFLOW_PREFIX = "mlflow:"


def distillation_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · KL(p_T ∥ q_S) averaged over rows of [N, classes] logits."""
    log_q = F.log_softmax(student_logits / temperature, dim=-1)
    log_p = F.log_softmax(teacher_logits / temperature, dim=-1)
    return temperature**2 * (log_p.exp() * (log_p - log_q)).sum(-1).mean()


def resolve_teacher(teacher: str, tracking_uri: str | None, cache_dir: Path) -> Path:
    """The local checkpoint of `teacher`: a path, or `mlflow:RUN_ID` (that run's best checkpoint, downloaded once)."""
    if not teacher.startswith(MLFLOW_PREFIX):
        path = Path(teacher)
        if not path.is_file():
            raise ConfigError(f"compression.teacher={teacher}: no such checkpoint; pass a .ckpt path or "
                                    f"{MLFLOW_PREFIX}RUN_ID of a finished run")
        return path
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from speechcompress.config import tracking_uri as resolve_uri

    run_id, uri = teacher[len(MLFLOW_PREFIX):], resolve_uri(tracking_uri)
    client = MlflowClient(uri)
    try:
        logged = [f.path for f in client.list_artifacts(run_id, "checkpoints") if f.path.endswith(".ckpt")]
    except MlflowException as error:
        raise ConfigError(f"compression.teacher={teacher}: no such run in {uri} ({error.message})") from error
    if not logged:
        raise ConfigError(f"compression.teacher={teacher}: the run logged no checkpoint (did it finish?)")
    chosen = sorted(logged, key=lambda p: (not Path(p).name.startswith("best"), p))[0]
    local = cache_dir / run_id / Path(chosen).name
    if not local.is_file():  # downloaded beside the cache and renamed in: a broken download is never trusted
        local.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=local.parent, prefix=".download-") as partial:
            os.replace(client.download_artifacts(run_id, chosen, partial), local)
    return local


def refuse_incompatible(teacher: pl.LightningModule, student: pl.LightningModule, source: str) -> None:
    """Raise ConfigError unless teacher and student are the same kind of task with the same inputs."""
    if type(teacher) is not type(student):
        raise ConfigError(f"teacher {source} is a {type(teacher).__name__}, the student a {type(student).__name__}: "
                         f"distillation needs a teacher trained for the same task")
    theirs, ours = teacher.model.input_config(), student.model.input_config()
    differences = [f"{key} {theirs.get(key)} vs {ours.get(key)}" for key in sorted(theirs.keys() | ours.keys())
                   if theirs.get(key) != ours.get(key)]
    if differences:
        raise ConfigError(f"teacher {source} takes different inputs from the student ({', '.join(differences)}; "
                         f"teacher vs student): give the student the teacher's settings (model.*) or pick a "
                         f"teacher trained on the student's inputs")


class DistillCallback(CompressionCallback):
    def __init__(self, teacher: str, alpha: float = 0.5, temperature: float = 2.0, match: str = "gains",
                 distance: str = "l1", tracking_uri: str | None = None, cache_dir: str = "experiments/teachers",
                 keys: dict[str, str] | None = None) -> None:
        super().__init__(keys)
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"compression.alpha={alpha}: the weight of the teacher's term must be in [0, 1]")
        if temperature <= 0:
            raise ConfigError(f"compression.temperature={temperature}: must be positive")
        if distance not in ("l1", "mse"):
            raise ConfigError(f"compression.distance={distance!r}: use l1 or mse")
        self.source, self.alpha, self.temperature = str(teacher), alpha, temperature
        self.match, self.distance = match, distance
        self.tracking_uri, self.cache_dir = tracking_uri, Path(cache_dir)
        self.task_loss_weight = 1.0 - alpha
        self.teacher: pl.LightningModule | None = None

    def check(self, pl_module: pl.LightningModule, total_steps: int) -> None:
        """Fetch and load the teacher, refusing one that does not fit the student, before the run exists."""
        if self.teacher is not None:
            return
        path = resolve_teacher(self.source, self.tracking_uri, self.cache_dir)
        try:
            teacher = load_task(path)
        except ValueError as error:
            raise ConfigError(f"compression.teacher={self.source}: {error}") from error
        refuse_incompatible(teacher, pl_module, self.source)
        self.teacher = teacher.requires_grad_(False).eval()

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.check(pl_module, int(trainer.max_steps))  # a no-op when train.run already checked

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.teacher.to(pl_module.device)

    def loss_terms(self, task: pl.LightningModule, batch: dict[str, torch.Tensor], output: Any) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            teacher_output = self._teacher_output(batch, output)
        if hasattr(task, "valid_logits"):
            student_logits, teacher_logits = task.valid_logits(batch, output), task.valid_logits(batch, teacher_output)
            term = distillation_kl(student_logits, teacher_logits, self.temperature)
        else:
            student, target = self._matched(output), self._matched(teacher_output)
            term = F.l1_loss(student, target) if self.distance == "l1" else F.mse_loss(student, target)
        return {"distill": self.alpha * term}

    def _teacher_output(self, batch: dict[str, torch.Tensor], output: Any) -> Any:
        """The teacher on the same batch. Its inputs were checked equal to the student's, so features
        the student already computed (VAD fbank) are reused rather than extracted a second time."""
        teacher = self.teacher.model
        if getattr(output, "features", None) is not None and hasattr(teacher, "from_features"):
            return teacher.from_features(output.features)
        return teacher(batch["noisy"])

    def _matched(self, output: Any) -> torch.Tensor:
        if not hasattr(output, self.match):
            fields = [f.name for f in dataclasses.fields(output)] if dataclasses.is_dataclass(output) else []
            raise ConfigError(f"compression.match={self.match!r}: the model's output has no such field; "
                             f"choose one of {fields}")
        return getattr(output, self.match)

    def state_dict(self) -> dict[str, Any]:
        return {"teacher": self.source, "alpha": self.alpha, "temperature": self.temperature}
