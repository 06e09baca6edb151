"""speech segments (NAME.json) and 10 ms speech probabilities (NAME.npy)"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from speechcompress.atomic_files import atomic_path
from speechcompress.cli.files import each_file, inputs, model_arguments, open_source
from speechcompress.data.audio import read_audio


def add_arguments(p: argparse.ArgumentParser) -> None:
    model_arguments(p, "a .ckpt of a VAD run (e.g. +experiment=fsmn_vad), or its .onnx")
    p.add_argument("input", help="an audio file (any rate, any channels) or a folder of them")
    p.add_argument("output", help="output folder (mirrors the input folder's layout)")
    p.add_argument("--threshold", type=float, help="speech probability threshold (default: the run's task.segments)")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from speechcompress.evaluation.vad_segments import FRAME_SECONDS, speech_segments
    from speechcompress.inference import speech_probabilities

    task = open_source(args, "vad")
    config = task.segment_config if args.threshold is None else dataclasses.replace(task.segment_config,
                                                                                     threshold=args.threshold)
    source, target = Path(args.input), Path(args.output)

    def work(path: Path, relative: Path) -> None:
        wave, rate = read_audio(path)
        probabilities = speech_probabilities(task.model, wave, rate)
        segments = speech_segments(probabilities, config)
        stem = target / relative.with_suffix("")
        report = {"file": str(path), "duration": round(len(wave) / rate, 3), "frame_seconds": FRAME_SECONDS,
                  "threshold": config.threshold, "segments": [segment.as_dict() for segment in segments],
                  "speech_seconds": round(sum(s.end - s.start for s in segments), 3)}
        with atomic_path(stem.with_suffix(".npy")) as partial, partial.open("wb") as handle:
            np.save(handle, probabilities.astype(np.float32))
        with atomic_path(stem.with_suffix(".json")) as partial:
            partial.write_text(json.dumps(report, indent=2) + "\n")

    return each_file(inputs(source), work, f"detecting speech in {source}")
