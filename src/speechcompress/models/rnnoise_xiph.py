"""xiph's RNNoise (the 2024 model, 48 kHz) as librnnoise runs it, in torch.

Per 480-sample frame t, as the C library's t-th `rnnoise_process_frame` call:
1. the input (int16 scale) is high-passed by xiph's biquad (zeros at DC, poles at radius 0.998);
2. xiph's analysis (`features.xiph48k.analyse`): spectrum X_t, pitch spectrum P_t, band energies,
   pitch correlations and the 65 features. A silent frame (band energies summing under 0.04) skips
   steps 3–5: the network's state stays as it was, and frame t−1 goes out unfiltered;
3. the network (`RNNoiseLayers`, 65 features, 32 bands) gives band gains g_t and a VAD probability;
4. the pitch filter on frame t−1 (the comb filter in the frequency domain): each band adds as much
   of P_{t−1} as its gain and pitch correlation call for, then is scaled back to its energy;
5. gain smoothing: a band gain falls by at most a factor 0.6 per frame, from a level corrected for
   the change in energy between frames t−1 and t; the gains, spread over the bins by linear
   interpolation between band centres (0 from 20 kHz up), multiply X_{t−1};
6. overlap-add of the windowed inverse FFT gives the output, two frames behind the input.
`forward` returns the output aligned with the input instead, as the library gives it when flushed
with two frames of zeros after the signal.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torchaudio.functional as AF

from speechcompress.features import xiph48k
from speechcompress.features.stft import istft, vorbis_window
from speechcompress.models.rnnoise import INT16_SCALE, RNNoiseLayers, RNNoiseOutput

_HIGHPASS = ((1.0, -2.0, 1.0), (1.0, -1.99599, 0.99600))  # b, a of xiph's biquad
_GAIN_FALL = 0.6  # per frame at most: an RT60 of 135 ms, against unnaturally quick attenuation


def band_interpolation() -> torch.Tensor:
    """[32, 481]: bin gains = band gains @ band_interpolation(); linear between the bands' peaks
    (band b's triangle peaks at edge b + 1), flat below the first peak and above the last, zero
    from 20 kHz up."""
    edges, matrix = xiph48k.BAND_EDGES, torch.zeros(xiph48k.N_BANDS, xiph48k.N_BINS, dtype=torch.float64)
    matrix[0, : edges[1]] = 1.0
    for band in range(1, xiph48k.N_BANDS):
        start, width = edges[band], edges[band + 1] - edges[band]
        frac = torch.arange(width, dtype=torch.float64) / width
        matrix[band - 1, start : start + width] = 1 - frac
        matrix[band, start : start + width] = frac
    matrix[xiph48k.N_BANDS - 1, edges[-2] : edges[-1]] = 1.0
    return matrix


def highpass(wave: np.ndarray) -> np.ndarray:
    """xiph's input biquad (in float64; the C keeps its two states in float)."""
    b, a = (torch.tensor(c, dtype=torch.float64) for c in _HIGHPASS)
    return AF.lfilter(torch.from_numpy(np.asarray(wave, np.float64))[None], a, b, clamp=False)[0].numpy()


def _padded(wave: torch.Tensor) -> tuple[torch.Tensor, int]:
    """[B, T] (±1) → the int16-scale signals, with two frames of zeros behind: the frame after
    the last (which holds the high-pass's ringing) is filtered too, as when the library is
    flushed with two frames of zeros; and the number of frames T covers."""
    frames = -(-wave.shape[-1] // xiph48k.FRAME_SIZE)
    padding = (frames + 2) * xiph48k.FRAME_SIZE - wave.shape[-1]
    return torch.nn.functional.pad(wave.detach().double().cpu(), (0, padding)) * INT16_SCALE, frames


def _band_energy(wave: torch.Tensor) -> torch.Tensor:
    """`XiphRNNoise.analysis_band_energy` of [B, T], float64 on the CPU."""
    padded, frames = _padded(wave)
    energies = [xiph48k.band_energy(xiph48k.spectrum(torch.from_numpy(highpass(item.numpy()))[None]))
                for item in padded]
    return torch.cat(energies)[:, :frames]


FORWARD_INPUTS = ("xiph_features", "xiph_silent", "xiph_energy")  # what `forward` takes of `training_inputs`


def training_inputs(item: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """xiph's front-end for one training item (`noisy`, `clean` [T]), which the training
    DataLoader's workers compute (`XiphRNNoise.training_inputs`): the noisy signal's features,
    silent frames and band energies (`FORWARD_INPUTS`), and the clean signal's band energies
    (`xiph_clean_energy`: the loss's target).
    It runs there because it is per-item numpy code, which the training process would otherwise run
    between its steps while the network (on a GPU, or on the CPU's other threads) waits for it."""
    padded, _ = _padded(item["noisy"][None])
    analysis = xiph48k.analyse(highpass(padded[0].numpy()))
    return {"xiph_features": analysis.features.float(), "xiph_silent": analysis.silent.to(torch.uint8),
            "xiph_energy": analysis.energy.float(), "xiph_clean_energy": _band_energy(item["clean"][None])[0].float()}


class LazyOutput(RNNoiseOutput):
    """`RNNoiseOutput` whose enhanced signal is synthesised when it is first read: xiph's loss
    reads only the gains, VAD and energies, and training from the workers' inputs has no spectra
    to synthesise from until something asks (then the front-end runs here)."""

    def __init__(self, synthesise, gains: torch.Tensor, vad: torch.Tensor, band_energy: torch.Tensor) -> None:
        self._synthesise, self.gains, self.vad, self.band_energy = synthesise, gains, vad, band_energy

    @functools.cached_property
    def enhanced(self) -> torch.Tensor:
        return self._synthesise()


class XiphRNNoise(RNNoiseLayers):
    """xiph's RNNoise network and its C library's signal path (see the module docstring).
    `speechcompress import-rnnoise` fills it with the weights librnnoise ships."""

    hop = xiph48k.FRAME_SIZE

    # what it ships as: the weights file xiph's C librnnoise loads (its features and pitch filter are not a graph)
    family, formats = "rnnoise_xiph", ("rnnoise_c",)
    size_metric = "size/bytes_rnnoise_c"  # the bytes it is judged by: that weights file's
    dense_layers = ("conv1", "conv2", "dense_out", "vad_dense")  # librnnoise reads these dense (its GRUs block-sparse)

    def __init__(self, sample_rate: int = xiph48k.SAMPLE_RATE, cond_size: int = 128, gru_size: int = 384,
                 channels: dict[str, int] | None = None) -> None:
        if sample_rate != xiph48k.SAMPLE_RATE:
            raise ValueError(f"model.sample_rate: xiph's RNNoise runs at {xiph48k.SAMPLE_RATE} Hz only, got {sample_rate}")
        super().__init__(2 * xiph48k.N_BANDS + 1, xiph48k.N_BANDS, cond_size, gru_size, channels)
        self.sample_rate = sample_rate
        self.register_buffer("interpolation", band_interpolation(), persistent=False)
        self.register_buffer("bands", xiph48k.band_matrix().double(), persistent=False)

    def input_config(self) -> dict[str, float]:
        """What a teacher must share with this model: xiph's features."""
        return {"sample_rate": self.sample_rate, "hop": self.hop, "features": "xiph48k"}

    def _pitch_filter(self, spec, pitch_spec, energy, pitch_energy, correlation, gains):
        """xiph's comb filter on one frame, band by band ([481] complex spectra, [32] band values)."""
        g2, c2 = gains.square(), correlation.square()
        ratio = torch.where(correlation > gains, torch.ones_like(gains),
                            torch.sqrt((c2 * (1 - g2) / (0.001 + g2 * (1 - c2))).clamp(0, 1)))
        ratio = ratio * torch.sqrt(energy / (1e-8 + pitch_energy))
        spec = spec + (ratio @ self.interpolation) * pitch_spec
        filtered_energy = xiph48k.band_energy(spec, self.bands)
        return spec * (torch.sqrt(energy / (1e-8 + filtered_energy)) @ self.interpolation)

    def _calls(self, features: torch.Tensor, silent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's band gains [B, F, 32] and VAD [B, F] at each call, from the analyses'
        features [B, F, 65] and silent frames [B, F]: zero at silent frames, where the library skips
        the network (its state carries over to the next sounding frame)."""
        features = features.float().to(self.interpolation.device)
        silent = silent.bool().to(features.device)
        if not silent.any():  # the usual case: the whole batch at once
            gains, vad, _ = self._network(features, fresh=True)
            return gains, vad
        gains = features.new_zeros(*silent.shape, self.n_bands)
        vad = features.new_zeros(silent.shape)
        for item, quiet in enumerate(silent):
            sounding = torch.nonzero(~quiet).squeeze(1)
            if len(sounding):
                item_gains, item_vad, _ = self._network(features[item, sounding][None], fresh=True)
                gains[item, sounding], vad[item, sounding] = item_gains[0], item_vad[0]
        return gains, vad

    @torch.no_grad()
    def _synthesise(self, analysis: xiph48k.Analysis, gains: torch.Tensor) -> torch.Tensor:
        """Steps 4–6 of the module docstring for one signal: its samples (int16 scale) aligned with
        the input, from the gains of each call [F, 32]."""
        gains = gains.detach().double().cpu()
        calls = torch.nonzero(~analysis.silent).squeeze(1).tolist()
        # the smoothed gains depend on the previous call's: a short loop over 32-band vectors
        energy, raw = analysis.energy.numpy(), gains.numpy()
        smoothed, last = np.zeros_like(raw), np.zeros(xiph48k.N_BANDS)
        for t in calls:
            previous = energy[t - 1] if t else 0.0  # before the first frame: nothing
            smoothed[t] = np.maximum(raw[t], _GAIN_FALL * last)
            last = np.minimum(1.0, smoothed[t] * (previous + 1e-3) / (energy[t] + 1e-3))
        filtering = torch.tensor([t for t in calls if t > 0], dtype=torch.long)  # call t filters frame t − 1
        frames = filtering - 1
        out = analysis.spectrum.clone()
        filtered = self._pitch_filter(out[frames], analysis.pitch_spectrum[frames], analysis.energy[frames],
                                      analysis.pitch_energy[frames], analysis.correlation[frames], gains[filtering])
        out[frames] = filtered * (torch.from_numpy(smoothed[filtering.numpy()]) @ self.interpolation.cpu())
        window = vorbis_window(2 * self.hop).double()
        return istft(out[None] * (2 * self.hop), self.hop, window, len(analysis.silent) * self.hop)[0]

    def denoise_int16(self, wave: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One signal (48 kHz, int16 scale) → (output aligned with the input over whole frames,
        the network's band gains [F, 32] and VAD [F] of each call, zero where it skipped a silent
        frame). Call t filters frame t − 1, so the last frame comes out unfiltered."""
        analysis = xiph48k.analyse(highpass(wave))
        gains, vad = self._calls(analysis.features[None], analysis.silent[None])
        return self._synthesise(analysis, gains[0]), gains[0], vad[0]

    # xiph's front-end for a training item, which the training DataLoader's workers run; the batch
    # then carries its outputs under these names, and `forward` takes them
    training_inputs = staticmethod(training_inputs)
    training_input_names = FORWARD_INPUTS

    def forward(self, noisy: torch.Tensor, xiph_features: torch.Tensor | None = None,
                xiph_silent: torch.Tensor | None = None, xiph_energy: torch.Tensor | None = None) -> RNNoiseOutput:
        """Noisy waveform [B, T] (±1) → enhanced [B, T], with the gains and VAD of each frame. Given
        the front-end's outputs for it (`training_inputs`, batched) the network runs on those, and
        the enhanced signal is synthesised only if it is read."""
        length = noisy.shape[-1]
        frames = -(-length // self.hop)
        analyses = None
        if xiph_features is None:
            analyses = [xiph48k.analyse(highpass(item.numpy())) for item in _padded(noisy)[0]]
            xiph_features = torch.stack([a.features for a in analyses])
            xiph_silent = torch.stack([a.silent for a in analyses])
            xiph_energy = torch.stack([a.energy for a in analyses])
        gains, vad = self._calls(xiph_features, xiph_silent)

        def synthesise() -> torch.Tensor:
            chosen = analyses or [xiph48k.analyse(highpass(item.numpy())) for item in _padded(noisy)[0]]
            enhanced = torch.stack([self._synthesise(a, g)[:length] for a, g in zip(chosen, gains, strict=True)])
            return (enhanced / INT16_SCALE).to(noisy)

        # call t + 1 decides frame t
        return LazyOutput(synthesise, gains[:, 1 : frames + 1].to(noisy.dtype), vad[:, 1 : frames + 1].to(noisy.dtype),
                          xiph_energy[:, :frames].to(noisy))

    def analysis_band_energy(self, wave: torch.Tensor) -> torch.Tensor:
        """Band energies [B, frames, 32] of a waveform (±1) after the high-pass, frame t as
        `forward`'s gains of frame t (what xiph's training targets are made of)."""
        return _band_energy(wave).to(wave)
