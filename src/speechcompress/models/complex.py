"""Complex-valued layers on real tensors, and an STFT made of fixed convolutions.

A complex feature map with C channels is a real tensor [B, 2C, F, T]: the C real parts, then the
C imaginary parts. Every layer here is real arithmetic on such tensors, so the networks built from
them are real-valued end to end (ONNX exports them as ordinary convolutions).

A complex convolution with weight W = Wr + i·Wi on x = xr + i·xi is

    re = Wr*xr − Wi*xi,   im = Wr*xi + Wi*xr,

computed here as one real convolution with the block weight [[Wr, −Wi], [Wi, Wr]] on [xr; xi].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from speechcompress.models.fsmn import DeepFSMN


def complex_cat(*maps: torch.Tensor) -> torch.Tensor:
    """Complex maps [B, 2Cᵢ, ...] side by side as one map [B, 2ΣCᵢ, ...] (real parts first, then imaginary)."""
    halves = [m.chunk(2, dim=1) for m in maps]
    return torch.cat([h[0] for h in halves] + [h[1] for h in halves], dim=1)


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


class _ComplexConv(nn.Module):
    """The real and imaginary weights and biases of a complex conv (transposed or not), each
    initialised as torch's real conv of the same shape initialises its own."""

    transposed = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int] | int,
                 stride: tuple[int, int] | int = 1, padding: tuple[int, int] | int = 0, bias: bool = True) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = _pair(kernel_size), _pair(stride), _pair(padding)
        # torch's layouts: [out, in, kf, kt] for a conv, [in, out, kf, kt] for a transposed conv
        shape = ((in_channels, out_channels) if self.transposed else (out_channels, in_channels)) + self.kernel_size
        self.weight_re = nn.Parameter(torch.empty(shape))
        self.weight_im = nn.Parameter(torch.empty(shape))
        self.bias_re = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.bias_im = nn.Parameter(torch.empty(out_channels)) if bias else None
        bound = 1.0 / math.sqrt(shape[1] * math.prod(self.kernel_size))  # torch's fan-in: weight.size(1) × kernel
        for weight in (self.weight_re, self.weight_im):
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
        for b in (self.bias_re, self.bias_im):
            if b is not None:
                nn.init.uniform_(b, -bound, bound)

    def block_weight(self) -> torch.Tensor:
        wr, wi = self.weight_re, self.weight_im
        if self.transposed:  # [in, out, ...]: rows are inputs, so xr feeds (Wr, Wi) and xi feeds (−Wi, Wr)
            return torch.cat([torch.cat([wr, wi], 1), torch.cat([-wi, wr], 1)], 0)
        return torch.cat([torch.cat([wr, -wi], 1), torch.cat([wi, wr], 1)], 0)

    def block_bias(self) -> torch.Tensor | None:
        # each of the two real convs of the published layer carries its bias: re gets br − bi, im br + bi
        if self.bias_re is None:
            return None
        return torch.cat([self.bias_re - self.bias_im, self.bias_re + self.bias_im])


class ComplexConv2d(_ComplexConv):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.block_weight(), self.block_bias(), self.stride, self.padding)


class ComplexConvTranspose2d(_ComplexConv):
    transposed = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose2d(x, self.block_weight(), self.block_bias(), self.stride, self.padding)


class ComplexBatchNorm2d(nn.BatchNorm2d):
    """Independent batch norms of the real and of the imaginary parts (as the published FRCRN): on
    the [re; im] layout that is exactly one BatchNorm2d over 2C channels."""

    def __init__(self, channels: int) -> None:
        super().__init__(2 * channels)


class ComplexSqueezeExcitation(nn.Module):
    """Squeeze-excitation of a complex map: per frame, the mean over frequency of each channel goes
    through two small MLPs ending in sigmoids (real and imaginary weights), combined as a complex
    product; the real part of the result scales the real channels, the imaginary part the imaginary
    ones (as the published layer). The published layer pools over the whole spectrogram, frequency and time, so its
    output at any frame depends on the whole file; pooling per frame keeps the network's time
    context finite, which is what lets windowed inference of a long file equal whole-file inference
    away from the seams."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        squeezed = max(1, channels // reduction)

        def mlp() -> nn.Sequential:
            return nn.Sequential(nn.Linear(channels, squeezed), nn.ReLU(), nn.Linear(squeezed, channels), nn.Sigmoid())

        self.fc_re, self.fc_im = mlp(), mlp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=2).transpose(1, 2)  # [B, T, 2C]
        zr, zi = pooled.chunk(2, dim=-1)
        scale_re = self.fc_re(zr) - self.fc_im(zi)
        scale_im = self.fc_re(zi) + self.fc_im(zr)
        return x * torch.cat([scale_re, scale_im], dim=-1).transpose(1, 2).unsqueeze(2)


class ComplexFSMN(nn.Module):
    """`layers` complex deep-FSMN units along frequency (`axis="frequency"`: the sequence is the
    bins of each frame, the features the channels) or along time (`axis="time"`: the sequence is
    the frames, the features channels × bins). Each unit is two real units f_re, f_im combined as
    a complex product: re = f_re(xr) − f_im(xi), im = f_re(xi) + f_im(xr)."""

    def __init__(self, features: int, hidden: int, lorder: int, axis: str, layers: int = 1) -> None:
        super().__init__()
        if axis not in ("frequency", "time"):
            raise ValueError(f"ComplexFSMN axis must be 'frequency' or 'time', not {axis!r}")
        self.axis = axis
        self.units = nn.ModuleList(
            nn.ModuleDict({"re": DeepFSMN(features, hidden, lorder), "im": DeepFSMN(features, hidden, lorder)})
            for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels2, bins, frames = x.shape
        z = torch.cat(x.chunk(2, dim=1))  # [xr; xi] along the batch: [2B, C, bins, frames]
        if self.axis == "time":  # features = channels × bins, sequence = frames: [2B, C·bins, frames, 1]
            z = z.reshape(2 * batch, -1, frames, 1)
        for unit in self.units:
            # one call per real unit on [xr; xi] gives f(xr) and f(xi)
            f_re, f_im = unit["re"].along(z).chunk(2), unit["im"].along(z).chunk(2)
            z = torch.cat([f_re[0] - f_im[1], f_re[1] + f_im[0]])
        return torch.cat(z.reshape(2 * batch, channels2 // 2, bins, frames).chunk(2), dim=1)


# --- the STFT as fixed convolutions -------------------------------------------------------------
def sqrt_hann(length: int) -> torch.Tensor:
    """The square root of the periodic Hann window: its square overlap-adds to a constant at any
    hop that divides half its length, so analysis and synthesis with it reconstruct exactly."""
    return torch.hann_window(length, periodic=True, dtype=torch.float64).sqrt()


class ConvSTFT(nn.Module):
    """STFT and inverse as strided convolutions with fixed DFT kernels (buffers, not parameters).

    `forward`: [B, T] → [B, 2, bins, frames] (real, imaginary), bins = n_fft // 2 + 1. The signal is
    padded with win_length − hop_length zeros in front and enough behind that every sample lies in
    win_length / hop_length full frames; `inverse` overlap-adds the windowed inverse DFTs, divides
    by the window's constant overlap sum and crops: inverse(forward(x)) = x up to rounding.
    Both run in fp32, under autocast too, so the spectrum the mask multiplies keeps full precision.
    """

    def __init__(self, win_length: int = 640, hop_length: int = 320, n_fft: int = 640) -> None:
        super().__init__()
        if n_fft < win_length or win_length % hop_length or (win_length // hop_length) % 2:
            raise ValueError(f"ConvSTFT needs n_fft ≥ win_length and win_length an even multiple of hop_length "
                             f"(got win_length={win_length}, hop_length={hop_length}, n_fft={n_fft})")
        self.win_length, self.hop_length, self.n_fft = win_length, hop_length, n_fft
        self.bins = n_fft // 2 + 1
        window = sqrt_hann(win_length)
        n = torch.arange(win_length, dtype=torch.float64)
        k = torch.arange(self.bins, dtype=torch.float64)
        angle = 2 * math.pi * k[:, None] * n[None, :] / n_fft  # [bins, win]
        analysis = torch.cat([torch.cos(angle), -torch.sin(angle)]) * window
        # x[n] = (1/N) Σ_k c_k (Re X_k cos − Im X_k sin), c_k = 2 for the bins that stand for a conjugate pair
        weight = torch.full((self.bins,), 2.0, dtype=torch.float64)
        weight[0] = 1.0
        if n_fft % 2 == 0:
            weight[-1] = 1.0
        synthesis = torch.cat([torch.cos(angle), -torch.sin(angle)]) * torch.cat([weight, weight])[:, None] / n_fft
        overlap_sum = (window**2).reshape(-1, hop_length).sum(0)  # the squared window overlap-added over one hop
        synthesis = synthesis * window / overlap_sum.mean()
        self.register_buffer("analysis", analysis.float().unsqueeze(1), persistent=False)  # [2·bins, 1, win]
        self.register_buffer("synthesis", synthesis.float().unsqueeze(1), persistent=False)

    def padding(self, length: int) -> tuple[int, int]:
        front = self.win_length - self.hop_length
        back = front + (-length) % self.hop_length
        return front, back

    def frames(self, length: int) -> int:
        front, back = self.padding(length)
        return (length + front + back - self.win_length) // self.hop_length + 1

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        with torch.autocast(wave.device.type, enabled=False):
            padded = F.pad(wave.float().unsqueeze(1), self.padding(wave.shape[-1]))
            spec = F.conv1d(padded, self.analysis, stride=self.hop_length)  # [B, 2·bins, frames]
        return spec.reshape(wave.shape[0], 2, self.bins, -1)

    def inverse(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """[B, 2, bins, frames] → [B, length]."""
        with torch.autocast(spec.device.type, enabled=False):
            flat = spec.float().reshape(spec.shape[0], 2 * self.bins, -1)
            wave = F.conv_transpose1d(flat, self.synthesis, stride=self.hop_length).squeeze(1)
        front = self.padding(length)[0]
        return wave[:, front : front + length]
