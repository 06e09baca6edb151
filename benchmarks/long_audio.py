"""Long audio through a denoiser: windowed against whole-file inference, and peak memory by length.

    .venv/bin/python benchmarks/long_audio.py CHECKPOINT [--minutes 1 5 10] [--seconds 30]

1. A `--seconds` file made of the run's test items back to back (the run's config.yaml, beside
   the checkpoints folder, says which) is enhanced whole and in the checkpoint's windows: PESQ-wb of
   both against the clean speech, and the difference between them in dB of the signal, inside the
   overlaps (the seams) and outside them.
2. Files of each `--minutes` length are enhanced in the windows, each in a fresh process as
   `speechcompress enhance` runs: the peak resident-memory growth (MiB) and the real-time factor.
The figures are printed, and logged to the checkpoint's MLflow run when it has one
(`bench/pesq_whole`, `bench/pesq_windowed`, `bench/seam_db`, `bench/away_db`, `bench/peak_mb_{N}min`).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from speechcompress.evaluation.measure import peak_memory
from speechcompress.evaluation.speech_quality import pesq_wb
from speechcompress.inference import enhance_batch, enhance_waveform, window_starts
from speechcompress.run_layout import RunFolder
from speechcompress.tasks.denoise import load_denoiser
from speechcompress.tracking.mlflow import log_to_checkpoint_run


def test_audio(checkpoint: Path, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, clean) of at least `seconds`: the run's test items back to back, repeated as needed."""
    cfg = OmegaConf.load(RunFolder.of_checkpoint(checkpoint.resolve()).config)
    dataset = instantiate(cfg.data.test)(sample_rate=cfg.model.sample_rate)
    noisy, clean, total, index = [], [], 0, 0
    while total < seconds * cfg.model.sample_rate:
        item = dataset[index % len(dataset)]
        noisy.append(item["noisy"].numpy())
        clean.append(item["clean"].numpy())
        total += len(noisy[-1])
        index += 1
    return np.concatenate(noisy).astype(np.float32), np.concatenate(clean).astype(np.float32)


def db(error: np.ndarray, signal: np.ndarray) -> float:
    return 20 * math.log10(np.linalg.norm(error) / max(np.linalg.norm(signal), 1e-12))


def compare(checkpoint: Path, seconds: float) -> dict[str, float]:
    task = load_denoiser(checkpoint)
    rate = task.sample_rate
    noisy, clean = test_audio(checkpoint, seconds)
    noisy, clean = noisy[: int(seconds * rate)], clean[: int(seconds * rate)]
    with torch.inference_mode():
        whole = task.model(torch.from_numpy(noisy)[None]).enhanced[0].numpy()
    windowed = enhance_batch(task.model, torch.from_numpy(noisy)[None], task.windows)[0].numpy()
    window, overlap = task.windows.samples(rate)
    seams = np.zeros(len(noisy), bool)
    for start in window_starts(len(noisy), window, overlap)[1:]:
        seams[start : start + overlap] = True
    return {
        "bench/pesq_noisy": pesq_wb(clean, noisy, rate),
        "bench/pesq_whole": pesq_wb(clean, whole, rate),
        "bench/pesq_windowed": pesq_wb(clean, windowed, rate),
        "bench/seam_db": db(windowed[seams] - whole[seams], whole[seams]),
        "bench/away_db": db(windowed[~seams] - whole[~seams], whole[~seams]),
    }


def memory(checkpoint: Path, seconds: float) -> dict[str, float]:
    """Run in a fresh process: enhance `seconds` of test audio as `enhance` does."""
    task = load_denoiser(checkpoint)
    noisy, _ = test_audio(checkpoint, seconds)
    noisy = noisy[: int(seconds * task.sample_rate)]
    start = time.perf_counter()
    with peak_memory(torch.device("cpu")) as peak:
        enhance_waveform(task.model, noisy, task.sample_rate, task.windows)
    return {**peak, "rtf": (time.perf_counter() - start) / seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the windowed-vs-whole file")
    parser.add_argument("--minutes", type=float, nargs="*", default=[1, 5, 10], help="lengths for peak memory")
    parser.add_argument("--memory-only", type=float, help=argparse.SUPPRESS)  # the fresh-process half
    args = parser.parse_args()
    if args.memory_only:
        print(json.dumps(memory(args.checkpoint, args.memory_only)))
        return 0
    figures = compare(args.checkpoint, args.seconds)
    task = load_denoiser(args.checkpoint)
    windows = task.windows
    print(f"{args.seconds:g} s of test audio, windows of {windows.window_seconds:g} s overlapping by "
          f"{windows.overlap_seconds:g} s:")
    print(f"  PESQ-wb  noisy {figures['bench/pesq_noisy']:.3f}  whole-file {figures['bench/pesq_whole']:.3f}  "
          f"windowed {figures['bench/pesq_windowed']:.3f}")
    print(f"  windowed − whole-file: {figures['bench/seam_db']:.1f} dB of the signal in the overlaps, "
          f"{figures['bench/away_db']:.1f} dB outside them")
    for minutes in args.minutes:
        out = subprocess.run([sys.executable, __file__, str(args.checkpoint), "--memory-only", str(60 * minutes)],
                             capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        figures[f"bench/peak_mb_{minutes:g}min"] = result["memory/peak_mb"]
        print(f"  {minutes:g} min: peak memory +{result['memory/peak_mb']:.0f} MiB (of which the output array "
              f"{60 * minutes * task.sample_rate * 4 / 2**20:.0f} MiB), real-time factor {result['rtf']:.3f}")
    log_to_checkpoint_run(args.checkpoint, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
