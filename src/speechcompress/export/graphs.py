"""The computation each model family ships as an ONNX graph, written with ops ONNX exports on
inputs of any batch size and length.

- RNNoise and FRCRN: `noisy [B, T] → enhanced [B, T]`, the model's forward with its STFT written
  for ONNX: frames cut by reshaping (`unfold` does not export on a time axis of dynamic length)
  and the FFTs as ONNX's DFT operator (ONNX has no complex tensors and torch's exporter no FFT).
  The networks, band energies, cepstrum and masks are the models' own modules and methods; FRCRN's
  training-time STFT is made of fixed convolutions whose kernels would be 3.3 MB of the file.
- FSMN-VAD: `fbank [B, frames + lookahead, n_mels] → logits [B, frames, classes]`: the network from
  its log-mel input (CMVN, LFR stacking, layers), as FunASR's runtime also feeds its model features;
  `features.fbank.padded_fbank` computes that input from audio, for the model and the runtime alike.
- Streaming steps: RNNoise's one hop (`RNNoiseStepGraph`), its state explicit; FSMN-VAD's block of
  frames with its FSMN caches explicit (`FSMNVADStepGraph`), in FunASR's form.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from speechcompress.models.complex import sqrt_hann
from speechcompress.models.frcrn import FRCRN, complex_multiply
from speechcompress.models.fsmn_vad import FSMNVAD
from speechcompress.models.rnnoise import RNNoise


@dataclass(frozen=True)
class GraphSpec:
    """What an exported graph takes and gives, as the runtime needs to know it."""

    family: str  # "rnnoise", "frcrn", "fsmn_vad"
    kind: str  # "denoiser" (waveform → enhanced) or "vad" (fbank → logits)
    input_name: str
    output_name: str


class _RFFT(torch.autograd.Function):
    """`torch.fft.rfft` of the last axis (length n, zero-padded) as a real tensor [..., n//2 + 1, 2]
    (real, imaginary); exported as ONNX's DFT operator."""

    @staticmethod
    def forward(ctx, frames: torch.Tensor, n: int) -> torch.Tensor:
        return torch.view_as_real(torch.fft.rfft(frames, n=n, dim=-1))

    @staticmethod
    def symbolic(g, frames, n: int):
        signal = g.op("Unsqueeze", frames, g.op("Constant", value_t=torch.tensor([-1])))
        return g.op("DFT", signal, g.op("Constant", value_t=torch.tensor(n)), axis_i=-2, onesided_i=1)


class _IRFFT(torch.autograd.Function):
    """`torch.fft.irfft` (length n) of a spectrum given as [..., bins, 2]; exported as ONNX's inverse DFT."""

    @staticmethod
    def forward(ctx, spectrum: torch.Tensor, n: int) -> torch.Tensor:
        return torch.fft.irfft(torch.view_as_complex(spectrum.contiguous()), n=n, dim=-1)

    @staticmethod
    def symbolic(g, spectrum, n: int):
        signal = g.op("DFT", spectrum, g.op("Constant", value_t=torch.tensor(n)), axis_i=-2, inverse_i=1, onesided_i=1)
        return g.op("Squeeze", signal, g.op("Constant", value_t=torch.tensor([-1])))


def _frames(padded: torch.Tensor, hop: int, per_frame: int) -> torch.Tensor:
    """[B, T] with T a multiple of hop → [B, T/hop − per_frame + 1, per_frame·hop]: frames of
    `per_frame` hops, one hop apart."""
    blocks = padded.reshape(padded.shape[0], -1, hop)
    last = per_frame - 1
    return torch.cat([blocks[:, i : i - last] if i < last else blocks[:, last:] for i in range(per_frame)], dim=-1)


def _overlap_add(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """[B, F, k·hop] frames one hop apart → [B, (F + k − 1)·hop], each hop the sum of the frames over it."""
    batch, count, size = frames.shape
    per_frame = size // hop
    blocks = frames.reshape(batch, count, per_frame, hop)
    out = sum(F.pad(blocks[:, :, i], (0, 0, i, per_frame - 1 - i)) for i in range(per_frame))
    return out.reshape(batch, -1)


class RNNoiseGraph(nn.Module):
    """RNNoise's forward with ONNX's DFT: equal to `model(noisy).enhanced` up to rounding."""

    def __init__(self, model: RNNoise) -> None:
        super().__init__()
        self.model = model

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        model, hop = self.model, self.model.hop
        length = noisy.shape[1]
        blocks = (length + hop - 1) // hop  # the frames of `stft`: one hop of zeros in front, look-ahead behind
        padded = F.pad(noisy.float(), (hop, (blocks + 2) * hop - length))
        spectrum = _RFFT.apply(_frames(padded, hop, 2) * model.window, 2 * hop)  # [B, blocks + 2, bins, 2]
        energy = spectrum.square().sum(-1) * 32768.0**2 @ model.filterbank.T
        cepstrum = model.cepstrum(energy)
        history = model._silence_cepstrum(1).expand_as(cepstrum[:, :2])
        features = F.pad(model._with_deltas(cepstrum, history), (0, 0, 3, 0))
        gains, _, _ = model._network(features)
        spread = (gains @ model.filterbank).unsqueeze(-1)
        chunks = _IRFFT.apply(spectrum[:, :-1] * spread, 2 * hop) * model.window
        return _overlap_add(chunks, hop)[:, hop : hop + length]


def _gru_cell(gru: nn.GRU, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One step of a one-layer `gru` ([B, in], [B, H] → [B, H]) written as matrix products (exported
    as MatMul, which dynamic INT8 quantizes, where ONNX's GRU operator stays fp32)."""
    gi = torch.matmul(x, gru.weight_ih_l0.t()) + gru.bias_ih_l0
    gh = torch.matmul(h, gru.weight_hh_l0.t()) + gru.bias_hh_l0
    i_r, i_z, i_n = gi.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return (1 - z) * n + z * h


def _conv_frames(conv: nn.Conv1d, frames: torch.Tensor) -> torch.Tensor:
    """An unpadded Conv1d along time on a few frames [B, L, in] → [B, L − k + 1, out], as one matrix
    product of the stacked windows (MatMul in the graph)."""
    k = conv.kernel_size[0]
    windows = torch.cat([frames[:, i : frames.shape[1] - (k - 1 - i)] for i in range(k)], dim=-1)  # [B, L−k+1, k·in]
    matrix = conv.weight.permute(2, 1, 0).reshape(k * conv.in_channels, conv.out_channels)  # rows tap-major
    return torch.matmul(windows, matrix) + conv.bias


class RNNoiseStepGraph(nn.Module):
    """RNNoise's `step` with every piece of state an input and an output, of fixed shape.

    Every state is zeros at the start of a stream. `started` (0 at the start, 1 after the first hop)
    stands for the step's first call, which only fills the feature context: with it 0 the output
    and the overlap and GRU states are held and the cepstral history is silence's, so feeding hops
    through this graph equals `model.step` hop for hop.
    """

    STATE = ("previous_chunk", "cepstra", "features", "pending", "overlap", "gru1", "gru2", "gru3", "started")

    def __init__(self, model: RNNoise) -> None:
        super().__init__()
        self.model = model

    def state_shapes(self) -> dict[str, list[int]]:
        """Shapes of one stream's state (batch 1), zeros at its start."""
        m = self.model
        return {"previous_chunk": [1, m.hop], "cepstra": [1, 2, m.n_bands], "features": [1, 4, m.n_features],
                "pending": [1, m.hop + 1, 2], "overlap": [1, m.hop], **{f"gru{i + 1}": [1, size] for i, size in
                enumerate(list(m.sizes.values())[2:])}, "started": [1, 1]}

    def forward(self, chunk, previous_chunk, cepstra, features, pending, overlap, gru1, gru2, gru3, started):
        m, hop = self.model, self.model.hop
        spectrum = _RFFT.apply(torch.cat([previous_chunk, chunk], dim=-1) * m.window, 2 * hop)  # [B, bins, 2]
        energy = (spectrum.square().sum(-1) * 32768.0**2 @ m.filterbank.T).unsqueeze(1)
        cepstrum = m.cepstrum(energy)  # [B, 1, bands]
        # before the first hop the cepstral history is that of silence (as `init_state` has it), so
        # that every state of a new stream is zeros
        cepstra = started.unsqueeze(-1) * cepstra + (1 - started.unsqueeze(-1)) * m._silence_cepstrum(1)
        context = torch.cat([features, m._with_deltas(cepstrum, cepstra)], dim=1)  # [B, 5, features]
        x = torch.tanh(_conv_frames(m.conv2, torch.tanh(_conv_frames(m.conv1, context))))[:, 0]  # [B, cond]
        h1 = _gru_cell(m.gru1, x, gru1)
        h2 = _gru_cell(m.gru2, h1, gru2)
        h3 = _gru_cell(m.gru3, h2, gru3)
        joined = torch.cat([x, h1, h2, h3], dim=-1)
        gains = torch.sigmoid(torch.matmul(joined, m.dense_out.weight.t()) + m.dense_out.bias)
        time = _IRFFT.apply(pending * (gains @ m.filterbank).unsqueeze(-1), 2 * hop) * m.window
        out = started * (overlap + time[:, :hop])

        def held(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
            return started * new + (1 - started) * old

        return (out, chunk, torch.cat([cepstra[:, 1:], cepstrum], dim=1), context[:, 1:], spectrum,
                held(time[:, hop:], overlap), held(h1, gru1), held(h2, gru2), held(h3, gru3), torch.ones_like(started))


class FRCRNGraph(nn.Module):
    """FRCRN's forward with its STFT as ONNX's DFT: equal to `model(noisy).enhanced` up to rounding."""

    def __init__(self, model: FRCRN) -> None:
        super().__init__()
        self.model = model
        stft = model.stft
        window = sqrt_hann(stft.win_length)
        overlap = (window**2).reshape(-1, stft.hop_length).sum(0).mean()  # as ConvSTFT's synthesis divides by it
        self.register_buffer("analysis_window", window.float(), persistent=False)
        self.register_buffer("synthesis_window", (window / overlap).float(), persistent=False)

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        model, stft = self.model, self.model.stft
        hop, win = stft.hop_length, stft.win_length
        length = noisy.shape[1]
        front, back = stft.padding(length)
        frames = _frames(F.pad(noisy.float(), (front, back)), hop, win // hop) * self.analysis_window
        spectrum = _RFFT.apply(frames, stft.n_fft).permute(0, 3, 2, 1)  # [B, 2, bins, frames], as ConvSTFT's
        stage1 = model.unet1(spectrum)
        stage2 = model.unet2(stage1)
        masked = complex_multiply(spectrum, torch.tanh(stage1) + torch.tanh(stage2))
        chunks = _IRFFT.apply(masked.permute(0, 3, 2, 1), stft.n_fft)[..., :win] * self.synthesis_window
        return _overlap_add(chunks, hop)[:, front : front + length]


class FSMNVADGraph(nn.Module):
    def __init__(self, model: FSMNVAD) -> None:
        super().__init__()
        self.model = model

    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        return self.model.from_features(fbank).logits


PROBABILITY_MARGIN = 1e-6  # FSMNVADStepGraph's probabilities stay this far from 0 and 1


class FSMNVADStepGraph(nn.Module):
    """FSMN-VAD's network on a block of frames with each memory's history explicit, as FunASR's
    runtime (`funasr_onnx.Fsmn_vad`) calls it:

        speech [B, n, lfr_m · n_mels]   LFR-stacked, CMVN-normalised features (the runtime's front-end)
        in_cache{i} [B, proj_i, past, 1]  layer i's last `past` projected frames, zeros at the start
      → probabilities [B, n, classes] (softmax, kept at least PROBABILITY_MARGIN from 0 and 1;
        class 0 = non-speech), out_cache{i}

    Blocks of any length, fed in order with the caches passed on, give what one block of them all
    gives. Needs causal memories (rorder = 0): a cache holds only the past.
    """

    def __init__(self, model: FSMNVAD) -> None:
        super().__init__()
        memories = [layer.memory for layer in model.layers]
        if any(memory.right is not None for memory in memories):
            raise ValueError("FunASR's step graph needs causal FSMN memories (model.rorder = 0): its caches hold "
                             "only past frames")
        if any(memory.past == 0 for memory in memories):
            raise ValueError("FunASR's step graph needs model.lorder ≥ 2: with lorder = 1 a memory has no history "
                             "to cache")
        self.model = model

    def cache_shapes(self) -> dict[str, list[int]]:
        """{in_cache{i}: [1, proj_i, past, 1]}, in input order."""
        return {f"in_cache{i}": [1, layer.project.out_features, layer.memory.past, 1]
                for i, layer in enumerate(self.model.layers)}

    def forward(self, speech: torch.Tensor, *caches: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.model.input(speech)
        next_caches = []
        for layer, cache in zip(self.model.layers, caches, strict=True):
            frames = torch.cat([cache, layer.project(x).transpose(1, 2).unsqueeze(-1)], dim=2)
            memory = layer.memory.causal(frames).squeeze(-1).transpose(1, 2)
            x = torch.relu(layer.expand(memory))
            next_caches.append(frames[:, :, -layer.memory.past :])
        # FunASR's runtime takes the log of P(non-speech) and of 1 − P(non-speech): a softmax that
        # rounds to exactly 0 or 1 in fp32 would stop it (a math domain error)
        probabilities = self.model.output(x).softmax(-1).clamp(PROBABILITY_MARGIN, 1 - PROBABILITY_MARGIN)
        return (probabilities, *next_caches)


# each family's whole-signal graph and what it takes and gives; the model names its family (`model.family`)
GRAPHS = {
    "rnnoise": (RNNoiseGraph, GraphSpec("rnnoise", "denoiser", "noisy", "enhanced")),
    "frcrn": (FRCRNGraph, GraphSpec("frcrn", "denoiser", "noisy", "enhanced")),
    "fsmn_vad": (FSMNVADGraph, GraphSpec("fsmn_vad", "vad", "fbank", "logits")),
}
STEP_SPEC = GraphSpec("rnnoise", "denoiser", "chunk", "enhanced_chunk")  # RNNoiseStepGraph's


def graph_for(model: nn.Module) -> tuple[nn.Module, GraphSpec]:
    """The module to export for `model` (a family of `GRAPHS`), in eval mode, and what its graph takes and gives."""
    family = getattr(model, "family", type(model).__name__)
    if family not in GRAPHS:
        raise ValueError(f"no ONNX graph for {family}: speechcompress writes graphs of {', '.join(GRAPHS)}")
    graph, spec = GRAPHS[family]
    return graph(model).eval(), spec
