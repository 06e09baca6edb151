"""The GPU check: what a GPU buys this project's recipes, in one table (run by gpu_check.sh).

1. `frcrn` at its published size (12.8 M parameters), trained in fp32 and in `16-mixed`: optimizer
   steps per second and seconds of training audio per second (`train/*` of each run, the
   Throughput callback's: data loading included, validation and the first window left out).
2. `frcrn_small`, 200 steps with two validations: the run's wall time, end to end.
3. `frcrn_small` with DDP on every visible GPU (`trainer=ddp`).
4. FRCRN (published size) inference: real-time factor of `enhance`'s windows, fp32 against fp16
   autocast with 8 windows per pass.
5. `rnnoise_xiph48k`'s front-end (xiph's analysis and synthesis, numpy, in the training process)
   against its network's training step on the device: seconds of audio per second each. Where
   the front-end's figure is the smaller, it bounds a GPU run.

Each training check is a real `train.py` run on a small corpus (espeak-ng voices: the machine needs
no corpus fetched), export off, into OUT/ (its own MLflow store, OUT/mlflow.db). `--tiny` runs every
check on the CPU with tiny models and a few steps (DDP as two CPU processes): what the test suite
runs, so the script is known to work before a GPU is at hand.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

CORPUS = [  # a small corpus, built in about a minute, the same for every run (so built once)
    "data.train.utterances=120", "data.train.noise_clips_per_family=2", "data.train.babble_talkers=8",
    "data.train.rooms=6", "data.val.utterances=8", "data.val.noise_clips_per_family=1", "data.val.babble_talkers=4",
    "data.val.rooms=2", "data.test.utterances=8", "data.test.noise_clips_per_family=1",
    "data.test.babble_talkers=4", "data.test.rooms=2", "data.test_unseen=null", "data.test_real=null",
    "data.train.real_share=0",
]
QUIET = ["export=none", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
         "measure.latency_seconds=1", "measure.latency_repeats=1", "measure.memory_seconds=2",
         "logger.system_metrics_seconds=null", "trainer.log_every_n_steps=10"]
TINY_FRCRN = ["model.channels=4", "model.encoder_kernels=[[5,2],[5,2],[5,2]]", "model.fsmn_order=3",
              "model.fsmn_hidden=8", "model.se_reduction=2", "data.batch_size=4", "data.train.segment_seconds=1.0"]


def training_checks(tiny: bool) -> list[tuple[str, list[str]]]:
    """(title, train.py overrides) of checks 1 to 3."""
    on_gpu = ["trainer=gpu"]
    if tiny:
        frcrn = ["+experiment=frcrn", *TINY_FRCRN, "trainer.accelerator=cpu", "trainer.max_steps=30",
                 "trainer.val_check_interval=30", "data.num_workers=0"]
        small = ["+experiment=frcrn_small", *TINY_FRCRN, "trainer.accelerator=cpu"]
        return [("frcrn fp32", [*frcrn, "trainer.precision=32-true"]),
                ("frcrn 16-mixed", [*frcrn, "trainer.precision=bf16-mixed"]),  # the CPU has no fp16 autocast
                ("frcrn_small 200 steps", [*small, "trainer.max_steps=20", "trainer.val_check_interval=10"]),
                ("frcrn_small DDP", [*small, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                                     "trainer.max_steps=20", "trainer.val_check_interval=20"])]
    frcrn = ["+experiment=frcrn", "trainer.max_steps=120", "trainer.val_check_interval=120"]
    return [("frcrn fp32", [*frcrn, "trainer.precision=32-true"]),
            ("frcrn 16-mixed", [*frcrn, "trainer.precision=16-mixed"]),
            ("frcrn_small 200 steps", ["+experiment=frcrn_small", *on_gpu, "trainer.max_steps=200",
                                       "trainer.val_check_interval=100"]),
            ("frcrn_small DDP", ["+experiment=frcrn_small", "trainer=ddp", "trainer.max_steps=200",
                                 "trainer.val_check_interval=100"])]


def train(title: str, overrides: list[str], out: Path, timeout: float) -> dict[str, float]:
    """One `train.py` run; its wall time and the training speed it logged."""
    from mlflow.tracking import MlflowClient

    run_name = "gpu-check-" + title.replace(" ", "-")
    store = f"sqlite:///{out / 'mlflow.db'}"
    command = [sys.executable, str(ROOT / "train.py"), *overrides, *CORPUS, *QUIET, f"paths.experiments_dir={out}",
               f"logger.tracking_uri={store}", f"logger.run_name={run_name}", f"run_name={run_name}"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - start
    (out / f"{run_name}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"{title}: train.py failed (exit {done.returncode}); its output: {out / run_name}.log\n"
                           + "\n".join((done.stdout + done.stderr).splitlines()[-15:]))
    (run,) = MlflowClient(store).search_runs([e.experiment_id for e in MlflowClient(store).search_experiments()],
                                              filter_string=f"tags.mlflow.runName = '{run_name}'")
    metrics = run.data.metrics
    return {"wall seconds": seconds, "steps/s": metrics.get("train/steps_per_second", float("nan")),
            "audio s/s": metrics.get("train/audio_seconds_per_second", float("nan"))}


def frcrn_inference(tiny: bool, device: torch.device) -> dict[str, float]:
    """Check 4: real-time factor of FRCRN in `enhance`'s windows, fp32 and fp16 (8 windows a pass)."""
    from speechcompress.inference import Windows, enhance_batch
    from speechcompress.models.frcrn import FRCRN

    model = FRCRN(channels=4, encoder_kernels=[[5, 2]] * 3, fsmn_order=3, fsmn_hidden=8) if tiny else FRCRN()
    model = model.to(device).eval()
    seconds = 4.0 if tiny else 120.0
    noisy = torch.randn(1, int(seconds * model.sample_rate)) * 0.1
    figures = {}
    for label, windows in (("fp32", Windows(batch=8, fp16=False)), ("fp16, 8 windows a pass", Windows(batch=8))):
        enhance_batch(model, noisy[:, : model.sample_rate * 2], windows)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        enhance_batch(model, noisy, windows)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        figures[f"RTF {label}"] = (time.perf_counter() - start) / seconds
    return figures


def xiph_front_end(tiny: bool, device: torch.device) -> dict[str, float]:
    """Check 5: seconds of audio per second through xiph's front-end (numpy, one process) and
    through rnnoise_xiph's network, a training step (forward, backward) on the device."""
    from speechcompress.features import xiph48k
    from speechcompress.models.rnnoise_xiph import XiphRNNoise, highpass

    model = XiphRNNoise(cond_size=32, gru_size=48) if tiny else XiphRNNoise()
    seconds = 2.0 if tiny else 10.0
    wave = np.random.default_rng(0).standard_normal(int(seconds * xiph48k.SAMPLE_RATE)) * 3000.0
    start = time.perf_counter()
    analysis = xiph48k.analyse(highpass(wave))
    model._synthesise(analysis, torch.rand(analysis.features.shape[0], xiph48k.N_BANDS))
    front = seconds / (time.perf_counter() - start)
    model = model.to(device).train()
    batch, frames = (8, 200) if tiny else (128, 400)  # xiph's batch of 4 s sequences
    features = torch.randn(batch, frames, model.n_features, device=device)
    optimizer = torch.optim.AdamW(model.parameters())
    timings = []
    for _ in range(4):
        start = time.perf_counter()
        gains, vad, _ = model._network(features, fresh=True)
        (gains.mean() + vad.mean()).backward()
        optimizer.step()
        optimizer.zero_grad()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        timings.append(time.perf_counter() - start)
    network = batch * frames * xiph48k.FRAME_SIZE / xiph48k.SAMPLE_RATE / float(np.median(timings[1:]))
    return {"front-end audio s/s": front, "network audio s/s": network}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="every check on the CPU, tiny models, a few steps")
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "gpu_check")
    parser.add_argument("--timeout", type=float, default=420.0, help="seconds each training run may take")
    args = parser.parse_args()
    device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    if not args.tiny and device.type != "cuda":
        print("no CUDA device: run with --tiny for the CPU version", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    where = "CPU, tiny sizes" if args.tiny else f"{torch.cuda.device_count()} × {torch.cuda.get_device_name(0)}"
    rows = []
    for title, overrides in training_checks(args.tiny):
        figures = train(title, overrides, args.out, args.timeout)
        rows += [(title, name, value) for name, value in figures.items()]
        print(f"{title}: " + ", ".join(f"{name} {value:.3g}" for name, value in figures.items()), flush=True)
    rows += [("FRCRN inference", name, value) for name, value in frcrn_inference(args.tiny, device).items()]
    rows += [("rnnoise_xiph48k", name, value) for name, value in xiph_front_end(args.tiny, device).items()]
    table = [f"GPU check on {where} (torch {torch.__version__})", "", "| check | figure | value |", "|---|---|---|",
             *(f"| {title} | {name} | {value:.4g} |" for title, name, value in rows)]
    (args.out / "gpu_check.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))
    os.sync()
    return 0


if __name__ == "__main__":
    sys.exit(main())
