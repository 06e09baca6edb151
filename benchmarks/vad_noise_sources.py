"""Where a VAD's false alarms on recorded noise come from: per noise group of the real corpus, the
share of 10 ms frames a checkpoint and silero-vad call speech on noise alone.

    .venv/bin/python benchmarks/vad_noise_sources.py CHECKPOINT [--split test_real] [--clips-per-group 12]
        [KEY=VALUE ...]   (config overrides, as for train.py)

Each group's noise is assembled as the split assembles it (8 s of its files one after another, from
the experiment's own `data.real` settings), `--clips-per-group` times, and heard at -35, -25 and
-15 dBFS RMS: the range of the mixtures' levels. `--split test_real` gives the files training never
heard; `--split train` the files it trained on, so the two tables side by side say whether false
alarms come from a group itself (high on both) or from its held-out files being unlike the
trained ones (low on train, high on test_real); beside each group, how many of its files (and
minutes) the training split has. The table goes to stdout, worst group first.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
import torch

from speechcompress.baselines import silero_vad
from speechcompress.checkpoints import load_task
from speechcompress.config import compose_config
from speechcompress.data.real import load_real_split, read_manifest, split_clips
from speechcompress.inference import speech_probabilities

LEVELS_DB = (-35.0, -25.0, -15.0)
SAMPLE_RATE = 16000  # silero-vad's rate, and the VAD recipes'


def at_level(wave: np.ndarray, level_db: float) -> np.ndarray:
    """`wave` scaled to an RMS of `level_db` dBFS, then down to a peak of 0.99 where that would clip."""
    scaled = wave / (np.sqrt(np.mean(np.square(wave))) + 1e-9) * 10 ** (level_db / 20)
    return (scaled / max(1.0, float(np.abs(scaled).max()) / 0.99)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--split", default="test_real", choices=("test_real", "train"))
    parser.add_argument("--clips-per-group", type=int, default=12)
    parser.add_argument("--experiment", default="fsmn_vad")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()

    data = compose_config([f"+experiment={args.experiment}", *args.overrides]).data
    real = data.real
    split = load_real_split(real.root, args.split, SAMPLE_RATE, data.train.corpus_seed, utterances=4,
                            noise_clips_per_group=args.clips_per_group, held_out_speakers=list(real.held_out_speakers), noise_test_share=real.noise_test_share,
                            min_bandwidth_hz=real.min_bandwidth_hz, min_clean_snr_db=real.min_clean_snr_db)
    clips = read_manifest(real.root)
    trained = split_clips(clips, "train", list(real.held_out_speakers), real.noise_test_share, real.min_bandwidth_hz)[1]
    model = load_task(args.checkpoint).model.eval()
    silero = silero_vad(SAMPLE_RATE)
    called = defaultdict(lambda: np.zeros(3))  # group -> (ours, silero's, frames)
    for wave, group in zip(split.noise, split.noise_kinds, strict=True):
        for level_db in LEVELS_DB:
            heard = at_level(wave, level_db)
            ours, theirs = speech_probabilities(model, heard, SAMPLE_RATE) >= 0.5, silero(heard) >= 0.5
            frames = min(len(ours), len(theirs))
            called[group] += (ours[:frames].sum(), theirs[:frames].sum(), frames)

    print(f"{args.split}: noise alone, share of frames called speech ({args.clips_per_group} x 8 s per group, "
          f"at {', '.join(f'{level:g}' for level in LEVELS_DB)} dBFS)")
    print(f"{'noise group':40s} {'files trained on (min)':>22s} {'checkpoint':>10s} {'silero-vad':>10s}")
    for group in sorted(called, key=lambda g: -called[g][0] / called[g][2]):
        ours, theirs, frames = called[group]
        files = trained.get(group, [])
        heard = f"{len(files)} ({sum(clip.seconds for clip in files) / 60:.1f})"
        print(f"{group:40s} {heard:>22s} {ours / frames:10.3f} {theirs / frames:10.3f}")
    ours, theirs, frames = np.sum(list(called.values()), axis=0)
    print(f"{'all':40s} {'':22s} {ours / frames:10.3f} {theirs / frames:10.3f}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
