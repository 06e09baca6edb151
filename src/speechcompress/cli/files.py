"""What the commands that read audio files share: the inputs of a file or folder, a loop that
survives a bad file, the inference-window options, and opening a checkpoint or an exported file."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from speechcompress.data.audio import NonFiniteAudioWarning, list_audio


def inputs(source: Path) -> list[tuple[Path, Path]]:
    """(file, its path relative to the output folder) for one audio file or every one under a folder."""
    if source.is_dir():
        return [(path, path.relative_to(source)) for path in list_audio(source)]
    if source.is_file():
        return [(source, Path(source.name))]
    raise FileNotFoundError(f"input {source} is neither an audio file nor a folder")


def each_file(files: list[tuple[Path, Path]], work: Callable[[Path, Path], None], desc: str) -> int:
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


def window_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--window", type=float, help="seconds per inference window (default: the run's task.inference)")
    p.add_argument("--overlap", type=float, help="seconds of cross-faded overlap between windows")
    p.add_argument("--batch-windows", type=int, help="windows per forward pass on CUDA (the CPU takes one at a time)")


def windows(task, args: argparse.Namespace):
    """The checkpoint's inference windows with the command line's changes."""
    changes = {key: value for key, value in (("window_seconds", args.window), ("overlap_seconds", args.overlap),
                                             ("batch", args.batch_windows)) if value is not None}
    chosen = dataclasses.replace(task.windows, **changes)
    chosen.samples(task.sample_rate)  # refuses impossible windows before any file is read
    return chosen


TRACKING_HELP = "MLflow tracking URI (default: $MLFLOW_TRACKING_URI or experiments/mlflow.db)"


def model_arguments(p: argparse.ArgumentParser, checkpoint_help: str) -> None:
    """--checkpoint FILE or --model URI (a run's MLflow Model), one of them required."""
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help=checkpoint_help)
    source.add_argument("--model", help="a run's MLflow Model: models:/NAME@champion (the registry), "
                                        "runs:/RUN_ID/model, or a model folder")
    p.add_argument("--tracking-uri", help=TRACKING_HELP + "; where --model's models:/ and runs:/ live")
    p.add_argument("--device", default="cpu", help="for --checkpoint (exported files and MLflow Models run on the CPU)")
    p.add_argument("--compile", action="store_true",
                   help="run a checkpoint's torch model through torch.compile: faster on long files, after a "
                        "compilation of seconds to minutes, printed apart (not for exported files)")


def open_source(args: argparse.Namespace, kind: str):
    """The model of --checkpoint or --model (see `open_model`), compiled with --compile."""
    task = open_model(args.checkpoint, kind, args.device) if args.model is None else open_logged_model(args, kind)
    if getattr(args, "compile", False):
        from speechcompress.export.deployed import Deployed
        from speechcompress.inference import compile_model

        if isinstance(task, Deployed):  # an exported file, which runs in its own runtime
            raise ValueError(f"--compile compiles a checkpoint's torch model; {args.checkpoint or args.model} runs "
                             f"in its own runtime: leave --compile out")
        task.model, seconds = compile_model(task.model, task.sample_rate)
        print(f"compiled the model in {seconds:.1f} s (torch.compile; not counted in the files' times)", file=sys.stderr)
    return task


def open_logged_model(args: argparse.Namespace, kind: str):
    """The task of a run's MLflow Model (--model URI)."""
    import mlflow.pyfunc

    from speechcompress.config import tracking_uri

    mlflow.set_tracking_uri(tracking_uri(args.tracking_uri))  # the registry too: models:/ resolves there
    wrapped = mlflow.pyfunc.load_model(args.model).unwrap_python_model()
    if getattr(wrapped, "kind", None) != kind:
        raise ValueError(f"{args.model} is a {getattr(wrapped, 'kind', 'foreign')} model, but this needs a {kind}: "
                         f"pass a model of a {kind} run")
    return wrapped.task


def open_model(path: str, kind: str, device: str):
    """A checkpoint's task (on `device`), or an exported file with the settings it carries (run on
    the CPU, by the format that reads it): either has `.model`, `.sample_rate` and the task's
    settings (`.windows` for a denoiser, `.segment_config` for a VAD)."""
    from speechcompress.export.registry import load_deployed, reader

    if reader(path) is not None:
        return load_deployed(path, kind)
    if kind == "vad":
        from speechcompress.tasks.vad import load_vad

        return load_vad(path, device)
    from speechcompress.tasks.denoise import load_denoiser

    return load_denoiser(path, device)
