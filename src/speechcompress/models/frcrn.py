"""FRCRN (Zhao et al., ICASSP 2022): two stacked complex UNets that estimate a complex ratio mask.

waveform → conv STFT → [B, 2, bins, frames] → UNet₁ → UNet₂ (on UNet₁'s pre-tanh output) →
mask = tanh(UNet₁) + tanh(UNet₂) ∈ (−2, 2) + i(−2, 2) → noisy spectrum × mask (complex product)
→ inverse conv STFT.

Each UNet (all maps complex, [B, 2C, bins, frames]):
- encoders: complex conv (stride 2 in frequency, 1 in time; time padded by k_t − 1 on both
  sides, so the map grows by k_t − 1 frames), complex BN, LeakyReLU; a complex FSMN along
  frequency before every encoder but the first; complex squeeze-excitation on each encoder's
  output feeds the skip connections;
- bottleneck: two complex FSMN units along time;
- decoders: complex transposed conv (kernels chosen so each output has exactly its skip's bins),
  complex BN, LeakyReLU, then a complex FSMN along frequency and SE (no SE after the last two),
  concatenated with the skip; the last decoder outputs one complex channel, which a 1×1 complex
  conv maps to the UNet output.

With the published settings (640-point STFT, 128 channels, kernels (5, 2) × 6 then (2, 2),
FSMN order 20 and 128 hidden units, SE reduction 8) the model has 12,841,236 parameters. The
published code reports 13,141,844: it also builds, per UNet, an FSMN before the first encoder, an
FSMN after the last decoder and an SE on the last-but-one decoder, which its forward never calls
(150,304 parameters per UNet). Each encoder-decoder pair adds a frame of look-ahead and each time
FSMN looks back fsmn_order − 1 frames: the network is non-causal and is not streamed; long files go
through `speechcompress.inference` in overlapping windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from speechcompress.models.complex import (
    ComplexBatchNorm2d,
    ComplexConv2d,
    ComplexConvTranspose2d,
    ComplexFSMN,
    ComplexSqueezeExcitation,
    ConvSTFT,
    complex_cat,
)

PUBLISHED_ENCODER_KERNELS = ((5, 2),) * 6 + ((2, 2),)


@dataclass
class FRCRNOutput:
    enhanced: torch.Tensor  # [B, T] waveform
    mask: torch.Tensor  # [B, 2, bins, frames]: real and imaginary parts of the complex ratio mask
    spectrum: torch.Tensor  # [B, 2, bins, frames]: the noisy input's spectrum (the loss's mask target needs it)


def complex_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(a_re + i a_im)(b_re + i b_im) for [B, 2, ...] tensors."""
    ar, ai = a.unbind(1)
    br, bi = b.unbind(1)
    return torch.stack([ar * br - ai * bi, ar * bi + ai * br], dim=1)


class ConvBlock(nn.Module):
    """A complex conv (or transposed conv), its batch norm, LeakyReLU: each encoder and decoder."""

    def __init__(self, conv: nn.Module, channels: int) -> None:
        super().__init__()
        self.conv, self.norm, self.act = conv, ComplexBatchNorm2d(channels), nn.LeakyReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


def frequency_sizes(bins: int, kernels: list[tuple[int, int]]) -> list[int]:
    """Bins at the input and after each stride-2 encoder."""
    sizes = [bins]
    for kernel_f, _ in kernels:
        sizes.append((sizes[-1] - kernel_f) // 2 + 1)
    if sizes[-1] < 1:
        raise ValueError(f"encoder_kernels {kernels} leave no frequency bins of {bins}: use fewer or smaller kernels")
    return sizes


class ComplexUNet(nn.Module):
    def __init__(self, bins: int, channels: int, kernels: list[tuple[int, int]], fsmn_order: int,
                 fsmn_hidden: int, se_reduction: int) -> None:
        super().__init__()
        sizes = frequency_sizes(bins, kernels)
        depth = len(kernels)
        self.encoders = nn.ModuleList(
            ConvBlock(ComplexConv2d(1 if i == 0 else channels, channels, (kf, kt), stride=(2, 1), padding=(0, kt - 1)),
                       channels) for i, (kf, kt) in enumerate(kernels))
        self.encoder_fsmn = nn.ModuleList(ComplexFSMN(channels, fsmn_hidden, fsmn_order, "frequency")
                                          for _ in range(depth - 1))
        self.encoder_se = nn.ModuleList(ComplexSqueezeExcitation(channels, se_reduction) for _ in range(depth))
        self.bottleneck = ComplexFSMN(channels * sizes[-1], fsmn_hidden, fsmn_order, "time", layers=2)
        decoders = []
        for i in range(depth):  # decoder i mirrors encoder depth − 1 − i and restores its input's bins
            level = depth - 1 - i
            kernel_f = sizes[level] - 2 * (sizes[level + 1] - 1)
            kernel_t = kernels[level][1]
            inputs = channels if i == 0 else 2 * channels  # after the first, the skip is concatenated
            outputs = 1 if i == depth - 1 else channels
            decoders.append(ConvBlock(ComplexConvTranspose2d(inputs, outputs, (kernel_f, kernel_t), stride=(2, 1),
                                                              padding=(0, kernel_t - 1)), outputs))
        self.decoders = nn.ModuleList(decoders)
        self.decoder_fsmn = nn.ModuleList(ComplexFSMN(channels, fsmn_hidden, fsmn_order, "frequency")
                                          for _ in range(depth - 1))
        self.decoder_se = nn.ModuleList(ComplexSqueezeExcitation(channels, se_reduction) for _ in range(depth - 2))
        self.output = ComplexConv2d(1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 2, bins, frames] → [B, 2, bins, frames]."""
        skips = []
        for i, encoder in enumerate(self.encoders):
            if i > 0:
                x = self.encoder_fsmn[i - 1](x)
            x = encoder(x)
            skips.append(self.encoder_se[i](x))
        x = self.bottleneck(x)
        last = len(self.decoders) - 1
        for i, decoder in enumerate(self.decoders):
            x = decoder(x)
            if i == last:
                break
            x = self.decoder_fsmn[i](x)
            if i < last - 1:  # as published: no SE after the last two decoders
                x = self.decoder_se[i](x)
            x = complex_cat(x, skips[last - 1 - i])
        return self.output(x)


class FRCRN(nn.Module):
    family, formats = "frcrn", ("onnx",)  # what it ships as: a whole-signal graph
    size_metric = "size/bytes_onnx"  # the bytes it is judged by: that graph's file

    def __init__(
        self,
        sample_rate: int = 16000,
        win_length: int = 640,
        hop_length: int = 320,
        n_fft: int = 640,
        channels: int = 128,
        encoder_kernels: list[list[int]] | None = None,
        fsmn_order: int = 20,
        fsmn_hidden: int = 128,
        se_reduction: int = 8,
    ) -> None:
        """`encoder_kernels`: (frequency, time) kernel of each encoder, the published seven by default."""
        super().__init__()
        kernels = [tuple(k) for k in (encoder_kernels or PUBLISHED_ENCODER_KERNELS)]
        self.sample_rate = sample_rate
        self.stft = ConvSTFT(win_length, hop_length, n_fft)
        unet = dict(bins=self.stft.bins, channels=channels, kernels=kernels, fsmn_order=fsmn_order,
                    fsmn_hidden=fsmn_hidden, se_reduction=se_reduction)
        self.unet1, self.unet2 = ComplexUNet(**unet), ComplexUNet(**unet)

    def input_config(self) -> dict[str, float]:
        """What a teacher must share with this model to be distilled into it: the same spectrum."""
        return {"sample_rate": self.sample_rate, "win_length": self.stft.win_length,
                "hop_length": self.stft.hop_length, "n_fft": self.stft.n_fft}

    def analysis_spectrum(self, wave: torch.Tensor) -> torch.Tensor:
        """[B, T] → [B, 2, bins, frames] on the frames of `forward`'s mask (the loss's target needs it)."""
        return self.stft(wave)

    def forward(self, noisy: torch.Tensor) -> FRCRNOutput:
        """Noisy waveform [B, T] → enhanced waveform [B, T] and the complex mask."""
        spectrum = self.stft(noisy)
        stage1 = self.unet1(spectrum)
        stage2 = self.unet2(stage1)
        mask = torch.tanh(stage1) + torch.tanh(stage2)
        with torch.autocast(noisy.device.type, enabled=False):  # the product and inverse STFT in fp32
            enhanced = self.stft.inverse(complex_multiply(spectrum, mask.float()), noisy.shape[-1])
        return FRCRNOutput(enhanced, mask, spectrum)
