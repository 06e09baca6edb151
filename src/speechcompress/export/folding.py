"""FRCRN rewritten for deployment, computing the same function with fewer and faster layers.

- **BatchNorm folded.** In inference a batch norm is a per-channel scale and shift, which the
  conv before it absorbs (weights scaled per output channel, the bias shifted): one layer less in
  each encoder and decoder, and a static INT8 file quantizes the folded weights, as they run.
- **Transposed convs as convs.** ONNX Runtime has no INT8 kernel for ConvTranspose: a QDQ file
  dequantizes it back to fp32 on every call (measured). A transposed conv of stride 2 along
  frequency is a plain conv whose output channels hold the two phases of the output (even and odd
  bins), interleaved afterwards (depth-to-space along frequency); its stride-1 time axis is a conv
  with the kernel flipped. So FRCRN's decoders become Conv nodes, which INT8 reaches.

`for_deployment(model)` returns such a copy; the export graph (`graphs.FRCRNGraph`) runs it, and
its parity with the original model is checked as every export's is.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from speechcompress.models.complex import ComplexConvTranspose2d
from speechcompress.models.frcrn import FRCRN, ConvBlock


class ConvTransposeAsConv(nn.Module):
    """`F.conv_transpose2d(x, weight, bias, stride=(2, 1), padding=(0, time_padding))` as two convs
    and an interleave. weight: [in, out, kf, kt] (torch's transposed layout), kf ≥ 2,
    time_padding ≤ kt − 1. Output row 2m + r (phase r) is Σ_j x[m − j] · weight[:, :, r + 2j]: a
    conv of x with the kernel rows r, r + 2, … reversed, over x padded with zeros above (one conv
    per phase, so an odd kf costs no row of zeros in the file)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, time_padding: int) -> None:
        super().__init__()
        kf, kt = weight.shape[2:]
        if kf < 2:
            raise ValueError(f"a transposed conv of {kf} frequency taps has no second phase")
        self.kf, self.taps = kf, math.ceil(kf / 2)
        self.time_padding = kt - 1 - time_padding  # a stride-1 transposed conv is a conv padded k − 1 − p, kernel flipped
        # phase r's kernel: rows r, r + 2, … flipped (and the time axis flipped), as [out, in, rows, kt]
        self.even = nn.Conv2d(weight.shape[0], weight.shape[1], (self.taps, kt))
        self.odd = nn.Conv2d(weight.shape[0], weight.shape[1], (kf // 2, kt))
        for conv, phase in ((self.even, 0), (self.odd, 1)):
            conv.weight = nn.Parameter(weight[:, :, phase::2].flip(2, 3).transpose(0, 1).contiguous())
            conv.bias = nn.Parameter(bias.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        above = self.taps - 1  # both phases read rows m − taps + 1 … m of x; the odd one a row less
        padded = F.pad(x, (self.time_padding, self.time_padding, above, above))
        even = self.even(padded)  # [B, out, bins + taps − 1, T]: rows 0, 2, 4, …
        odd = self.odd(padded[:, :, 1:] if self.kf % 2 else padded)  # rows 1, 3, …; one fewer for an odd kf
        odd = F.pad(odd, (0, 0, 0, even.shape[2] - odd.shape[2]))  # (that last row is cut below)
        interleaved = torch.stack([even, odd], dim=3).flatten(2, 3)  # [B, out, 2 · rows, T]
        return interleaved[:, :, : 2 * (x.shape[2] - 1) + self.kf]


def _folded(block: ConvBlock) -> nn.Module:
    """The block's conv with its batch norm folded in (eval statistics)."""
    conv, norm = block.conv, block.norm
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    shift = norm.bias - norm.running_mean * scale
    weight, bias = conv.block_weight(), conv.block_bias()
    bias = shift if bias is None else bias * scale + shift
    if isinstance(conv, ComplexConvTranspose2d):
        if conv.stride != (2, 1) or conv.padding[0] != 0:
            raise ValueError(f"a transposed conv of stride {conv.stride}, padding {conv.padding} is not FRCRN's decoder")
        return ConvTransposeAsConv(weight * scale[None, :, None, None], bias, conv.padding[1])
    folded = nn.Conv2d(weight.shape[1], weight.shape[0], tuple(weight.shape[2:]), stride=conv.stride,
                       padding=conv.padding)
    folded.weight = nn.Parameter(weight * scale[:, None, None, None])
    folded.bias = nn.Parameter(bias)
    return folded


@torch.no_grad()
def for_deployment(model: FRCRN) -> FRCRN:
    """A copy of `model` (in eval mode) with every block's batch norm folded into its conv and every
    transposed conv rewritten as a conv; see the module docstring."""
    model = copy.deepcopy(model).eval()
    for block in [m for m in model.modules() if isinstance(m, ConvBlock)]:
        block.conv, block.norm = _folded(block), nn.Identity()
    return model
