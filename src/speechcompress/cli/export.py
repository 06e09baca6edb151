"""write a checkpoint in the files an export config lists (conf/export/NAME.yaml), each checked"""

from __future__ import annotations

import argparse
from pathlib import Path

from speechcompress.run_layout import RunFolder


def add_arguments(p: argparse.ArgumentParser) -> None:
    from speechcompress.export.registry import export_configs

    formats = sorted(name for name in export_configs() if name != "none")
    p.add_argument("--checkpoint", required=True, help="a .ckpt written by train.py")
    p.add_argument("--format", default="onnx", type=lambda name: name.replace("-", "_"),
                   help=f"an export config (conf/export/, the `export=` of a run): {', '.join(formats)}. onnx: "
                        "model.onnx, the INT8 / FP16 copies --quantize asks for and the model's streaming step "
                        "(RNNoise's step.onnx, FSMN-VAD's funasr/); funasr: an FSMN-VAD as the model folder for "
                        "FunASR's ONNX runtime (funasr_onnx.Fsmn_vad: model.onnx, model_quant.onnx with --quantize "
                        "dynamic-int8, config.yaml, am.mvn); rnnoise_c: xiph's RNNoise (model=rnnoise_xiph) as the "
                        "weights file xiph's C librnnoise loads (rnnoise_weights.bin: int8, GRUs block-sparse)")
    p.add_argument("--quantize", choices=["dynamic-int8", "static-int8", "weight-only-int8", "fp16"],
                   help="onnx: also model_int8.onnx (dynamic; static QDQ calibrated on the run's training data; or "
                        "int8 weights with fp32 arithmetic) or model_fp16.onnx, and the step graph's dynamic INT8 "
                        "copy; funasr: model_quant.onnx (dynamic INT8, what FunASR's runtime loads)")
    p.add_argument("--float-copies", action="store_true",
                   help="rnnoise_c: also the float weights, which the library then computes with (about 4x the bytes)")
    p.add_argument("--library", help="rnnoise_c: the librnnoise.so to check parity with (default: "
                                     "$SPEECHCOMPRESS_LIBRNNOISE, else pyrnnoise's)")
    p.add_argument("--out", help="output folder (default: the run's export/ folder)")
    p.add_argument("--config", help="the run's config.yaml, for static-int8's calibration data (default: beside "
                                    "the checkpoints folder)")
    p.add_argument("--calibration-batches", type=int, default=4, help="training batches for static-int8")
    p.add_argument("overrides", nargs="*", help="more settings of the export config, e.g. export.formats.onnx_fp16.enabled=true")


def overrides(args: argparse.Namespace) -> list[str]:
    """The options as overrides of the `export` config group (what `train.py export=...` takes)."""
    chosen = [f"export={args.format}", f"++export.calibration_batches={args.calibration_batches}"]
    if args.quantize == "fp16":
        chosen += ["++export.quantize=null", "++export.fp16=true"]
    else:
        chosen.append(f"++export.quantize={args.quantize or 'null'}")
    if args.float_copies:
        chosen.append("export.formats.rnnoise_c.float_copies=true")
    if args.library:
        chosen.append(f"export.formats.rnnoise_c.library={args.library}")
    return chosen + args.overrides


def run(args: argparse.Namespace) -> int:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from speechcompress.checkpoints import load_task
    from speechcompress.config import compose_config
    from speechcompress.export.exporter import ExportContext, write_all
    from speechcompress.export.quantize import quantized_ops
    from speechcompress.export.registry import exporters_for

    checkpoint = Path(args.checkpoint)
    task = load_task(checkpoint)
    run_folder = RunFolder.of_checkpoint(checkpoint.resolve())
    export = compose_config(overrides(args)).export
    OmegaConf.resolve(export)
    chosen = exporters_for(export, task.model)
    context = ExportContext(task.deploy_settings(),
                            lambda: instantiate(run_folder.run_config(args.config).data).train_dataloader())
    files = write_all(task.model, chosen, Path(args.out) if args.out else run_folder.export, context)
    print(f"{'file':<48}{'bytes':>12}  quantized nodes (of all with weights); parity")
    for file in files:
        ops = ", ".join(f"{op} {q}/{n}" for op, (q, n) in quantized_ops(file.path).items()) if file.path.suffix == ".onnx" else ""
        figures = ", ".join(f"{name} {value:.3g}" for name, value in file.figures.items())
        print(f"{str(file.path):<48}{file.path.stat().st_size:>12,}  {ops}{'; ' if ops and figures else ''}{figures}")
    return 0
