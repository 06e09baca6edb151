"""Export to ONNX: parity with torch for every family, INT8 files that really hold 8-bit kernels,
exported files in the CLI in place of checkpoints, and the end-of-run measurements in MLflow."""

import math
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import soundfile as sf
import torch
from mlflow.tracking import MlflowClient

from speechcompress.cli import main
from speechcompress.config import PROJECT_ROOT, compose_config
from speechcompress.export import dft
from speechcompress.export.exporter import ExportContext, Written, write_all
from speechcompress.export.folding import ConvTransposeAsConv, for_deployment
from speechcompress.export.onnx import (
    PARITY_TOLERANCE,
    ParityError,
    export_onnx,
    export_stream_onnx,
)
from speechcompress.export.onnx_files import read_metadata
from speechcompress.export.onnx_files import session as onnx_session
from speechcompress.export.quantize import (
    depthwise_conv_nodes,
    fixed_table_nodes,
    quantize_weights_int8,
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


def test_the_rnnoise_step_graph_takes_any_hops_per_call_and_equals_the_whole_signal_file(tmp_path):
    model = _trained_a_little(RNNoise())  # the default sizes: 1.2 M parameters, mostly GRU
    whole = export_onnx(model, tmp_path / "model.onnx")
    exported = export_stream_onnx(model, tmp_path / "step.onnx", hops=8)
    assert exported.max_abs_difference <= PARITY_TOLERANCE  # streamed 8 hops a call against the offline forward
    stream = read_metadata(exported.path)["stream"]
    assert stream["hop"] == 160 and stream["latency"] == 320 and stream["hops"] == 8
    assert stream["state"] == {"state": [1, sum(math.prod(shape) for shape in stream["layout"].values())]}
    noisy = torch.randn(2, 160 * 37 + 55) * 0.1  # not a whole number of calls for any of them
    reference = OnnxModel(whole.path)(noisy).enhanced
    for hops in (1, 2, 3, 8):
        assert (OnnxModel(exported.path, hops=hops)(noisy).enhanced - reference).abs().max() <= 1e-5
    # hop for hop against torch's own step, from a fresh stream
    state, expected = model.init_state(1), []
    for chunk in noisy[:1, : 160 * 12].split(160, dim=1):
        out, state = model.step(chunk, state)
        expected.append(out)
    got = OnnxModel(exported.path, hops=4)(noisy[:1, : 160 * 12]).enhanced
    assert (got[:, : 160 * 10] - torch.cat(expected, dim=1)[:, 320:]).abs().max() <= PARITY_TOLERANCE
    # the step's INT8 copy is weight-only: it reaches the GRUs, which hold most of the weights
    int8 = quantize_weights_int8(exported.path, tmp_path / "step_int8.onnx")
    assert quantized_ops(int8)["GRU"] == (3, 3)
    assert int8.stat().st_size <= 0.35 * exported.path.stat().st_size
    # the GRUs' reset input leaves every row's INT8 scale as it was: the copy equals the whole-signal file's copy
    whole_int8 = OnnxModel(quantize_weights_int8(whole.path, tmp_path / "model_int8.onnx"))(noisy).enhanced
    assert (OnnxModel(int8)(noisy).enhanced - whole_int8).abs().max() <= 1e-5
    # a call's time is mostly ONNX Runtime's cost per node: the graph it runs stays small
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(exported.path), options, providers=["CPUExecutionProvider"])
    assert len(onnx.load(options.optimized_model_filepath).graph.node) <= 80


def test_streams_of_one_batch_may_start_at_different_calls(tmp_path):
    """Each stream's `started` flag is its own: a batch can hold a new stream beside one under way."""
    model = _trained_a_little(FAMILIES["rnnoise"]())
    path = export_stream_onnx(model, tmp_path / "step.onnx").path
    session = onnx_session(path)
    size = read_metadata(path)["stream"]["state"]["state"][1]
    a, b = (torch.randn(1, 160 * 9).numpy() * 0.1 for _ in range(2))

    def alone(signal: np.ndarray, calls: list[int]) -> list[np.ndarray]:
        state, outs, start = np.zeros((1, size), np.float32), [], 0
        for hops in calls:
            out, state = session.run(None, {"chunk": signal[:, start : start + 160 * hops], "state": state})
            outs.append(out)
            start += 160 * hops
        return outs

    first_a = alone(a, [3])[0]
    _, state_a = session.run(None, {"chunk": a[:, : 160 * 3], "state": np.zeros((1, size), np.float32)})
    # call 2 of stream a beside call 1 of stream b, in one batch
    together, _ = session.run(None, {"chunk": np.concatenate([a[:, 480:960], b[:, :480]]),
                                     "state": np.concatenate([state_a, np.zeros((1, size), np.float32)])})
    assert np.abs(together[0] - alone(a, [3, 3])[1][0]).max() <= 1e-6
    assert np.abs(together[1] - alone(b, [3])[0][0]).max() <= 1e-6
    assert np.abs(first_a[:, :160]).max() == 0  # a new stream's first hop is its look-ahead: no output yet


def test_the_exported_dfts_equal_torchs_and_build_their_tables_when_loaded(tmp_path):
    window = torch.rand(640)  # any window: the whole-table forms fold it into their tables

    class RoundTrip(torch.nn.Module):
        def forward(self, frames):
            spectrum = dft.rfft(frames, 640)
            blocks = frames[..., :320]  # the step's form: frame k is blocks k and k + 1, windowed
            return (spectrum, dft.irfft(spectrum * 0.5, 640), dft.block_rfft(blocks, window, 640),
                    dft.windowed_irfft(spectrum * 0.5, window, 640))

    path = tmp_path / "dft.onnx"
    frames = torch.randn(3, 5, 640)
    torch.onnx.export(RoundTrip(), (frames,), str(path), input_names=["frames"],
                      output_names=["spectrum", "half", "blocks", "windowed"],
                      opset_version=17, dynamo=False, dynamic_axes={"frames": {0: "b", 1: "f"}},
                      custom_opsets={dft.DOMAIN: 1})
    proto = onnx.load(str(path))
    dft.expand_tables(proto)
    onnx.save(proto, str(path))
    assert path.stat().st_size < 40_000  # its tables, stored as numbers, would be 4.9 MB
    other = torch.randn(2, 7, 640)  # another batch and frame count than the trace's
    spectrum, half, of_blocks, windowed = onnx_session(path).run(None, {"frames": other.numpy()})
    block_frames = torch.cat([other[:, :-1, :320], other[:, 1:, :320]], dim=-1) * window
    for got, expected in [(spectrum, torch.fft.rfft(other)), (of_blocks, torch.fft.rfft(block_frames))]:
        scale = expected.abs().max()
        assert np.abs(got[..., 0, :] - expected.real.numpy()).max() <= 1e-6 * scale
        assert np.abs(got[..., 1, :] - expected.imag.numpy()).max() <= 1e-6 * scale
    assert np.abs(half - 0.5 * other.numpy()).max() <= 1e-5
    assert np.abs(windowed - 0.5 * (other * window).numpy()).max() <= 1e-5


def test_frcrn_exports_with_its_batch_norms_folded_and_its_transposed_convs_as_convs(tmp_path):
    model = _trained_a_little(FAMILIES["frcrn"]())
    for kf, kt, padding in [(5, 2, 1), (4, 2, 1), (3, 1, 0), (6, 3, 2)]:  # odd and even kernels, any time padding
        weight, bias, x = torch.randn(6, 4, kf, kt), torch.randn(4), torch.randn(2, 6, 9, 11)
        expected = torch.nn.functional.conv_transpose2d(x, weight, bias, stride=(2, 1), padding=(0, padding))
        assert (ConvTransposeAsConv(weight, bias, padding)(x) - expected).abs().max() <= 1e-5
    noisy = torch.randn(2, 16000) * 0.1
    with torch.no_grad():
        assert (for_deployment(model)(noisy).enhanced - model(noisy).enhanced).abs().max() <= 1e-5
    exported = export_onnx(model, tmp_path / "model.onnx")
    ops = Counter(node.op_type for node in onnx.load(str(exported.path)).graph.node)
    assert ops["BatchNormalization"] == 0 and ops["ConvTranspose"] == 0 and ops["Conv"] > 0


def test_a_parity_failure_names_the_difference_and_keeps_no_file(tmp_path):
    # the graph's DFT tables and torch's FFT round differently, which a zero tolerance refuses
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


def test_dynamic_int8_leaves_grus_fp32_and_static_runs_every_frcrn_conv_but_the_edges_in_int8(tmp_path):
    rnnoise = export_files(_trained_a_little(FAMILIES["rnnoise"]()), tmp_path / "rnnoise")
    ops = quantized_ops(rnnoise["onnx_int8"])
    assert ops["GRU"] == (0, 3) and ops["Conv"] == (2, 2)
    assert ops["MatMul"][0] == 1  # the gains head; the filterbank, DCT and DFT products stay fp32
    model = _trained_a_little(FAMILIES["frcrn"]())
    files = export_files(model, tmp_path / "dynamic")
    dynamic = quantized_ops(files["onnx_int8"])
    depthwise = len(depthwise_conv_nodes(onnx.load(str(files["onnx"]))))  # the FSMN memories: left fp32
    assert dynamic["Conv"][0] == dynamic["Conv"][1] - depthwise > 0 and depthwise > 0
    assert dynamic["MatMul"][0] == dynamic["MatMul"][1] - 4 > 0  # all but the 4 DFT products
    calibration = [np.random.default_rng(i).standard_normal((2, 16000)).astype(np.float32) * 0.1 for i in range(2)]
    static = export_files(model, tmp_path / "static", quantize="static-int8", calibration=calibration)["onnx_int8"]
    ops = quantized_ops(static)
    assert "ConvTranspose" not in ops  # the decoders are convs (export.folding)
    assert ops["Conv"][0] == ops["Conv"][1] - 2 > 0  # all but the first and last layers (export.fp32_edges)
    assert "QLinearConv" in integer_kernels_run(static)  # and ONNX Runtime runs them in INT8


def integer_kernels_run(path: Path) -> set[str]:
    """The op types of the graph ONNX Runtime optimises `path` into and runs."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(path.with_suffix(".optimized.onnx"))
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return {node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node}


def test_static_int8_reaches_what_the_readme_says_for_rnnoise_and_the_vad(tmp_path):
    calibration = [np.random.default_rng(i).standard_normal((2, 16000)).astype(np.float32) * 0.1 for i in range(2)]
    rnnoise = quantized_ops(export_files(_trained_a_little(FAMILIES["rnnoise"]()), tmp_path / "rnnoise",
                                         quantize="static-int8", calibration=calibration)["onnx_int8"])
    # conv2 only: conv1 (the first layer) and the gains head (the last) stay fp32, and no INT8 GRU exists
    assert rnnoise["Conv"] == (1, 2) and rnnoise["GRU"] == (0, 3) and rnnoise["MatMul"][0] == 0
    vad = _trained_a_little(FAMILIES["fsmn_vad"]())  # calibrated on the fbank of the same waveforms
    ops = quantized_ops(export_files(vad, tmp_path / "vad", quantize="static-int8", calibration=calibration)["onnx_int8"])
    assert ops["MatMul"][0] == ops["MatMul"][1] - 2 > 0 and ops["Conv"] == (2, 2)  # the memories too (2 layers)


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
    if family == "frcrn":  # the decoders, convs in the graph (export.folding)
        assert ops["Conv"][0] == ops["Conv"][1] > 0
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
    # torch.compile is for a checkpoint's torch model: an exported file is refused, saying so
    assert main(["enhance", "--checkpoint", str(run / "export" / "model.onnx"), "--compile", str(tmp_path / "in.wav"),
                 str(tmp_path / "compiled.wav")]) == 2
    assert not (tmp_path / "compiled.wav").exists()


@pytest.mark.slow
def test_enhance_compile_writes_what_the_checkpoint_writes_and_reports_its_compile_time_apart(tiny_run, tmp_path, capsys):
    cfg, _ = tiny_run
    (checkpoint,) = Path(cfg.paths.experiments_dir).glob("runs/rnnoise/*/checkpoints/best-*.ckpt")
    wave = 0.05 * np.random.default_rng(1).standard_normal(16000 * 25)  # windows of 10 s and a shorter last one
    sf.write(tmp_path / "in.wav", wave, 16000, subtype="FLOAT")
    for name, extra in (("plain", []), ("compiled", ["--compile"])):
        assert main(["enhance", "--checkpoint", str(checkpoint), *extra, "--float", str(tmp_path / "in.wav"),
                     str(tmp_path / f"{name}.wav")]) == 0
    assert re.search(r"compiled the model in \d+\.\d s", capsys.readouterr().err)
    plain, compiled = (sf.read(tmp_path / f"{name}.wav")[0] for name in ("plain", "compiled"))
    assert np.abs(plain - compiled).max() <= 1e-4


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
    # a format that does not ship this family: the same refusal as a run's, naming the way out
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "rnnoise_c", "--out", str(tmp_path / "c")]) == 2
    assert "ships a fsmn_vad model, which ships as onnx, funasr" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


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
    # the size `compare` judges a run by: the figure its family names (RNNoise: xiph's sparse layout)
    judged = {"tiny_run": "size/bytes_sparse", "tiny_vad_run": "size/bytes_onnx", "tiny_frcrn_run": "size/bytes_onnx"}
    assert run.data.metrics["size/bytes"] == metrics[judged[fixture]] > 0
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


def test_the_step_scan_benchmark_builds_a_scan_over_hops_equal_to_the_step_file(tmp_path):
    """benchmarks/step_scan.py: the other design the issue asked to measure (hops one after another
    in an ONNX Scan), built from the step file; the script stops if its outputs differ."""
    path = export_stream_onnx(_trained_a_little(FAMILIES["rnnoise"]()), tmp_path / "step.onnx").path
    done = subprocess.run([sys.executable, "benchmarks/step_scan.py", str(path), "--hops", "1", "3", "--seconds", "0.3",
                           "--repeats", "1"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = re.findall(r"^(\d+)\s+([\d.]+)\s+([\d.]+)$", done.stdout, re.M)
    assert [int(k) for k, *_ in rows] == [1, 3] and all(float(v) > 0 for _, *figures in rows for v in figures)
