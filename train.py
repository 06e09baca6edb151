"""Entry point: `python train.py +experiment=NAME [overrides]` (add -m for a sweep)."""

import sys

import hydra
from omegaconf import DictConfig

from speechcompress.config import ConfigError, register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    from speechcompress.train import run  # imported late so `--help` and config errors stay fast

    try:
        metrics = run(cfg)
    except ConfigError as error:  # a setting that cannot work: say which and how to fix it, no traceback
        print(f"\nerror: {error}", file=sys.stderr)
        sys.exit(2)
    # what a sweeper maximises: PESQ for denoisers, frame F1 for VADs
    return metrics.get("test/pesq", metrics.get("test/f1", float("nan")))


if __name__ == "__main__":
    main()
