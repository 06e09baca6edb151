"""The computation each model family ships as an ONNX graph, written with ops ONNX exports on
inputs of any batch size and length.

- RNNoise and FRCRN: `noisy [B, T] → enhanced [B, T]`, the model's forward with its STFT written
  for ONNX: frames cut by reshaping (`unfold` does not export on a time axis of dynamic length)
  and the FFTs as small matrix products (`export.dft`: ONNX has no complex tensors, torch's
  exporter no FFT, and ONNX Runtime's DFT operator is slow at these lengths).
  The networks, band energies, cepstrum and masks are the models' own modules and methods; FRCRN's
  training-time STFT is made of fixed convolutions whose kernels would be 3.3 MB of the file.
- FSMN-VAD: `fbank [B, frames + lookahead, n_mels] → logits [B, frames, classes]`: the network from
  its log-mel input (CMVN, LFR stacking, layers), as FunASR's runtime also feeds its model features;
  `features.fbank.padded_fbank` computes that input from audio, for the model and the runtime alike.
- Streaming steps: RNNoise's K hops per call (`RNNoiseStepGraph`), its state one explicit tensor;
  FSMN-VAD's block of frames with its FSMN caches explicit (`FSMNVADStepGraph`), in FunASR's form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from speechcompress.export import dft
from speechcompress.export.folding import for_deployment
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
    """RNNoise's forward with `export.dft`'s transforms: equal to `model(noisy).enhanced` up to rounding."""

    def __init__(self, model: RNNoise) -> None:
        super().__init__()
        self.model = model

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        model, hop = self.model, self.model.hop
        length = noisy.shape[1]
        blocks = (length + hop - 1) // hop  # the frames of `stft`: one hop of zeros in front, look-ahead behind
        padded = F.pad(noisy.float(), (hop, (blocks + 2) * hop - length))
        spectrum = dft.rfft(_frames(padded, hop, 2) * model.window, 2 * hop)  # [B, blocks + 2, 2, bins]
        energy = spectrum.square().sum(-2) * 32768.0**2 @ model.filterbank.T
        cepstrum = model.cepstrum(energy)
        history = model._silence_cepstrum(1).expand_as(cepstrum[:, :2])
        features = F.pad(model._with_deltas(cepstrum, history), (0, 0, 3, 0))
        gains, _, _ = model._network(features)
        spread = (gains @ model.filterbank).unsqueeze(-2)
        chunks = dft.irfft(spectrum[:, :-1] * spread, 2 * hop) * model.window
        return _overlap_add(chunks, hop)[:, hop : hop + length]


class _GRU(torch.autograd.Function):
    """A one-layer GRU over time-major x [K, B, in] from h [B, H] → (outputs [K, B, H], the last
    state [B, H]). Exported as ONNX's GRU operator: the recurrence inside one kernel, however many hops."""

    @staticmethod
    def forward(ctx, x, h, w_ih, w_hh, b_ih, b_hh, size: int):
        outputs, state = [], h
        for step in x:
            (i_r, i_z, i_n), (h_r, h_z, h_n) = (step @ w_ih.T + b_ih).chunk(3, -1), (state @ w_hh.T + b_hh).chunk(3, -1)
            r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
            state = (1 - z) * torch.tanh(i_n + r * h_n) + z * state
            outputs.append(state)
        return torch.stack(outputs), state

    @staticmethod
    def symbolic(g, x, h, w_ih, w_hh, b_ih, b_hh, size: int):
        def onnx_gates(weight):  # torch orders the gates (r, z, n), ONNX (z, r, h)
            r, z, n = (g.op("Slice", weight, g.op("Constant", value_t=torch.tensor([i * size])),
                            g.op("Constant", value_t=torch.tensor([(i + 1) * size])),
                            g.op("Constant", value_t=torch.tensor([0]))) for i in range(3))
            return g.op("Concat", z, r, n, axis_i=0)

        first, second = (g.op("Constant", value_t=torch.tensor([axis])) for axis in (0, 1))
        w = g.op("Unsqueeze", onnx_gates(w_ih), first)
        r = g.op("Unsqueeze", onnx_gates(w_hh), first)
        bias = g.op("Unsqueeze", g.op("Concat", onnx_gates(b_ih), onnx_gates(b_hh), axis_i=0), first)
        no_lengths = g.op("prim::Constant")  # an omitted optional input: every stream runs all K hops
        no_lengths.setType(torch._C.OptionalType.ofTensor())
        outputs, last = g.op("GRU", x, w, r, bias, no_lengths, g.op("Unsqueeze", h, first),
                             hidden_size_i=size, linear_before_reset_i=1, outputs=2)
        return g.op("Squeeze", outputs, second), g.op("Squeeze", last, first)


HELD = 20.0  # an update gate's input at least this: sigmoid = 1 − 2e-9, which is 1 in fp32


def _with_reset_input(gru: nn.GRU) -> tuple[torch.Tensor, float]:
    """`gru`'s input weights with one more input, a reset, and the value of that input that holds
    the GRU's state for a hop (h' = z·h + (1 − z)·n with z = 1 exactly) whatever its other inputs
    in [−1, 1] and state in [−1, 1]. The reset's weight on each update-gate row is that row's
    largest input weight (1 where the row is zero), so the weight-only INT8 copy's per-row scales
    are the same as without it and the reset's weight is exact in int8."""
    size, w_ih = gru.hidden_size, gru.weight_ih_l0.detach()
    z = slice(size, 2 * size)  # torch's gate order: r, z, n
    reach = (w_ih[z].abs().sum(1) + gru.weight_hh_l0.detach()[z].abs().sum(1)
             + gru.bias_ih_l0.detach()[z].abs() + gru.bias_hh_l0.detach()[z].abs())  # |the gate's input| ≤ reach
    column = torch.zeros(3 * size, 1)
    largest = w_ih[z].abs().amax(1)
    column[z, 0] = torch.where(largest > 0, largest, torch.ones_like(largest))
    return torch.cat([w_ih, column], dim=1), float(((reach + HELD) / column[z, 0]).max())


def _delta_kernel(model: RNNoise) -> torch.Tensor:
    """`model._with_deltas` as a convolution over three cepstra, weight [n_features, n_bands, 3]
    (tap k reads the cepstrum 2 − k hops back): it is linear, so its response to each unit
    cepstrum at each of the three positions is its kernel, exactly."""
    bands = model.n_bands
    taps = []
    for k in range(3):
        unit = torch.zeros(bands, 3, bands)
        unit[:, k] = torch.eye(bands)
        taps.append(model._with_deltas(unit[:, 2:], unit[:, :2])[:, 0].T)  # [n_features, bands]
    return torch.stack(taps, dim=-1)


class RNNoiseStepGraph(nn.Module):
    """RNNoise's streaming step on K hops at a time (K any number per call: the time axis is
    dynamic), its whole state one tensor in and out, of fixed size, zeros at the start of a stream:

        chunk [B, K · hop], state [B, S] → enhanced_chunk [B, K · hop], next_state [B, S]

    Hop for hop it computes what `model.step` does, so the output is the whole-signal forward's
    delayed by `model.latency_samples`, whatever K each call takes. The hops' spectra, features,
    convolutions and inverse DFTs are computed side by side; only the GRUs run through the hops,
    each in ONNX's GRU kernel. A call pays the runtime's fixed cost of every node, whatever the
    node computes, so the graph keeps them few (79 after ONNX Runtime's fusions): each DFT one
    product with its whole table (`dft.block_rfft`, `dft.windowed_irfft`), the deltas one
    convolution, a new stream's first hop one more GRU input (below).

    The state's parts, in order (`state_layout`): the previous hop, the two cepstra before (less
    the cepstrum of silence, so that a new stream's zeros are a history of silence, as
    `model.init_state` has it), the four feature frames before, channel-major (the convolutions'
    context), the last hop's spectrum (its output waits for the next hop: the look-ahead), the
    overlap-add tail, the three GRU states, and a `started` flag: 0 at the start of a stream, whose
    first hop only fills the context. There the network's output is dropped (it meets the pending
    spectrum, zeros) and the GRUs do not advance: each takes one more input, a reset, set on that
    hop only, whose weight holds the update gate at 1 (`_with_reset_input`).
    """

    def __init__(self, model: RNNoise) -> None:
        super().__init__()
        self.model = model
        silence = model._silence_cepstrum(1)[0, 0]  # [bands]
        kernel = _delta_kernel(model)
        self.register_buffer("delta_kernel", kernel, persistent=False)
        # features of cepstra less silence: the same conv, plus what silence contributes through it
        self.register_buffer("delta_bias", kernel.sum(-1) @ silence, persistent=False)
        self.register_buffer("silence", silence, persistent=False)
        held = [_with_reset_input(gru) for gru in (model.gru1, model.gru2, model.gru3)]
        for i, (weight, _) in enumerate(held):  # a parameter, written as an initializer, as the weights it stands for
            setattr(self, f"gru{i + 1}_input_weight", nn.Parameter(weight, requires_grad=False))
        self.reset_value = max(value for _, value in held)

    def state_layout(self) -> dict[str, list[int]]:
        """{part: its shape in one stream}, in the order the state tensor holds them flattened."""
        m = self.model
        grus = {f"gru{i + 1}": [size] for i, size in enumerate(list(m.sizes.values())[2:])}
        return {"previous_chunk": [m.hop], "cepstra": [2, m.n_bands], "features": [m.n_features, 4],
                "pending": [2, m.hop + 1], "overlap": [m.hop], **grus, "started": [1]}

    def state_size(self) -> int:
        return sum(math.prod(shape) for shape in self.state_layout().values())

    def _unpack(self, state: torch.Tensor) -> dict[str, torch.Tensor]:
        parts, start = {}, 0
        for name, shape in self.state_layout().items():
            size = math.prod(shape)
            part = state[:, start : start + size]
            parts[name] = part if len(shape) == 1 else part.reshape(-1, *shape)
            start += size
        return parts

    def _gru(self, i: int, x: torch.Tensor, h: torch.Tensor, reset: torch.Tensor):
        gru = getattr(self.model, f"gru{i}")
        return _GRU.apply(torch.cat([x, reset], dim=-1), h, getattr(self, f"gru{i}_input_weight"), gru.weight_hh_l0,
                          gru.bias_ih_l0, gru.bias_hh_l0, gru.hidden_size)

    def forward(self, chunk: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m, hop, s = self.model, self.model.hop, self._unpack(state)
        blocks = torch.cat([s["previous_chunk"], chunk], dim=-1).reshape(chunk.shape[0], -1, hop)  # [B, K + 1, hop]
        spectrum = dft.block_rfft(blocks, m.window, 2 * hop)  # [B, K, 2, bins]
        cepstrum = m.cepstrum(spectrum.square().sum(-2) * 32768.0**2 @ m.filterbank.T)  # [B, K, bands]
        cepstra = torch.cat([s["cepstra"], cepstrum - self.silence], dim=1)  # [B, 2 + K, bands], less silence
        new = F.conv1d(cepstra.transpose(1, 2), self.delta_kernel, self.delta_bias)  # [B, features, K]
        features = torch.cat([s["features"], new], dim=2)  # [B, features, 4 + K]
        x = torch.tanh(m.conv2(torch.tanh(m.conv1(features)))).permute(2, 0, 1)  # [K, B, cond]: time-major, as ONNX's GRU takes it

        started = s["started"]  # [B, 1]
        reset = torch.cat([((1 - started) * self.reset_value).unsqueeze(0), torch.zeros_like(x[1:, :, :1])])  # [K, B, 1]
        y1, h1 = self._gru(1, x, s["gru1"], reset)
        y2, h2 = self._gru(2, y1, s["gru2"], reset)
        y3, h3 = self._gru(3, y2, s["gru3"], reset)
        gains = torch.sigmoid(m.dense_out(torch.cat([x, y1, y2, y3], dim=-1))).transpose(0, 1)  # [B, K, bands]

        # hop k's output: the spectrum of the hop before it (the look-ahead), then overlap-add
        pending = torch.cat([s["pending"].unsqueeze(1), spectrum[:, :-1]], dim=1)
        time = dft.windowed_irfft(pending * (gains @ m.filterbank).unsqueeze(-2), m.window, 2 * hop)
        tails = torch.cat([s["overlap"].unsqueeze(1), time[:, :, hop:]], dim=1)  # [B, K + 1, hop]
        out = (time[:, :, :hop] + tails[:, :-1]).flatten(1)
        following = [chunk[:, -hop:], cepstra[:, -2:], features[:, :, -4:], spectrum[:, -1], tails[:, -1], h1, h2, h3,
                     started.clamp(min=1)]  # started: 1 from now on
        return out, torch.cat([part if part.dim() == 2 else part.flatten(1) for part in following], dim=1)


class FRCRNGraph(nn.Module):
    """FRCRN's forward with its STFT through `export.dft`: equal to `model(noisy).enhanced` up to rounding."""

    def __init__(self, model: FRCRN) -> None:
        super().__init__()
        self.model = for_deployment(model)  # batch norms folded, transposed convs as convs
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
        spectrum = dft.rfft(frames, stft.n_fft).permute(0, 2, 3, 1)  # [B, 2, bins, frames], as ConvSTFT's
        stage1 = model.unet1(spectrum)
        stage2 = model.unet2(stage1)
        masked = complex_multiply(spectrum, torch.tanh(stage1) + torch.tanh(stage2))
        chunks = dft.irfft(masked.permute(0, 3, 1, 2), stft.n_fft)[..., :win] * self.synthesis_window
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
