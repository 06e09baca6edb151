"""Where a run keeps its files, in one place: the runner writes them, the CLI finds them beside a
checkpoint (RUN/checkpoints/x.ckpt → RUN)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LAST_CHECKPOINT = "last.ckpt"  # written at every validation, at the end of fitting and on SIGTERM


@dataclass(frozen=True)
class RunFolder:
    root: Path

    @classmethod
    def of_checkpoint(cls, checkpoint: str | Path) -> RunFolder:
        """The run folder that holds `checkpoint` in its checkpoints/ folder."""
        return cls(Path(checkpoint).parent.parent)

    @property
    def config(self) -> Path:
        """The run's resolved config (written before training, so tools find it beside any checkpoint)."""
        return self.root / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / LAST_CHECKPOINT

    @property
    def export(self) -> Path:
        return self.root / "export"

    @property
    def examples(self) -> Path:
        return self.root / "examples"

    @property
    def size_table(self) -> Path:
        return self.root / "size_per_tensor.csv"

    @property
    def mlflow_model(self) -> Path:
        """The run's MLflow Model (logged as its `model` artifact)."""
        return self.root / "mlflow_model"

    @property
    def outbox(self) -> Path:
        """What the run has not yet delivered to its MLflow server (`speechcompress sync` sends it)."""
        return self.root / "mlflow_outbox.jsonl"

    @property
    def corpus_report(self) -> Path:
        """The real corpus's report (`logger.corpus_report`: `speechcompress corpus report` for the run)."""
        return self.root / "corpus_report"

    @property
    def sensitivity(self) -> Path:
        return self.root / "sensitivity"

    def run_config(self, path: str | Path | None = None):
        """The run's config (or the config.yaml at `path`), loaded; a clear error when it is not there."""
        from omegaconf import OmegaConf

        path = Path(path) if path else self.config
        if not path.is_file():
            raise FileNotFoundError(f"no run config at {path}: pass --config with the config.yaml of the run "
                                    f"whose checkpoints are in {self.checkpoints}")
        return OmegaConf.load(path)
