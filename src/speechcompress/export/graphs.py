"""The computation each model family ships as an ONNX graph, written with ops ONNX exports on
inputs of any batch size and length.

- FRCRN: `noisy [B, T] → enhanced [B, T]`, its conv STFT inside the graph: the model's own forward.
- RNNoise: `noisy [B, T] → enhanced [B, T]`, the model's forward with the FFT written as products
  with DFT matrices and the frames cut by reshaping (ONNX has no complex tensors, and `unfold`
  does not export on a time axis of dynamic length). Band energies, cepstrum, network and gains
  are the model's own methods.
- FSMN-VAD: `fbank [B, frames + lookahead, n_mels] → logits [B, frames, classes]`: the network from
  its log-mel input (CMVN, LFR stacking, layers), as FunASR's runtime also feeds its model features;
  `features.fbank.padded_fbank` computes that input from audio, for the model and the runtime alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from speechcompress.models.frcrn import FRCRN
from speechcompress.models.fsmn_vad import FSMNVAD
from speechcompress.models.rnnoise import RNNoise


@dataclass(frozen=True)
class GraphSpec:
    """What an exported graph takes and gives, as the runtime needs to know it."""

    family: str  # "rnnoise", "frcrn", "fsmn_vad"
    kind: str  # "denoiser" (waveform → enhanced) or "vad" (fbank → logits)
    input_name: str
    output_name: str


class _Enhanced(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        return self.model(noisy).enhanced


class RNNoiseGraph(nn.Module):
    """RNNoise's forward in real arithmetic: equal to `model(noisy).enhanced` up to rounding."""

    def __init__(self, model: RNNoise) -> None:
        super().__init__()
        self.model = model
        size, bins = 2 * model.hop, model.hop + 1
        angle = 2 * math.pi * torch.arange(size, dtype=torch.float64)[:, None] * torch.arange(bins)[None, :] / size
        # inverse real DFT: x[t] = (1/N) Σ_k c_k (Re X_k cos − Im X_k sin), c_k = 2 but for DC and Nyquist
        pairs = torch.full((bins,), 2.0, dtype=torch.float64)
        pairs[0] = pairs[-1] = 1.0
        for name, table in (("dft_re", angle.cos()), ("dft_im", -angle.sin()),
                            ("idft_re", (angle.cos() * pairs / size).T), ("idft_im", (-angle.sin() * pairs / size).T)):
            self.register_buffer(name, table.float(), persistent=False)

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        model, hop = self.model, self.model.hop
        length = noisy.shape[1]
        blocks = (length + hop - 1) // hop  # the frames of `stft`: one hop of zeros in front, look-ahead behind
        padded = F.pad(noisy.float(), (hop, (blocks + 2) * hop - length)).reshape(noisy.shape[0], -1, hop)
        frames = torch.cat([padded[:, :-1], padded[:, 1:]], dim=-1) * model.window  # [B, blocks + 2, 2·hop]
        re, im = frames @ self.dft_re, frames @ self.dft_im
        energy = (re.square() + im.square()) * 32768.0**2 @ model.filterbank.T
        cepstrum = model.cepstrum(energy)
        history = model._silence_cepstrum(1).expand_as(cepstrum[:, :2])
        features = F.pad(model._with_deltas(cepstrum, history), (0, 0, 3, 0))
        gains, _, _ = model._network(features)
        spread = gains @ model.filterbank
        chunks = (re[:, :-1] * spread @ self.idft_re + im[:, :-1] * spread @ self.idft_im) * model.window
        out = chunks[:, 1:, :hop] + chunks[:, :-1, hop:]  # overlap-add: each hop from two frames
        return out.reshape(noisy.shape[0], -1)[:, :length]


class FSMNVADGraph(nn.Module):
    def __init__(self, model: FSMNVAD) -> None:
        super().__init__()
        self.model = model

    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        return self.model.from_features(fbank).logits


def graph_for(model: nn.Module) -> tuple[nn.Module, GraphSpec]:
    """The module to export for `model`, in eval mode, and what its graph takes and gives."""
    if isinstance(model, RNNoise):
        graph, spec = RNNoiseGraph(model), GraphSpec("rnnoise", "denoiser", "noisy", "enhanced")
    elif isinstance(model, FRCRN):
        graph, spec = _Enhanced(model), GraphSpec("frcrn", "denoiser", "noisy", "enhanced")
    elif isinstance(model, FSMNVAD):
        graph, spec = FSMNVADGraph(model), GraphSpec("fsmn_vad", "vad", "fbank", "logits")
    else:
        raise ValueError(f"no ONNX export for {type(model).__name__}: speechcompress exports RNNoise, FRCRN and FSMNVAD")
    return graph.eval(), spec
