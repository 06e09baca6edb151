"""Real DFTs in exported graphs: products with half-size tables that the file builds when it loads.

ONNX has no complex tensors, torch's exporter no FFT, and ONNX Runtime computes its own DFT
operator slowly for the lengths these models use (320 and 640 points, not powers of two: 62 % of
RNNoise's whole-signal graph). A product with a table of cosines and sines is several times
faster. Two choices keep it fast and the file small:

- **Half the table.** A real frame's DFT is symmetric (cos(2πkn/N) = cos(2πk(N−n)/N), and sin
  changes sign), so the graph folds a frame in half before the product (x_n + x_{N−n} meets the
  cosines, x_n − x_{N−n} the sines) and unfolds the inverse after it. A 320-point transform and
  its inverse then read 0.4 MB of tables instead of 0.8 MB on each call: a streaming step reads
  them with all its weights on every hop, and the less it reads the more stays in a core's cache.
- **Built at load.** 0.4 MB of tables would still be a quarter of RNNoise's file. So the graph
  computes each table from its size alone (Range, Mul, Mod, Cast, Cos or Sin: a few bytes of
  nodes), from constants only, which ONNX Runtime's constant folding evaluates once when it opens
  the file. The exporter emits a placeholder node `speechcompress::DFTTable` (its attributes say
  which block of which table), which its own constant folding cannot touch; `expand_tables`
  replaces it with those nodes in the written file.

Where a call pays ONNX Runtime's fixed cost per node (half a microsecond or more, whatever the
node computes) more than it pays for reading tables, as a streaming step of a few hops does,
`block_rfft` and `windowed_irfft` take the whole table instead, the window folded into it when it
is built: the step's frames (each two consecutive blocks) go through one product, the table's two
row halves side by side, so each block is multiplied once, plus a Slice pair and an Add: 7 nodes
for framing and transform instead of 17. The inverse is one product: 2 nodes instead of 11. Their tables are twice the half-size
ones' bytes (0.8 MB for RNNoise's step), built at load the same way.

Spectra are [..., 2, n//2 + 1]: the real parts, then the imaginary parts.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

DOMAIN, PLACEHOLDER = "speechcompress", "DFTTable"


def _table(g, n: int, rows: tuple[int, int], cols: tuple[int, int], sine: bool, sign: int = 1,
           inverse: bool = False):
    """The placeholder for rows first … last − 1 by columns first … last − 1 of sign · cos or sin(2π r c / n)
    (rows weighted as an inverse transform's bins when `inverse`: see `_table_nodes`)."""
    return g.op(f"{DOMAIN}::{PLACEHOLDER}", n_i=n, first_row_i=rows[0], rows_i=rows[1] - rows[0], first_col_i=cols[0],
                cols_i=cols[1] - cols[0], sine_i=int(sine), sign_i=sign, inverse_i=int(inverse))


def _slice(g, x, start: int | list[int], end: int | list[int], step: int = 1, axis: int | list[int] = -1):
    """x[start:end:step] along `axis` (the last by default) in ONNX; lists slice several axes in one node."""
    def const(value):
        return g.op("Constant", value_t=torch.tensor(value if isinstance(value, list) else [value]))

    steps = [step] * len(start) if isinstance(start, list) else step
    return g.op("Slice", x, const(start), const(end), const(axis), const(steps))


def _reshape_last(g, x, rank: int, last: list[int]):
    """x's leading rank − 1 axes kept as they are (0 in ONNX's Reshape), the last one reshaped to `last`."""
    return g.op("Reshape", x, g.op("Constant", value_t=torch.tensor([0] * (rank - 1) + last)))


def _torch_irfft(spectrum: torch.Tensor, n: int) -> torch.Tensor:
    """What the inverse transforms compute, in torch (their forward while the exporter traces)."""
    return torch.fft.irfft(torch.complex(spectrum[..., 0, :], spectrum[..., 1, :]), n=n, dim=-1)


class _RFFT(torch.autograd.Function):
    @staticmethod
    def forward(ctx, frames: torch.Tensor, n: int) -> torch.Tensor:
        spectrum = torch.fft.rfft(frames, n=n, dim=-1)
        return torch.stack([spectrum.real, spectrum.imag], dim=-2)

    @staticmethod
    def symbolic(g, frames, n: int):
        rank, half = frames.type().dim(), n // 2
        inner, mirrored = _slice(g, frames, 1, half), _slice(g, frames, n - 1, half, step=-1)  # x_n, x_{N−n}: n = 1 … N/2 − 1
        even = g.op("Concat", _slice(g, frames, 0, 1), g.op("Add", inner, mirrored), _slice(g, frames, half, half + 1),
                    axis_i=-1)  # n = 0 … N/2
        odd = g.op("Sub", inner, mirrored)
        real = g.op("MatMul", even, _table(g, n, (0, half + 1), (0, half + 1), sine=False))
        imaginary = g.op("MatMul", odd, _table(g, n, (1, half), (0, half + 1), sine=True, sign=-1))
        return _reshape_last(g, g.op("Concat", real, imaginary, axis_i=-1), rank, [2, half + 1])


class _IRFFT(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spectrum: torch.Tensor, n: int) -> torch.Tensor:
        return _torch_irfft(spectrum, n)

    @staticmethod
    def symbolic(g, spectrum, n: int):
        rank, half = spectrum.type().dim(), n // 2
        flat = _reshape_last(g, spectrum, rank - 1, [2 * (half + 1)])
        real, imaginary = _slice(g, flat, 0, half + 1), _slice(g, flat, half + 1, 2 * (half + 1))
        even = g.op("MatMul", real, _table(g, n, (0, half + 1), (0, half + 1), sine=False, inverse=True))  # n = 0 … N/2
        odd = g.op("MatMul", imaginary, _table(g, n, (0, half + 1), (1, half), sine=True, sign=-1, inverse=True))
        inner = _slice(g, even, 1, half)
        first = g.op("Concat", _slice(g, even, 0, 1), g.op("Add", inner, odd), _slice(g, even, half, half + 1),
                     axis_i=-1)  # x_0 … x_{N/2}
        mirrored = g.op("Sub", inner, odd)  # x_{N−n}, n = 1 … N/2 − 1, reversed below
        return g.op("Concat", first, _slice(g, mirrored, half - 2, -half - 1, step=-1), axis_i=-1)


def _windowed(g, table, window, axis: int):
    """table · window along `axis` (0: rows, 1: columns): constants only, folded when the file loads."""
    return g.op("Mul", table, g.op("Unsqueeze", window, g.op("Constant", value_t=torch.tensor([1 - axis]))))


class _BlockRFFT(torch.autograd.Function):
    @staticmethod
    def forward(ctx, blocks: torch.Tensor, window: torch.Tensor, n: int) -> torch.Tensor:
        spectrum = torch.fft.rfft(torch.cat([blocks[..., :-1, :], blocks[..., 1:, :]], dim=-1) * window, dim=-1)
        return torch.stack([spectrum.real, spectrum.imag], dim=-2)

    @staticmethod
    def symbolic(g, blocks, window, n: int):
        rank, half = blocks.type().dim(), n // 2
        table = g.op("Concat", _table(g, n, (0, n), (0, half + 1), sine=False),
                     _table(g, n, (0, n), (0, half + 1), sine=True, sign=-1), axis_i=1)  # [n, 2·bins]: real, imaginary
        table = _windowed(g, table, window, axis=0)
        halves = g.op("Concat", _slice(g, table, 0, half, axis=0), _slice(g, table, half, n, axis=0), axis_i=1)
        products = g.op("MatMul", blocks, halves)  # each block as a frame's first half, then as its second

        def part(first_block: int, last_block: int, column: int):
            return _slice(g, products, [first_block, column], [last_block, column + 2 * (half + 1)], axis=[-2, -1])

        total = g.op("Add", part(0, -1, 0), part(1, 2**62, 2 * (half + 1)))  # frame k: block k's first half, k + 1's second
        return _reshape_last(g, total, rank, [2, half + 1])


class _WindowedIRFFT(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spectrum: torch.Tensor, window: torch.Tensor, n: int) -> torch.Tensor:
        return _torch_irfft(spectrum, n) * window

    @staticmethod
    def symbolic(g, spectrum, window, n: int):
        rank, half = spectrum.type().dim(), n // 2
        table = g.op("Concat", _table(g, n, (0, half + 1), (0, n), sine=False, inverse=True),
                     _table(g, n, (0, half + 1), (0, n), sine=True, sign=-1, inverse=True), axis_i=0)  # [2·bins, n]
        return g.op("MatMul", _reshape_last(g, spectrum, rank - 1, [-1]), _windowed(g, table, window, axis=1))


def rfft(frames: torch.Tensor, n: int) -> torch.Tensor:
    """`torch.fft.rfft` of the last axis (exactly n samples, n even) as [..., 2, n//2 + 1]."""
    return _RFFT.apply(frames, n)


def irfft(spectrum: torch.Tensor, n: int) -> torch.Tensor:
    """`torch.fft.irfft(·, n)` (n even) of a spectrum [..., 2, n//2 + 1] → [..., n]."""
    return _IRFFT.apply(spectrum, n)


def _table_nodes(node: onnx.NodeProto) -> list[onnx.NodeProto]:
    """The nodes that compute a placeholder's table into its output, from constants only, in fp32:
    table[r, c] = sign · trig(2π · ((first_row + r) · (first_col + c) mod n) / n) · w, each angle
    reduced modulo n first so that large products of sample and bin cost no precision; w is 1, or
    for an inverse table (rows are bins k) the weight of bin k in a real signal's inverse DFT: 1/n
    for DC and Nyquist, 2/n for the others (each counts its conjugate twin)."""
    a = {attr.name: attr.i for attr in node.attribute}
    n, p = a["n"], f"{node.output[0]}_"

    def const(name: str, value) -> onnx.NodeProto:
        return helper.make_node("Constant", [], [p + name], value=numpy_helper.from_array(np.asarray(value)))

    rows = np.arange(a["first_row"], a["first_row"] + a["rows"])
    weight = np.float32(a["sign"])  # one number, or a column of them for an inverse table
    if a["inverse"]:
        weight = weight * np.where((rows == 0) | (2 * rows == n), 1.0 / n, 2.0 / n)[:, None].astype(np.float32)
    return [
        const("row0", np.int64(a["first_row"])), const("row1", np.int64(a["first_row"] + a["rows"])),
        const("col0", np.int64(a["first_col"])), const("col1", np.int64(a["first_col"] + a["cols"])),
        const("one", np.int64(1)), const("n", np.int64(n)),
        const("axis0", np.array([0], np.int64)), const("axis1", np.array([1], np.int64)),
        helper.make_node("Range", [p + "row0", p + "row1", p + "one"], [p + "r"]),
        helper.make_node("Range", [p + "col0", p + "col1", p + "one"], [p + "c"]),
        helper.make_node("Unsqueeze", [p + "r", p + "axis1"], [p + "r2"]),
        helper.make_node("Unsqueeze", [p + "c", p + "axis0"], [p + "c2"]),
        helper.make_node("Mul", [p + "r2", p + "c2"], [p + "rc"]),
        helper.make_node("Mod", [p + "rc", p + "n"], [p + "turns"]),
        helper.make_node("Cast", [p + "turns"], [p + "turns_f"], to=TensorProto.FLOAT),
        const("step", np.float32(2 * math.pi / n)),
        helper.make_node("Mul", [p + "turns_f", p + "step"], [p + "angle"]),
        helper.make_node("Sin" if a["sine"] else "Cos", [p + "angle"], [p + "trig"]),
        const("weight", weight),
        helper.make_node("Mul", [p + "trig", p + "weight"], [node.output[0]]),
    ]


def expand_tables(proto: onnx.ModelProto) -> None:
    """Replaces each `speechcompress::DFTTable` placeholder with the nodes that compute its table,
    and drops the placeholder's domain from the file's opsets."""
    nodes = []
    for node in proto.graph.node:
        nodes += _table_nodes(node) if (node.domain, node.op_type) == (DOMAIN, PLACEHOLDER) else [node]
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    keep = [o for o in proto.opset_import if o.domain != DOMAIN]
    del proto.opset_import[:]
    proto.opset_import.extend(keep)


def block_rfft(blocks: torch.Tensor, window: torch.Tensor, n: int) -> torch.Tensor:
    """Blocks [..., F + 1, n/2] → the `rfft` of frames k = (block k, block k + 1) · window (n
    samples), [..., F, 2, n/2 + 1], as one product with the whole table, the window folded in."""
    return _BlockRFFT.apply(blocks, window, n)


def windowed_irfft(spectrum: torch.Tensor, window: torch.Tensor, n: int) -> torch.Tensor:
    """`irfft(spectrum, n) · window` as one product with the whole table, the window folded in."""
    return _WindowedIRFFT.apply(spectrum, window, n)
