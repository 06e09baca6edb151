"""denoise one audio file or a folder of them"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from speechcompress.cli.files import (
    each_file,
    inputs,
    model_arguments,
    open_source,
    window_arguments,
    windows,
)
from speechcompress.data.audio import AUDIO_SUFFIXES, read_audio, write_audio


def add_arguments(p: argparse.ArgumentParser) -> None:
    model_arguments(p, "a .ckpt written by train.py, or a file `export` wrote")
    p.add_argument("input", help="an audio file (any rate, any channels) or a folder of them")
    p.add_argument("output", help="output .wav file, or a folder (mirrors the input folder's layout)")
    p.add_argument("--float", action="store_true", help="write 32-bit float WAV (the samples as computed, "
                                                        "not clipped; default: 16-bit PCM)")
    p.add_argument("--verbose", action="store_true", help="print each file's time, real-time factor and peak memory")
    window_arguments(p)


def run(args: argparse.Namespace) -> int:
    from speechcompress.evaluation.measure import peak_memory
    from speechcompress.inference import enhance_waveform, model_device

    task = open_source(args, "denoiser")
    model, chosen = task.model, windows(task, args)
    source, target = Path(args.input), Path(args.output)
    files = inputs(source)
    if source.is_file() and target.suffix.lower() in AUDIO_SUFFIXES and not target.is_dir():
        destination = {source: target}
    else:  # a folder, mirroring the input's layout
        destination = {path: (target / relative).with_suffix(".wav") for path, relative in files}

    def work(path: Path, relative: Path) -> None:
        wave, rate = read_audio(path)
        start = time.perf_counter()
        with peak_memory(model_device(model)) as memory:
            enhanced = enhance_waveform(model, wave, rate, chosen)
        seconds = time.perf_counter() - start
        write_audio(destination[path], enhanced, rate, args.float)
        if args.verbose:
            print(f"{path}: {len(wave) / max(rate, 1):.1f} s of audio in {seconds:.2f} s (real-time factor "
                  f"{seconds * rate / max(len(wave), 1):.3f}), peak memory {memory['memory/peak_mb']:.0f} MiB "
                  f"(windows of {chosen.window_seconds:g} s, overlap {chosen.overlap_seconds:g} s)", file=sys.stderr)

    return each_file(files, work, f"enhancing {source}")
