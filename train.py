"""Entry point: `python train.py +experiment=NAME [overrides]` (add -m for a sweep)."""

import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from speechcompress.config import ConfigError, register_resolvers

register_resolvers()


def discard_job_folder(experiments_dir: str) -> None:
    """Remove the folder Hydra made for this job, if it holds nothing but Hydra's own files, and the
    folders above it that are left empty: a refused command leaves nothing behind."""
    folder = Path(HydraConfig.get().runtime.output_dir)
    if not folder.is_dir() or any(p.name != ".hydra" and p.suffix != ".log" for p in folder.iterdir()):
        return
    shutil.rmtree(folder)
    top = Path(experiments_dir).resolve()
    for parent in folder.resolve().parents:
        if parent == top or top not in parent.parents or any(parent.iterdir()):
            break
        parent.rmdir()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    from speechcompress.train import run  # imported late so `--help` and config errors stay fast

    try:
        metrics = run(cfg)
    except ConfigError as error:  # a setting that cannot work: say which and how to fix it, no traceback
        discard_job_folder(cfg.paths.experiments_dir)
        print(f"\nerror: {error}", file=sys.stderr)
        sys.exit(2)
    # what a sweeper maximises: PESQ for denoisers, frame F1 for VADs
    return metrics.get("test/pesq", metrics.get("test/f1", float("nan")))


if __name__ == "__main__":
    main()
