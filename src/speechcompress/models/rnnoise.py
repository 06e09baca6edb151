"""RNNoise (xiph, 2024–25 PyTorch layout) with configurable sizes.

features → conv1 (k=3, unpadded, tanh) → conv2 (k=3, unpadded, tanh) → GRU ×3 →
concat(conv2, gru1, gru2, gru3) → sigmoid band gains + sigmoid VAD.

The two unpadded convs see frames n−3 … n+1 for output frame n: one frame (10 ms) of look-ahead.
Features are the DCT of normalised log band energies plus first and second differences of the
lowest `n_deltas` coefficients. Gains are spread from bands to bins and multiply the noisy STFT.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from speechcompress.features.bands import dct_matrix, triangular_filterbank
from speechcompress.features.stft import istft, num_frames, stft, vorbis_window
from speechcompress.models.channels import (
    ChannelGroup,
    Slice,
    gru_producers,
    linear_producers,
    resized,
)

# Samples on the int16 scale, as xiph's; but our FFT is unnormalised where xiph's scales by 1/N
# (N = 2·hop, the window), so band energies are N² times xiph's, values of about 1e8–1e12, and the
# 1e-2 floor below sits N² lower than xiph's own 1e-2 (about 1e-7 in xiph's units at 16 kHz).
# fp16 cannot hold such energies (its largest value is 65504): the front-end always runs in fp32.
INT16_SCALE = 32768.0
_LOG_FLOOR = 1e-2
_LOG_CENTER, _LOG_SCALE = 4.0, 3.0  # log10 band energies of speech span about −2 … 10
_CONTEXT = 4  # frames of feature context the two k=3 convs consume (3 past, 1 ahead)


@dataclass
class RNNoiseOutput:
    enhanced: torch.Tensor  # [B, T] waveform
    gains: torch.Tensor  # [B, frames, n_bands] in (0, 1)
    vad: torch.Tensor  # [B, frames] speech probability
    band_energy: torch.Tensor  # [B, frames, n_bands] of the noisy input (the loss needs it)


class RNNoiseLayers(nn.Module):
    """xiph's RNNoise network on any features: conv1 and conv2 (k=3, unpadded, tanh), three GRUs,
    and two sigmoid heads (band gains, VAD) on conv2 and the GRUs side by side. Subclasses bring
    the signal side: `RNNoise` (this project's light front-end) and `XiphRNNoise` (xiph's own)."""

    # a deployment fact, not a training one: xiph's dump script keeps these in float when it quantizes
    unquantized_layers = ("conv1", "dense_out", "vad_dense")

    def __init__(self, n_features: int, n_bands: int, cond_size: int, gru_size: int,
                 channels: dict[str, int] | None = None) -> None:
        """`channels` overrides the size of single channel groups (see `channel_groups`), e.g. as
        structured pruning leaves them: {"conv2": 120, "gru1": 97, ...}."""
        super().__init__()
        self.n_features, self.n_bands = n_features, n_bands
        self.sizes = resized({"conv1": cond_size, "conv2": gru_size, "gru1": gru_size, "gru2": gru_size,
                              "gru3": gru_size}, channels)
        c1, c2, h1, h2, h3 = self.sizes.values()
        self.conv1 = nn.Conv1d(n_features, c1, kernel_size=3)
        self.conv2 = nn.Conv1d(c1, c2, kernel_size=3)
        self.gru1 = nn.GRU(c2, h1, batch_first=True)
        self.gru2 = nn.GRU(h1, h2, batch_first=True)
        self.gru3 = nn.GRU(h2, h3, batch_first=True)
        self.dense_out = nn.Linear(c2 + h1 + h2 + h3, n_bands)
        self.vad_dense = nn.Linear(c2 + h1 + h2 + h3, 1)

    def channel_groups(self) -> list[ChannelGroup]:
        """conv1's and conv2's output channels and each GRU's units; the heads read conv2 and the
        three GRUs side by side, in that order."""
        c1, c2, h1, h2, h3 = self.sizes.values()
        heads = ("dense_out.weight", "vad_dense.weight")
        return [
            ChannelGroup("conv1", c1, linear_producers("conv1"), (Slice("conv2.weight", 1),)),
            ChannelGroup("conv2", c2, linear_producers("conv2"),
                         (Slice("gru1.weight_ih_l0", 1), *(Slice(h, 1, 0) for h in heads))),
            ChannelGroup("gru1", h1, gru_producers("gru1"), (Slice("gru1.weight_hh_l0", 1),
                         Slice("gru2.weight_ih_l0", 1), *(Slice(h, 1, c2) for h in heads))),
            ChannelGroup("gru2", h2, gru_producers("gru2"), (Slice("gru2.weight_hh_l0", 1),
                         Slice("gru3.weight_ih_l0", 1), *(Slice(h, 1, c2 + h1) for h in heads))),
            ChannelGroup("gru3", h3, gru_producers("gru3"), (Slice("gru3.weight_hh_l0", 1),
                         *(Slice(h, 1, c2 + h1 + h2) for h in heads))),
        ]

    def _network(self, features: torch.Tensor, states: list[torch.Tensor] | None = None, fresh: bool = False):
        """Features [B, F+4, n_features] → gains [B, F, bands], vad [B, F], new GRU states.
        `fresh`: F frames in, F out, each conv's two inputs before the first being zeros, as in the C
        library's initial state (zero conv1 outputs, not conv1 of zero features)."""
        past = (2, 0) if fresh else (0, 0)
        x = torch.tanh(self.conv1(F.pad(features.transpose(1, 2), past)))
        x = torch.tanh(self.conv2(F.pad(x, past))).transpose(1, 2)
        states = states or [None, None, None]
        out1, h1 = self.gru1(x, states[0])
        out2, h2 = self.gru2(out1, states[1])
        out3, h3 = self.gru3(out2, states[2])
        joined = torch.cat([x, out1, out2, out3], dim=-1)
        gains = torch.sigmoid(self.dense_out(joined))
        vad = torch.sigmoid(self.vad_dense(joined)).squeeze(-1)
        return gains, vad, [h1, h2, h3]


class RNNoise(RNNoiseLayers):
    """RNNoise at any rate, on this project's light features (see the module docstring)."""

    # what it ships as (the `export` config group's exporters ask): a whole-signal graph, and a streaming step graph
    family, formats = "rnnoise", ("onnx", "rnnoise_step")
    # the bytes it is judged by: xiph's block-sparse arrays, as RNNoise ships in C (its ONNX files
    # keep every zero a mask leaves, so they weigh the same at any density)
    size_metric = "size/bytes_sparse"

    def __init__(
        self,
        sample_rate: int = 16000,
        hop_ms: float = 10.0,
        n_bands: int = 22,
        n_deltas: int = 6,
        cond_size: int = 128,
        gru_size: int = 256,
        channels: dict[str, int] | None = None,
    ) -> None:
        """`channels`: see `RNNoiseLayers`."""
        super().__init__(n_bands + 2 * n_deltas, n_bands, cond_size, gru_size, channels)
        self.sample_rate = sample_rate
        self.hop = int(round(sample_rate * hop_ms / 1000))
        self.n_deltas = n_deltas
        n_bins = self.hop + 1
        # Fixed signal-processing tables are rebuilt from the config, so they stay out of the state dict.
        self.register_buffer("window", vorbis_window(2 * self.hop), persistent=False)
        self.register_buffer("filterbank", triangular_filterbank(n_bands, n_bins, sample_rate), persistent=False)
        self.register_buffer("dct", dct_matrix(n_bands), persistent=False)

    def input_config(self) -> dict[str, float]:
        """What a teacher must share with this model to be distilled into it: the same inputs and bands."""
        return {"sample_rate": self.sample_rate, "hop": self.hop, "n_bands": self.n_bands, "n_deltas": self.n_deltas}

    # --- signal side -------------------------------------------------------------------------
    def band_energy(self, spec: torch.Tensor) -> torch.Tensor:
        """Complex [B, F, bins] → band energies [B, F, n_bands] on the int16 scale, in fp32 even under autocast."""
        with torch.autocast(spec.device.type, enabled=False):
            power = (spec.real.float().square() + spec.imag.float().square()) * INT16_SCALE**2
            return power @ self.filterbank.T

    def analysis_band_energy(self, wave: torch.Tensor) -> torch.Tensor:
        """Band energies [B, frames, n_bands] of a waveform, on the same frames as `forward`'s output."""
        return self.band_energy(stft(wave, self.hop, self.window))

    def cepstrum(self, band_energy: torch.Tensor) -> torch.Tensor:
        with torch.autocast(band_energy.device.type, enabled=False):
            log_energy = (torch.log10(band_energy.float() + _LOG_FLOOR) - _LOG_CENTER) / _LOG_SCALE
            return log_energy @ self.dct.T

    def _silence_cepstrum(self, batch: int) -> torch.Tensor:
        return self.cepstrum(torch.zeros(batch, 1, self.n_bands, device=self.dct.device))

    def _with_deltas(self, cep: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """Append first and second differences of the low coefficients; `history` holds the 2 frames before."""
        low = torch.cat([history, cep], dim=1)[..., : self.n_deltas]
        delta1 = low[:, 2:] - low[:, 1:-1]
        delta2 = low[:, 2:] - 2 * low[:, 1:-1] + low[:, :-2]
        return torch.cat([cep, delta1, delta2], dim=-1)

    def apply_gains(self, spec: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
        """Complex [B, F, bins] spectra scaled by band `gains` [B, F, n_bands], spread over the bins."""
        return spec * (gains @ self.filterbank).to(spec.dtype)

    def forward(self, noisy: torch.Tensor) -> RNNoiseOutput:
        """Noisy waveform [B, T] → enhanced waveform [B, T] with per-frame gains and VAD."""
        batch, length = noisy.shape
        frames = num_frames(length, self.hop)
        # One extra hop of zeros gives the look-ahead frame for the last output frame.
        spec = stft(F.pad(noisy.float(), (0, self.hop)), self.hop, self.window)
        energy = self.band_energy(spec)
        silence = self._silence_cepstrum(batch)
        features = self._with_deltas(self.cepstrum(energy), silence.expand(-1, 2, -1))
        features = F.pad(features, (0, 0, _CONTEXT - 1, 0))  # three frames of zero context in front
        gains, vad, _ = self._network(features)
        enhanced = istft(self.apply_gains(spec[:, :frames], gains), self.hop, self.window, length)
        return RNNoiseOutput(enhanced, gains, vad, energy[:, :frames])

    # --- streaming ---------------------------------------------------------------------------
    @property
    def latency_samples(self) -> int:
        """Streaming delay: one hop of look-ahead plus one hop of overlap-add."""
        return 2 * self.hop

    def init_state(self, batch: int = 1) -> dict[str, torch.Tensor | list]:
        device = self.dct.device
        hop = self.hop
        return {
            "previous_chunk": torch.zeros(batch, hop, device=device),
            "cepstra": self._silence_cepstrum(batch).expand(-1, 2, -1).clone(),
            "features": torch.zeros(batch, _CONTEXT - 1, self.n_features, device=device),
            "pending_spec": torch.zeros(batch, 1, hop + 1, dtype=torch.complex64, device=device),
            "overlap": torch.zeros(batch, hop, device=device),
            "gru": [None, None, None],
        }

    @torch.no_grad()
    def step(self, chunk: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """One hop of input [B, hop] → one hop of output [B, hop], delayed by `latency_samples`.

        Feeding x then two hops of zeros and dropping the first two output hops equals `forward(x)`.
        """
        frame = torch.cat([state["previous_chunk"], chunk], dim=-1).unsqueeze(1) * self.window
        spec = torch.fft.rfft(frame, dim=-1)  # [B, 1, bins]: the newest complete frame
        cep = self.cepstrum(self.band_energy(spec))
        feature = self._with_deltas(cep, state["cepstra"])
        features = torch.cat([state["features"], feature], dim=1)
        if features.shape[1] < _CONTEXT + 1:  # the very first chunk: no frame to emit yet
            out = torch.zeros_like(chunk)
            gru = state["gru"]
        else:
            gains, _, gru = self._network(features, state["gru"])
            features = features[:, 1:]
            time = torch.fft.irfft(self.apply_gains(state["pending_spec"], gains), n=2 * self.hop, dim=-1)
            time = (time * self.window).squeeze(1)
            out = state["overlap"] + time[:, : self.hop]
            state = {**state, "overlap": time[:, self.hop :]}
        new_state = {
            **state,
            "previous_chunk": chunk,
            "cepstra": torch.cat([state["cepstra"][:, 1:], cep], dim=1),
            "features": features,
            "pending_spec": spec,
            "gru": gru,
        }
        return out, new_state
