"""Smaller exported files: INT8 with ONNX Runtime (dynamic or static QDQ) and FP16.

Signal-processing tables (DFT and STFT kernels) stay fp32 in every mode: see `fixed_table_nodes`.

- `dynamic-int8`: weights stored as 8-bit integers, activations quantized on the fly per tensor.
  ONNX Runtime quantizes MatMul this way, and Conv (as ConvInteger, long documented for uint8
  weights only: a graph with a Conv gets uint8 weights, others int8) but for grouped
  (depthwise) ones, which it runs slowly (`depthwise_conv_nodes`); it leaves GRU, Gemm and
  ConvTranspose in fp32. Per-channel weight scales.
- `static-int8`: QDQ format, activation ranges calibrated (percentile by default; entropy or
  min/max) on batches of the run's own training data; the first and last learned layers stay
  fp32. It reaches Conv and ConvTranspose as well (FRCRN's export writes its transposed convs as
  convs, which ONNX Runtime runs in INT8: `export.folding`). Per-channel weight scales.
- `weight-only-int8`: every learned weight (GRU and ConvTranspose too) stored as int8 with
  per-channel scales and dequantized to fp32 in the graph; activations and arithmetic stay fp32:
  a quarter to a third of the fp32 file at its quality (measured), run as fast as fp32 (the
  weights are dequantized once, when the file is loaded: `onnx_files.session`).
- `fp16`: initializers and ops in half precision (but for ops ONNX Runtime's converter keeps in
  fp32), inputs and outputs kept fp32, for GPU deployment.

`quantized_ops` counts, per op type, how many nodes of a file compute with 8-bit weights, so the
README's table of what each mode reaches is measured, not assumed.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx

from speechcompress.atomic_files import atomic_path
from speechcompress.export.onnx_files import compact_names, read_metadata, write_metadata


@contextlib.contextmanager
def _quiet_quantizer():
    """ONNX Runtime's quantizers log a line per tensor (and advice about pre-processing) through the
    root logger, which a Hydra run prints, and its calibrators print their progress: raised to
    errors only, and the prints dropped, while they run."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def _tag(path: Path, source: Path, precision: str) -> None:
    """Copies the source file's metadata, with the new precision; short names again (the tools add
    long ones)."""
    proto = onnx.load(str(path))
    write_metadata(proto, {**read_metadata(source), "precision": precision})
    compact_names(proto)
    onnx.save(proto, str(path))


def _table_tensors(graph: onnx.GraphProto) -> set[str]:
    """Tensors computed from Constant nodes alone (in graph order: a node whose inputs are all
    such tensors makes more of them): the signal-processing tables a model keeps as buffers, which
    the exporter writes as Constant nodes, and the DFT tables a graph builds when it loads
    (`export.dft`). Learned weights are initializers instead."""
    tables: set[str] = set()
    for node in graph.node:
        if node.op_type == "Constant" or (node.input and all(name in tables for name in node.input if name)):
            tables.update(node.output)
    return tables


def fixed_table_nodes(proto: onnx.ModelProto) -> list[str]:
    """Nodes that multiply by a signal-processing table (`_table_tensors`: DFT tables, filterbanks,
    the DCT). They are exact signal processing, not learned weights: they stay fp32, so that
    quantization only touches what training made."""
    tables = _table_tensors(proto.graph)
    return [node.name for node in proto.graph.node
            if node.op_type in _WEIGHT_OPS and any(name in tables for name in node.input)]


def depthwise_conv_nodes(proto: onnx.ModelProto) -> list[str]:
    """Grouped convolutions (FSMN-VAD's memories): ONNX Runtime's ConvInteger has no fast kernel
    for them. Measured on FSMN-VAD: with its four 128-channel memories quantized they took 62 % of
    the time and the file ran 3.6× slower than fp32; left fp32 (2,560 weights each), it runs faster."""
    return [node.name for node in proto.graph.node if node.op_type == "Conv"
            and any(a.name == "group" and a.i > 1 for a in node.attribute)]


def quantize_dynamic_int8(source: str | Path, target: str | Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source, target = Path(source), Path(target)
    proto = onnx.load(str(source))
    has_conv = any(node.op_type == "Conv" for node in proto.graph.node)
    with atomic_path(target) as partial, _quiet_quantizer():
        quantize_dynamic(source, partial, per_channel=True, op_types_to_quantize=["MatMul", "Conv"],
                         weight_type=QuantType.QUInt8 if has_conv else QuantType.QInt8,
                         nodes_to_exclude=fixed_table_nodes(proto) + depthwise_conv_nodes(proto))
        _tag(partial, source, "dynamic-int8")
    return target


class _Batches:
    """ONNX Runtime's CalibrationDataReader over arrays for the graph's one input."""

    def __init__(self, name: str, batches: Iterable[np.ndarray]) -> None:
        self._items = iter([{name: np.ascontiguousarray(b, np.float32)} for b in batches])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)


CALIBRATIONS = ("percentile", "entropy", "minmax")


def learned_nodes(proto: onnx.ModelProto) -> list[str]:
    """Nodes with a learned weight (an initializer of two or more dimensions), in graph order: the
    network's layers from its input to its output."""
    weights = {t.name for t in proto.graph.initializer if len(t.dims) >= 2}
    return [node.name for node in proto.graph.node
            if node.op_type in _WEIGHT_OPS and any(name in weights for name in node.input)]


def fp32_nodes(proto: onnx.ModelProto, edges: int) -> list[str]:
    """What static INT8 leaves in fp32: the signal path around the network (every node before its
    first learned layer and after its last: the STFT and features, the mask and the inverse, whose
    waveforms and spectra 8 bits would cut to a 48 dB range), the `edges` learned layers at each
    end of the network, and the signal-processing tables' products."""
    order = [node.name for node in proto.graph.node]
    layers = learned_nodes(proto)
    first, last = order.index(layers[0]), order.index(layers[-1])
    outside = order[:first] + order[last + 1 :]
    return outside + layers[:edges] + layers[max(edges, len(layers) - edges) :] + fixed_table_nodes(proto)


def quantize_static_int8(source: str | Path, target: str | Path, calibration: Iterable[np.ndarray],
                         method: str = "percentile", fp32_edges: int = 1) -> Path:
    """`calibration`: inputs of the graph (noisy waveforms, or the VAD's fbank) from training data.
    Every op inside the network that ONNX Runtime quantizes is (not only those with weights: a
    chain of INT8 ops passes 8-bit tensors from one to the next, where quantizing the weighted
    ops alone put a QuantizeLinear and a DequantizeLinear around each; measured on FRCRN at its
    published size, 1.2× faster than fp32 that way, 1.6× this way); `fp32_nodes` stay fp32.
    `method`: how activation ranges are set from the calibration inputs: `percentile` (ONNX
    Runtime's default 99.999th percentile of |x|: a rare peak does not stretch the range of every
    other value), `entropy` (the range whose quantized histogram loses the least information;
    slower), or `minmax`. `fp32_edges`: the first and the last that many learned layers stay fp32
    (speech INT8's finding: the input and output layers lose the most to quantization)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in CALIBRATIONS:
        raise ValueError(f"export.calibration={method}: use one of {', '.join(CALIBRATIONS)}")
    source, target = Path(source), Path(target)
    proto = onnx.load(str(source))
    name = read_metadata(source)["input"]
    with tempfile.TemporaryDirectory() as scratch, atomic_path(target) as partial, _quiet_quantizer():
        prepared = Path(scratch) / "prepared.onnx"
        # no graph optimisation here: it would fold the DFT tables (`export.dft`) into the file;
        # batch norms are folded at export already, and ONNX Runtime optimises the file when it loads it
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True, skip_optimization=True)
        quantize_static(prepared, partial, _Batches(name, calibration), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method={"percentile": CalibrationMethod.Percentile, "entropy":
                                          CalibrationMethod.Entropy, "minmax": CalibrationMethod.MinMax}[method],
                        nodes_to_exclude=fp32_nodes(proto, fp32_edges),
                        # histograms merged input by input: every activation of all of them at once
                        # would take gigabytes for FRCRN
                        extra_options={"CalibMaxIntermediateOutputs": 1})
        _tag(partial, source, "static-int8")
    return target


def _output_channel_axis(node: onnx.NodeProto, position: int, dims: int) -> int:
    """The axis of a weight that indexes the node's output channels: one scale per channel."""
    if node.op_type == "ConvTranspose":  # [C_in, C_out / groups, k...]
        return 1
    if node.op_type in ("GRU", "LSTM", "RNN"):  # [directions, gates · hidden, inputs]
        return 1
    if node.op_type == "Gemm":
        transposed = any(a.name == ("transB" if position == 1 else "transA") and a.i for a in node.attribute)
        return (0 if transposed else 1) if position == 1 else (1 if transposed else 0)
    if node.op_type == "MatMul":  # x @ W: W's last axis; W @ x: its rows
        return dims - 1 if position == 1 else dims - 2
    return 0  # Conv: [C_out, C_in / groups, k...]


def quantize_weights_int8(source: str | Path, target: str | Path) -> Path:
    """Weight-only INT8: every learned weight tensor stored as int8 with a symmetric per-output-
    channel scale (zeros stay exactly zero), a DequantizeLinear before the op; activations and
    arithmetic stay fp32. It reaches every op with weights, GRU and ConvTranspose included, so the
    file is about a quarter of fp32; the run time is fp32's plus the dequantization."""
    from onnx import numpy_helper

    source, target = Path(source), Path(target)
    proto = onnx.load(str(source))
    graph = proto.graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    dequantize = []
    for node in graph.node:
        if node.op_type not in _WEIGHT_OPS:
            continue
        for position, name in enumerate(node.input):
            if node.op_type in ("GRU", "LSTM", "RNN") and position not in (1, 2):  # W and R, not the biases
                continue
            tensor = initializers.pop(name, None)  # pop: a weight read by two nodes is quantized once
            if tensor is None or len(tensor.dims) < 2 or tensor.data_type != onnx.TensorProto.FLOAT:
                continue
            weight = numpy_helper.to_array(tensor)
            axis = _output_channel_axis(node, position, weight.ndim)
            others = tuple(i for i in range(weight.ndim) if i != axis)
            scale = (np.abs(weight).max(axis=others) / 127).astype(np.float32)
            scale[scale == 0] = 1.0  # an all-zero channel (pruned) stays zero with any scale
            shape = [1] * weight.ndim
            shape[axis] = -1
            codes = np.clip(np.round(weight / scale.reshape(shape)), -127, 127).astype(np.int8)
            graph.initializer.remove(tensor)
            graph.initializer.extend([numpy_helper.from_array(codes, f"{name}_int8"),
                                      numpy_helper.from_array(scale, f"{name}_scale")])
            # no zero point: symmetric codes, and DequantizeLinear's default zero point is 0
            dequantize.append(onnx.helper.make_node("DequantizeLinear", [f"{name}_int8", f"{name}_scale"],
                                                    [name], axis=axis))
    nodes = [*dequantize, *graph.node]  # before the ops that read them
    del graph.node[:]
    graph.node.extend(nodes)
    with atomic_path(target) as partial:
        onnx.save(proto, str(partial))
        _tag(partial, source, "weight-only-int8")
    return target


def convert_fp16(source: str | Path, target: str | Path) -> Path:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    source, target = Path(source), Path(target)
    with atomic_path(target) as partial:
        onnx.save(convert_float_to_float16(onnx.load(str(source)), keep_io_types=True), str(partial))
        _tag(partial, source, "fp16")
    return target


_WEIGHT_OPS = {"MatMul", "Gemm", "Conv", "ConvTranspose", "GRU", "LSTM", "RNN"}
_INTEGER_OPS = {"MatMulInteger": "MatMul", "ConvInteger": "Conv", "DynamicQuantizeMatMul": "MatMul",
                "QLinearMatMul": "MatMul", "QLinearConv": "Conv"}


def quantized_ops(path: str | Path) -> dict[str, tuple[int, int]]:
    """{op: (nodes computing with 8-bit weights, nodes of that op in all)} for the ops that carry weights.

    An integer kernel (MatMulInteger, ConvInteger, ...) counts as a quantized node of its op; in QDQ
    files, a node counts as quantized when a weight it reads is an 8-bit initializer passed through
    DequantizeLinear. fp32 MatMul, Gemm, Conv, ConvTranspose and recurrent nodes with a weight input
    (an initializer or constant of two or more dimensions, or a table the graph builds) count
    towards the totals only."""
    graph = onnx.load(str(path)).graph
    initializers = {i.name: i for i in graph.initializer}
    for node in graph.node:  # constants stored in the graph (tables, folded weights) count as weights too
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            initializers[node.output[0]] = node.attribute[0].t
    tables = _table_tensors(graph) - set(initializers)  # tables the graph builds (export.dft): 2-D
    eight_bit = {onnx.TensorProto.INT8, onnx.TensorProto.UINT8}
    dequantized_weights = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"
                           and n.input[0] in initializers and initializers[n.input[0]].data_type in eight_bit}
    for node in graph.node:  # the exporter passes a weight that two modules share through an Identity
        if node.op_type == "Identity" and node.input[0] in initializers:
            initializers[node.output[0]] = initializers[node.input[0]]
        if node.op_type == "Identity" and node.input[0] in dequantized_weights:
            dequantized_weights.add(node.output[0])
    quantized, total = Counter(), Counter()
    for node in graph.node:
        if node.op_type == "Identity":
            continue
        if node.op_type in _INTEGER_OPS:
            op = _INTEGER_OPS[node.op_type]
            quantized[op] += 1
            total[op] += 1
        elif any(name in dequantized_weights for name in node.input):
            quantized[node.op_type] += 1
            total[node.op_type] += 1
        elif node.op_type in _WEIGHT_OPS and any(name in tables or (name in initializers and
                                                  len(initializers[name].dims) >= 2) for name in node.input):
            total[node.op_type] += 1
    return {op: (quantized[op], total[op]) for op in sorted(total)}
