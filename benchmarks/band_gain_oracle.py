"""The ceiling of a band-gain denoiser's design: each test split scored with the ideal band gains.

    .venv/bin/python benchmarks/band_gain_oracle.py [--experiment rnnoise] [--splits test_real] [KEY=VALUE ...]

The ideal gain of a band is sqrt(E_clean / E_noisy), at most 1 (the target the RNNoise loss
trains towards), computed from the clean reference and applied through the recipe's own model
(`RNNoise`: its bands, window and overlap-add), so the figures are what that model would score if
its network were perfect. PESQ-wb / STOI / SI-SDR of the noisy input and of the oracle, each
split's mean over its items, go to stdout. A trained model far below its oracle is limited by
what it learnt, not by the design.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from speechcompress.config import compose_config
from speechcompress.evaluation.speech_quality import item_scores
from speechcompress.features.stft import istft, num_frames, stft
from speechcompress.models.rnnoise import RNNoise
from speechcompress.tasks.losses import ideal_band_gains


@torch.no_grad()
def oracle(model: RNNoise, noisy: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """[T] noisy and clean waveforms -> the noisy one through `model`'s ideal band gains, [T]."""
    length = noisy.shape[-1]
    noisy_spec, clean_spec = (stft(F.pad(wave[None].float(), (0, model.hop)), model.hop, model.window)
                              for wave in (noisy, clean))
    gains = ideal_band_gains(model.band_energy(clean_spec), model.band_energy(noisy_spec))
    frames = num_frames(length, model.hop)
    return istft(model.apply_gains(noisy_spec[:, :frames], gains[:, :frames]), model.hop, model.window, length)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default="rnnoise")
    parser.add_argument("--splits", nargs="+", default=["test_real"])
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()

    cfg = compose_config([f"+experiment={args.experiment}", *args.overrides])
    model = instantiate(cfg.model)
    if not isinstance(model, RNNoise):
        raise SystemExit(f"{args.experiment}'s model is {type(model).__name__}; the oracle applies RNNoise's band gains")
    data = instantiate(cfg.data)
    data.setup("test")
    print(f"{'split':12s} {'items':>5s}  {'noisy PESQ-wb / STOI / SI-SDR':>30s}  {'oracle PESQ-wb / STOI / SI-SDR':>31s}")
    for split in args.splits:
        dataset = data.split_loader(split).dataset
        rows = []
        for index in range(len(dataset)):
            item = dataset[index]
            if not item["vad"].any():  # noise alone: nothing for PESQ to score
                continue
            clean = item["clean"].numpy()
            rows.append(item_scores(clean, item["noisy"].numpy(), model.sample_rate)
                        + item_scores(clean, oracle(model, item["noisy"], item["clean"]).numpy(), model.sample_rate))
        means = np.nanmean(np.array(rows), axis=0)
        print(f"{split:12s} {len(rows):5d}  {means[0]:12.3f} / {means[1]:.3f} / {means[2]:5.2f}  "
              f"{means[3]:13.3f} / {means[4]:.3f} / {means[5]:5.2f}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
