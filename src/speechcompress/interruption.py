"""Pre-emption: a run told to stop saves where it is, exits cleanly, and continues when started again.

SLURM sends SIGUSR1 some time before a job's time limit (submitit's `signal_delay_s`) and SIGTERM
when it pre-empts a job; a user's `kill` sends SIGTERM. `SaveOnSignal` notes the signal, and at the
end of the training batch in progress (where model, optimizer, masks and schedules are whole)
writes the run's checkpoints/last.ckpt and stops training. `train.run` then exits with status
128 + the signal's number, without testing. `resume=auto` (the default) continues from that
checkpoint in the same run folder and the same MLflow run.

`BestAndLastCheckpoint` keeps the other copy of that file current: it is rewritten at every
validation and at the end of training, so a run killed outright (out of memory, a lost node) loses
at most one validation interval, and a finished run's last.ckpt is its last step.

A job is put back in the queue from here alone, once the checkpoint is written: by submitit's own
SIGUSR1 handler (the `submitit_slurm` launcher: the same job, same config, same folder), or for a
plain `sbatch` job under SLURM by `scontrol requeue`. Lightning's own requeue (its SLURMEnvironment
sets SIGUSR1 and SIGTERM handlers that requeue without our checkpoint) is turned off explicitly:
`slurm_plugins` hands the Trainer its SLURM environment with `auto_requeue=False`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.plugins.environments import SLURMEnvironment
from pytorch_lightning.trainer.states import TrainerFn

from speechcompress.run_layout import LAST_CHECKPOINT

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


def slurm_plugins() -> list[SLURMEnvironment]:
    """The Trainer's cluster environment under SLURM (its ranks, nodes and addresses), with Lightning's
    requeue handlers off: `SaveOnSignal` owns the signals. Nothing outside SLURM."""
    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


class BestAndLastCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint for the best by val/loss, plus checkpoints/last.ckpt written at
    every validation and at the end of fitting. (Lightning 2.6's own `save_last=True` rewrites
    last.ckpt only when a new best is saved: after a validation that did not improve, or steps
    past the last validation, it held an older step, and `resume=auto` went back to it.)"""

    def __init__(self, dirpath: str | Path, **kwargs) -> None:
        super().__init__(dirpath=dirpath, save_last=False, **kwargs)
        self.last_path = Path(dirpath) / LAST_CHECKPOINT
        self._last_step_written: int | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)  # the best first: last.ckpt then records it
        self._write_last(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._write_last(trainer)

    def _write_last(self, trainer: pl.Trainer) -> None:
        if (trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING or trainer.global_step == 0
                or self._last_step_written == trainer.global_step):
            return
        trainer.save_checkpoint(self.last_path)  # every rank takes part; rank zero writes, atomically
        self._last_step_written = trainer.global_step


class SaveOnSignal(pl.Callback):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.received: int | None = None
        self.saved_step: int | None = None
        # the process's own handlers (submitit's, or the defaults), taken before Lightning adds its own
        self._outer = {sig: signal.getsignal(sig) for sig in SIGNALS}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set handlers (a run inside a thread pool keeps the defaults)
        for sig in SIGNALS:  # replaces Lightning's SIGTERM handler, which would only stop at an epoch's end
            signal.signal(sig, self._note)

    def _note(self, signum: int, frame) -> None:
        self.received = signum  # the state is whole only between batches: the batch's end saves it

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        stop = self.received is not None
        if trainer.world_size > 1:  # one signalled rank stops them all, at the same step
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if not stop or self.saved_step is not None:
            return
        self.received = self.received or signal.SIGTERM
        trainer.save_checkpoint(self.path)  # every rank takes part; rank zero writes, atomically
        self.saved_step = trainer.global_step
        trainer.should_stop = True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig, handler in self._outer.items():
                signal.signal(sig, handler)

    def exit_if_interrupted(self) -> None:
        """After `fit`: if a signal stopped it, hand the job back to its scheduler and exit."""
        if self.saved_step is None:
            return
        name = signal.Signals(self.received).name
        print(f"\n[speechcompress] {name}: saved step {self.saved_step} to {self.path}; the same command "
              f"continues it (resume=auto, same run folder and MLflow run)", flush=True)
        outer = self._outer.get(self.received)
        if callable(outer):  # submitit's handler: requeues this job and exits
            outer(self.received, None)
        elif self.received == signal.SIGUSR1 and os.environ.get("SLURM_JOB_ID"):
            _requeue_slurm_job()
        raise SystemExit(128 + self.received)


def _requeue_slurm_job() -> None:
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    job = f"{array}_{task}" if array and task else os.environ["SLURM_JOB_ID"]
    result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    print(f"[speechcompress] scontrol requeue {job}: " + ("done" if result.returncode == 0 else result.stderr.strip()),
          flush=True)
