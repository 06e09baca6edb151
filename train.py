"""Entry point: `python train.py +experiment=NAME [overrides]` (add -m for a sweep)."""

import hydra
from omegaconf import DictConfig

from speechcompress.config import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    from speechcompress.train import run  # imported late so `--help` and config errors stay fast

    metrics = run(cfg)
    return metrics.get("test/pesq", float("nan"))


if __name__ == "__main__":
    main()
