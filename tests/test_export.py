"""Export to ONNX: parity with torch for every family, INT8 files that really hold 8-bit kernels,
exported files in the CLI in place of checkpoints, and the end-of-run measurements in MLflow."""

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile as sf
import torch
from mlflow.tracking import MlflowClient

from speechcompress.cli import main
from speechcompress.config import compose_config
from speechcompress.export.exporter import ExportContext, Written, write_all
from speechcompress.export.onnx import (
    PARITY_TOLERANCE,
    ParityError,
    export_onnx,
    export_stream_onnx,
)
from speechcompress.export.onnx_files import read_metadata
from speechcompress.export.quantize import (
    depthwise_conv_nodes,
    fixed_table_nodes,
    quantize_dynamic_int8,
    quantized_ops,
)
from speechcompress.export.registry import exporters
from speechcompress.export.runtime import OnnxModel
from speechcompress.models.frcrn import FRCRN
from speechcompress.models.fsmn_vad import FSMNVAD
from speechcompress.models.rnnoise import RNNoise
from speechcompress.tracking.summary import deployment_lines, xiph_layout_lines

from .conftest import USES_TINY_FRCRN

FAMILIES = {
    "rnnoise": lambda: RNNoise(cond_size=16, gru_size=24),
    "fsmn_vad": lambda: FSMNVAD(input_affine=24, hidden=32, proj=16, layers=2, output_affine=16),
    "frcrn": lambda: FRCRN(channels=4, encoder_kernels=[[5, 2]] * 3, fsmn_order=3, fsmn_hidden=8, se_reduction=2),
}


def _trained_a_little(model: torch.nn.Module) -> torch.nn.Module:
    """Weights away from their initial values (BatchNorm statistics too), so parity is not checked
    on a special case."""
    torch.manual_seed(0)
    with torch.no_grad():
        for tensor in [*model.parameters(), *(b for name, b in model.named_buffers() if "running_" in name)]:
            tensor.add_(0.05 * torch.randn_like(tensor))
    return model.eval()


def export_files(model: torch.nn.Module, folder: Path, quantize: str | None = "dynamic-int8", fp16: bool = False,
                 calibration: list[np.ndarray] | None = None) -> dict[str, Path]:
    """What the default `export` config writes for `model` with these settings: {key: file}.
    `calibration`: waveforms, the run's training batches for static-int8."""
    export = compose_config([f"export.quantize={quantize or 'null'}", f"export.fp16={fp16}"]).export
    batches = None if calibration is None else (lambda: ({"noisy": torch.from_numpy(w)} for w in calibration))
    chosen = [exporter for exporter in exporters(export) if exporter.applies(model)]
    return {file.key: file.path for file in write_all(model, chosen, folder, ExportContext({}, batches))}


@pytest.mark.parametrize("family", FAMILIES)
def test_export_matches_torch_at_any_batch_and_length(family, tmp_path):
    model = _trained_a_little(FAMILIES[family]())
    exported = export_onnx(model, tmp_path / "model.onnx", {"note": "kept"})
    assert exported.max_abs_difference <= PARITY_TOLERANCE
    meta = read_metadata(exported.path)
    assert meta["family"] == family and meta["sample_rate"] == 16000 and meta["note"] == "kept"
    # a third shape, through the runtime wrapper the CLI uses
    noisy = torch.randn(2, 16000 * 2 + 77) * 0.1
    with torch.no_grad():
        ours, theirs = OnnxModel(exported.path)(noisy), model(noisy)
    if family == "fsmn_vad":
        ours, theirs = ours.speech_probability(), theirs.speech_probability()
    else:
        ours, theirs = ours.enhanced, theirs.enhanced
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max() <= PARITY_TOLERANCE


def test_the_rnnoise_step_graph_streams_like_the_model_and_int8_reaches_its_grus(tmp_path):
    model = _trained_a_little(RNNoise())  # the default sizes: 1.2 M parameters, mostly GRU
    exported = export_stream_onnx(model, tmp_path / "step.onnx")
    assert exported.max_abs_difference <= PARITY_TOLERANCE  # streamed hop by hop against the offline forward
    meta = read_metadata(exported.path)
    assert meta["stream"]["hop"] == 160 and meta["stream"]["latency"] == 320
    # hop for hop against torch's own step, from a fresh stream
    noisy = torch.randn(1, 160 * 12) * 0.1
    state, expected = model.init_state(1), []
    for chunk in noisy.split(160, dim=1):
        out, state = model.step(chunk, state)
        expected.append(out)
    got = OnnxModel(exported.path)(noisy).enhanced
    assert (got[:, : 160 * 10] - torch.cat(expected, dim=1)[:, 320:]).abs().max() <= PARITY_TOLERANCE
    int8 = quantize_dynamic_int8(exported.path, tmp_path / "step_int8.onnx")
    ops = quantized_ops(int8)
    assert ops["MatMul"] == (9, 12)  # conv1, conv2, 3 GRUs × (input, recurrent), gains; not the filterbank, DCT
    assert int8.stat().st_size <= 0.35 * exported.path.stat().st_size


def test_the_profile_splits_a_step_file_time_among_its_ops(tmp_path):
    from speechcompress.export.profile import OUTSIDE, op_profile

    exported = export_stream_onnx(_trained_a_little(FAMILIES["rnnoise"]()), tmp_path / "step.onnx")
    shares = op_profile(exported.path, seconds=0.5)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert {"DFT", "MatMul", OUTSIDE} <= set(shares) and all(share >= 0 for share in shares.values())


def test_a_parity_failure_names_the_difference_and_keeps_no_file(tmp_path):
    # ONNX Runtime's DFT and torch's FFT round differently, which a zero tolerance refuses
    with pytest.raises(ParityError, match=r"differs from torch's by up to \d"):
        export_onnx(_trained_a_little(FAMILIES["rnnoise"]()), tmp_path / "model.onnx", tolerance=0.0)
    assert not list(tmp_path.iterdir())


def test_dynamic_int8_quantizes_every_matmul_of_the_vad_but_not_its_depthwise_memories(tmp_path):
    # FunASR's sizes (394 k parameters): at tiny sizes the graph's own bytes would dominate the file
    files = export_files(_trained_a_little(FSMNVAD()), tmp_path, quantize="dynamic-int8", fp16=True)
    ops = quantized_ops(files["onnx_int8"])
    assert ops["MatMul"][0] == ops["MatMul"][1] > 0 and ops["Conv"] == (0, 4)  # 4 layers, each a depthwise memory
    assert quantized_ops(files["onnx"])["MatMul"][0] == 0
    sizes = {key: path.stat().st_size for key, path in files.items()}
    assert sizes["onnx_int8"] < 0.35 * sizes["onnx"] and sizes["onnx_fp16"] < 0.6 * sizes["onnx"]
    assert read_metadata(files["onnx_int8"])["precision"] == "dynamic-int8"


def test_dynamic_int8_leaves_gru_and_conv_transpose_in_fp32_and_static_reaches_conv_transpose(tmp_path):
    rnnoise = export_files(_trained_a_little(FAMILIES["rnnoise"]()), tmp_path / "rnnoise")
    ops = quantized_ops(rnnoise["onnx_int8"])
    assert ops["GRU"] == (0, 3) and ops["Conv"] == (2, 2)
    assert ops["MatMul"][0] == 1  # the gains head; the filterbank and DCT products stay fp32
    model = _trained_a_little(FAMILIES["frcrn"]())
    files = export_files(model, tmp_path / "dynamic")
    dynamic = quantized_ops(files["onnx_int8"])
    depthwise = len(depthwise_conv_nodes(onnx.load(str(files["onnx"]))))  # the FSMN memories: left fp32
    assert dynamic["ConvTranspose"][0] == 0 and dynamic["Conv"][0] == dynamic["Conv"][1] - depthwise > 0
    assert depthwise > 0
    assert dynamic["MatMul"][0] == dynamic["MatMul"][1] > 0
    calibration = [np.random.default_rng(i).standard_normal((2, 16000)).astype(np.float32) * 0.1 for i in range(2)]
    static = quantized_ops(export_files(model, tmp_path / "static", quantize="static-int8",
                                        calibration=calibration)["onnx_int8"])
    assert static["ConvTranspose"][0] == static["ConvTranspose"][1] > 0
    assert static["Conv"][0] == static["Conv"][1] > 0


def test_static_int8_reaches_what_the_readme_says_for_rnnoise_and_the_vad(tmp_path):
    calibration = [np.random.default_rng(i).standard_normal((2, 16000)).astype(np.float32) * 0.1 for i in range(2)]
    rnnoise = quantized_ops(export_files(_trained_a_little(FAMILIES["rnnoise"]()), tmp_path / "rnnoise",
                                         quantize="static-int8", calibration=calibration)["onnx_int8"])
    assert rnnoise["Conv"] == (2, 2) and rnnoise["GRU"] == (0, 3) and rnnoise["MatMul"][0] == 1  # as dynamic
    vad = _trained_a_little(FAMILIES["fsmn_vad"]())  # calibrated on the fbank of the same waveforms
    ops = quantized_ops(export_files(vad, tmp_path / "vad", quantize="static-int8", calibration=calibration)["onnx_int8"])
    assert ops["MatMul"][0] == ops["MatMul"][1] > 0 and ops["Conv"] == (2, 2)  # the memories too (2 layers)


@pytest.mark.parametrize("family", FAMILIES)
def test_weight_only_int8_reaches_every_learned_weight_and_keeps_fp32_outputs_close(family, tmp_path):
    model = _trained_a_little(FAMILIES[family]())
    with torch.no_grad():  # a pruned channel: weight-only INT8 must keep it exactly zero
        first = next(p for name, p in model.named_parameters() if p.dim() >= 2)
        first[0].zero_()
    files = export_files(model, tmp_path, quantize="weight-only-int8")
    ops = quantized_ops(files["onnx_int8"])
    fp32 = onnx.load(str(files["onnx"]))
    names = {node.name: node.op_type for node in fp32.graph.node}
    tables = Counter(names[name] for name in fixed_table_nodes(fp32))  # RNNoise's filterbank and DCT: fp32
    assert all(quantized == total - tables[op] for op, (quantized, total) in ops.items())
    assert sum(quantized for quantized, _ in ops.values()) > 0
    if family == "rnnoise":  # what no other mode reaches
        assert ops["GRU"] == (3, 3)
    if family == "frcrn":
        assert ops["ConvTranspose"][0] == ops["ConvTranspose"][1] > 0
    proto = onnx.load(str(files["onnx_int8"]))
    codes = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8}
    assert codes and all(np.abs(c).max() <= 127 for c in codes.values())
    # symmetric codes: every zero weight of the fp32 file (the pruned channel) is a zero code
    zeros = sum(int((onnx.numpy_helper.to_array(t) == 0).sum()) for t in fp32.graph.initializer if len(t.dims) >= 2)
    assert sum(int((c == 0).sum()) for c in codes.values()) >= zeros >= first[0].numel()
    assert read_metadata(files["onnx_int8"])["precision"] == "weight-only-int8"
    noisy = torch.randn(2, 16000) * 0.1
    with torch.no_grad():
        fp32, int8 = OnnxModel(files["onnx"])(noisy), OnnxModel(files["onnx_int8"])(noisy)
    field = "logits" if family == "fsmn_vad" else "enhanced"
    reference = getattr(fp32, field)
    # 8-bit weights, fp32 arithmetic: within a few per cent of the fp32 output's range
    assert (getattr(int8, field) - reference).abs().max() <= 0.05 * reference.abs().max()


def test_an_exported_denoiser_runs_in_enhance_like_its_checkpoint(tiny_run, tmp_path):
    cfg, _ = tiny_run
    run = next((Path(cfg.paths.experiments_dir) / "runs" / "rnnoise").glob("*/export")).parent
    t = np.arange(24000) / 16000
    wave = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.random.default_rng(0).standard_normal(len(t))
    sf.write(tmp_path / "in.wav", wave, 16000)
    (checkpoint,) = (run / "checkpoints").glob("best-*.ckpt")
    for name, source in (("torch", checkpoint), ("onnx", run / "export" / "model.onnx")):
        assert main(["enhance", "--checkpoint", str(source), str(tmp_path / "in.wav"), str(tmp_path / f"{name}.wav")]) == 0
    torch_out, onnx_out = (sf.read(tmp_path / f"{name}.wav")[0] for name in ("torch", "onnx"))
    assert np.abs(torch_out).max() > 0.01
    assert np.abs(torch_out - onnx_out).max() <= 2 * 2**-15  # the same signal up to 16-bit rounding


def test_an_exported_vad_runs_in_vad_like_its_checkpoint_and_refuses_a_denoiser(tiny_vad_run, tiny_run, tmp_path,
                                                                                capsys):
    cfg, _, checkpoint = tiny_vad_run
    t = np.arange(32000) / 16000
    sf.write(tmp_path / "in.wav", 0.2 * np.sin(2 * np.pi * 220 * t) * (t > 1), 16000)
    export = checkpoint.parent.parent / "export"
    for name, source in (("torch", checkpoint), ("onnx", export / "model.onnx"), ("int8", export / "model_int8.onnx")):
        assert main(["vad", "--checkpoint", str(source), str(tmp_path / "in.wav"), str(tmp_path / name)]) == 0
    torch_p, onnx_p, int8_p = (np.load(tmp_path / name / "in.npy") for name in ("torch", "onnx", "int8"))
    assert torch_p.shape == onnx_p.shape == int8_p.shape == (200,)
    assert np.abs(torch_p - onnx_p).max() <= PARITY_TOLERANCE
    assert np.abs(torch_p - int8_p).max() < 0.2  # 8-bit weights and activations: close, not equal
    denoiser = next((Path(tiny_run[0].paths.experiments_dir) / "runs" / "rnnoise").glob("*/export/model.onnx"))
    assert main(["vad", "--checkpoint", str(denoiser), str(tmp_path / "in.wav"), str(tmp_path / "x")]) == 2
    assert "holds a denoiser model, but this needs a vad" in capsys.readouterr().err


@pytest.mark.parametrize("fixture", ["tiny_run", "tiny_vad_run", pytest.param("tiny_frcrn_run", marks=USES_TINY_FRCRN)])
def test_a_run_logs_its_exported_files_as_deployed(fixture, request):
    cfg, metrics = request.getfixturevalue(fixture)[:2]
    headline = "f1" if fixture == "tiny_vad_run" else "pesq"
    if fixture != "tiny_frcrn_run":  # a 4-channel FRCRN is nearly all STFT tables and graph, which stay as they are
        assert 0 < metrics["size/bytes_onnx_int8"] < metrics["size/bytes_onnx"]
    assert metrics["latency/rtf_onnx"] > 0 and metrics["latency/rtf_onnx_int8"] > 0
    # the fp32 file computes what torch does (its parity is logged), so only the lossy INT8 file is scored
    assert metrics["deploy/onnx/max_abs_difference"] <= PARITY_TOLERANCE and f"deploy/onnx/{headline}" not in metrics
    assert abs(metrics[f"deploy/onnx_int8/{headline}"] - metrics[f"test/{headline}"]) < 0.5
    client = MlflowClient(cfg.logger.tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name(cfg.logger.experiment_name).experiment_id])
    assert run.data.metrics["size/bytes_onnx"] == metrics["size/bytes_onnx"]
    files = {"model.onnx", "model_int8.onnx"}
    if fixture != "tiny_frcrn_run":  # the streaming step graph is exported and measured too
        files |= {"step.onnx", "step_int8.onnx"} if fixture == "tiny_run" else {"funasr"}
        assert metrics["deploy/onnx_stream/max_abs_difference"] <= PARITY_TOLERANCE
        assert f"deploy/onnx_stream/{headline}" not in metrics and f"deploy/onnx_stream_int8/{headline}" in metrics
        assert metrics["latency/rtf_onnx_stream_int8"] > 0 and metrics["size/bytes_onnx_stream_int8"] > 0
    assert {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "export")} == files
    if fixture == "tiny_vad_run":  # FunASR's folder, whole
        assert {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "export/funasr")} == {
            "model.onnx", "model_quant.onnx", "config.yaml", "am.mvn"}


def test_the_summary_shows_xiphs_layout_for_gru_models_only_and_a_lossless_file_as_torchs(tiny_run, tiny_vad_run):
    assert xiph_layout_lines(tiny_run[1])[0].startswith("xiph's layout")  # RNNoise: its GRUs' deployed layout
    assert xiph_layout_lines(tiny_vad_run[1]) == []  # not printed for a VAD without GRUs
    metrics = tiny_run[1]
    files = [Written("onnx", Path("model.onnx"), "ONNX fp32", lossy=False),
             Written("onnx_int8", Path("model_int8.onnx"), "ONNX dynamic-int8", lossy=True)]
    header, torch_row, fp32_row, int8_row = deployment_lines(("pesq", "PESQ-wb"), metrics, files)[1:]
    assert "PESQ-wb" in header and torch_row.endswith(f"{metrics['test/pesq']:.3f}")
    assert fp32_row.endswith("= torch") and int8_row.endswith(f"{metrics['deploy/onnx_int8/pesq']:.3f}")
