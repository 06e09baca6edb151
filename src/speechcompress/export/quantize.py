"""Smaller exported files: INT8 with ONNX Runtime (dynamic or static QDQ) and FP16.

Signal-processing tables (DFT and STFT kernels) stay fp32 in every mode: see `fixed_table_nodes`.

- `dynamic-int8`: weights stored as 8-bit integers, activations quantized on the fly per tensor.
  ONNX Runtime quantizes MatMul this way, and Conv (as ConvInteger, long documented for uint8
  weights only: a graph with a Conv gets uint8 weights, others int8) but for grouped
  (depthwise) ones, which it runs slowly (`depthwise_conv_nodes`); it leaves GRU, Gemm and
  ConvTranspose in fp32. Per-channel weight scales.
- `static-int8`: QDQ format, activation ranges calibrated (min/max) on batches of the run's own
  training data; it reaches Conv and ConvTranspose as well. Per-channel weight scales.
- `fp16`: initializers and ops in half precision (but for ops ONNX Runtime's converter keeps in
  fp32), inputs and outputs kept fp32, for GPU deployment.

`quantized_ops` counts, per op type, how many nodes of a file compute with 8-bit weights, so the
README's table of what each mode reaches is measured, not assumed.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx

from speechcompress.export.onnx import compact_names, read_metadata, write_metadata
from speechcompress.files import atomic_path


def _tag(path: Path, source: Path, precision: str) -> None:
    """Copies the source file's metadata, with the new precision; short names again (the tools add
    long ones)."""
    proto = onnx.load(str(path))
    write_metadata(proto, {**read_metadata(source), "precision": precision})
    compact_names(proto)
    onnx.save(proto, str(path))


def fixed_table_nodes(proto: onnx.ModelProto) -> list[str]:
    """Nodes that multiply by a signal-processing table (DFT and STFT kernels, filterbanks): the
    models keep those as buffers, which the exporter writes as Constant nodes, where learned
    weights become initializers. They are exact signal processing, not learned weights: they stay
    fp32, so that quantization only touches what training made."""
    constants = {out for node in proto.graph.node if node.op_type == "Constant" for out in node.output}
    return [node.name for node in proto.graph.node
            if node.op_type in _WEIGHT_OPS and any(name in constants for name in node.input)]


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
    with atomic_path(target) as partial:
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


def quantize_static_int8(source: str | Path, target: str | Path, calibration: Iterable[np.ndarray]) -> Path:
    """`calibration`: inputs of the graph (noisy waveforms, or the VAD's fbank) from training data."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source, target = Path(source), Path(target)
    name = read_metadata(source)["input"]
    with tempfile.TemporaryDirectory() as scratch, atomic_path(target) as partial:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(prepared, partial, _Batches(name, calibration), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=fixed_table_nodes(onnx.load(str(source))),
                        op_types_to_quantize=sorted(_WEIGHT_OPS - {"GRU", "LSTM", "RNN"}))
        _tag(partial, source, "static-int8")
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
    (an initializer or constant of two or more dimensions) count towards the totals only."""
    graph = onnx.load(str(path)).graph
    initializers = {i.name: i for i in graph.initializer}
    for node in graph.node:  # constants stored in the graph (tables, folded weights) count as weights too
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            initializers[node.output[0]] = node.attribute[0].t
    eight_bit = {onnx.TensorProto.INT8, onnx.TensorProto.UINT8}
    dequantized_weights = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"
                           and n.input[0] in initializers and initializers[n.input[0]].data_type in eight_bit}
    quantized, total = Counter(), Counter()
    for node in graph.node:
        if node.op_type in _INTEGER_OPS:
            op = _INTEGER_OPS[node.op_type]
            quantized[op] += 1
            total[op] += 1
        elif any(name in dequantized_weights for name in node.input):
            quantized[node.op_type] += 1
            total[node.op_type] += 1
        elif node.op_type in _WEIGHT_OPS and any(name in initializers and len(initializers[name].dims) >= 2
                                                  for name in node.input):
            total[node.op_type] += 1
    return {op: (quantized[op], total[op]) for op in sorted(total)}
