"""FRCRN in INT8: every scheme, its speed at 1 and 2 threads, its quality, and where its time goes.

    .venv/bin/python benchmarks/int8_frcrn.py CHECKPOINT [--threads 1 2] [--seconds 10] [--out DIR]

CHECKPOINT is a trained FRCRN (`+experiment=frcrn_small`). Two models are exported, each as fp32,
dynamic-int8, static-int8 (QDQ of every op inside the network, calibrated by percentile; the signal
path and the first and last layers fp32) and weight-only-int8, exactly as a run's `export` writes them:
- the checkpoint's model, whose files are also scored on the run's test split (PESQ-wb, SI-SDR);
- FRCRN at its published size (12.8 M parameters, conf/model/frcrn.yaml) with random weights:
  speed does not need a trained model, and INT8 pays where the arithmetic is, in the big convs.
Then, in one process: each file's bytes and real-time factor at each thread count; what ONNX
Runtime runs of it (its optimised graph's integer kernels: QLinearConv, ConvInteger, ...); and its
per-op profile (one thread), which says why a scheme is or is not faster. The table is printed,
written to DIR/int8_frcrn.md, and its figures logged to the checkpoint's MLflow run (`bench/int8/*`).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from collections import Counter
from pathlib import Path

import onnx
import onnxruntime as ort
import torch
from hydra.utils import instantiate

from speechcompress.checkpoints import load_task
from speechcompress.config import compose_config
from speechcompress.evaluation.measure import real_time_factor
from speechcompress.export.exporter import ExportContext, write_all
from speechcompress.export.profile import op_profile
from speechcompress.export.registry import exporters, load
from speechcompress.models.frcrn import FRCRN
from speechcompress.run_layout import RunFolder
from speechcompress.tracking.mlflow import log_to_checkpoint_run

SCHEMES = ("fp32", "dynamic-int8", "static-int8", "weight-only-int8")
INTEGER_KERNELS = ("QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "DynamicQuantizeMatMul",
                   "QLinearAdd", "QLinearMul", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearConcat")


def export_schemes(model: torch.nn.Module, folder: Path, settings: dict, training_batches) -> dict[str, Path]:
    """{scheme: file}: the run's default `export` config with each quantization mode."""
    files = {}
    for scheme in SCHEMES[1:]:
        config = compose_config([f"export.quantize={scheme}"]).export
        chosen = [e for e in exporters(config) if e.applies(model)]  # FRCRN's: model.onnx, model_int8.onnx
        written = {w.key: w.path for w in write_all(model, chosen, folder / scheme, ExportContext(settings, training_batches))}
        files.setdefault("fp32", written["onnx"])
        files[scheme] = written["onnx_int8"]
    return files


def integer_kernels(path: Path) -> str:
    """What ONNX Runtime runs of the file in integer arithmetic, from its optimised graph."""
    with tempfile.TemporaryDirectory() as scratch:
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(Path(scratch) / "optimized.onnx")
        options.intra_op_num_threads = 1
        options.log_severity_level = 3  # not its warning that an optimised file is for this machine alone
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        ops = Counter(node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node)
    found = [f"{op} {ops[op]}" for op in INTEGER_KERNELS if ops[op]]
    return ", ".join(found) + f"; fp32 Conv {ops['Conv'] + ops['FusedConv']}, MatMul {ops['MatMul'] + ops['FusedMatMul']}"


def published_model(name: str) -> FRCRN:
    """FRCRN at the size of model config `name`, random weights and BatchNorm statistics away from
    0 and 1 (as a trained model's), in eval mode."""
    model = instantiate(compose_config([f"model={name}"]).model).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for buffer_name, buffer in model.named_buffers():
            if "running_var" in buffer_name:
                buffer.uniform_(0.5, 2.0)
    return model


def table(files: dict[str, dict[str, Path]], task, test_loader, threads: list[int], seconds: float,
          repeats: int) -> tuple[list[str], dict[str, float]]:
    """The table's lines (bytes, RTF per thread count, the test quality of the first model: the
    trained one, what runs in INT8) and its figures for MLflow."""
    lines = ["| model | scheme | bytes | " + " | ".join(f"RTF, {t} thr" for t in threads)
             + " | PESQ-wb | SI-SDR | what runs in INT8 |", "|---" * (6 + len(threads)) + "|"]
    figures: dict[str, float] = {}
    for (name, schemes), scheme in itertools.product(files.items(), SCHEMES):
        path = schemes[scheme]
        rtfs = [real_time_factor(load(path, threads=t), task.sample_rate, seconds, repeats, threads=t)["latency/rtf"]
                for t in threads]
        quality = task.score(load(path, threads=2), test_loader()) if name == next(iter(files)) else {}
        key = f"bench/int8/{name.split()[0]}/{scheme}"
        figures |= {f"{key}/rtf_{t}thr": rtf for t, rtf in zip(threads, rtfs, strict=True)}
        figures |= {f"{key}/{metric}": value for metric, value in quality.items() if metric in ("pesq", "si_sdr")}
        cells = [name, scheme, f"{path.stat().st_size:,}", *(f"{rtf:.4f}" for rtf in rtfs),
                 f"{quality['pesq']:.3f}" if quality else "", f"{quality['si_sdr']:.2f}" if quality else "",
                 integer_kernels(path)]
        lines.append("| " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return lines, figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a trained FRCRN (+experiment=frcrn_small)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of audio per timed pass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("experiments/reports"))
    parser.add_argument("--published", default="frcrn", help="the model config of the published size")
    args = parser.parse_args()

    task = load_task(args.checkpoint)
    data = instantiate(RunFolder.of_checkpoint(args.checkpoint.resolve()).run_config().data)
    out = Path(tempfile.mkdtemp(prefix="int8_frcrn_"))
    # the trained model calibrates on its run's training batches; the published size (random weights:
    # for speed alone) on four half-second items of noise, as its activations take 0.3 GB per second each
    noise = [{"noisy": torch.randn(1, task.sample_rate // 2) * 0.1} for _ in range(4)]
    models = {"frcrn_small (trained)": (task.model, data.train_dataloader),
              f"{args.published} (published size)": (published_model(args.published), lambda: iter(noise))}
    files = {name: export_schemes(model, out / str(i), task.deploy_settings(), batches)
             for i, (name, (model, batches)) in enumerate(models.items())}
    lines, figures = table(files, task, lambda: data.split_loader("test"), args.threads, args.seconds, args.repeats)
    profiles = []
    for (name, schemes), scheme in itertools.product(files.items(), SCHEMES):
        shares = op_profile(schemes[scheme], args.seconds)
        profiles.append(f"- {name}, {scheme}: " + ", ".join(f"{op} {100 * share:.0f} %"
                                                            for op, share in list(shares.items())[:6]))
    report = "\n".join([*lines, "", "Where the time goes (ONNX Runtime's profiler, one thread, share of wall time):",
                        *profiles]) + "\n"
    print("\n" + report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "int8_frcrn.md").write_text(report)
    log_to_checkpoint_run(args.checkpoint, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
