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

import numpy as np
import torch
import torchaudio.functional as AF

from speechcompress.features import xiph48k
from speechcompress.features.stft import istft, vorbis_window
from speechcompress.models.rnnoise import INT16_SCALE, RNNoiseLayers, RNNoiseOutput

_HIGHPASS = ((1.0, -2.0, 1.0), (1.0, -1.99599, 0.99600))  # b, a of xiph's biquad
_GAIN_FALL = 0.6  # per frame at most: an RT60 of 135 ms, against unnaturally quick attenuation


def band_interpolation() -> torch.Tensor:
    """[32, 481]: bin gains = band gains @ band_interpolation(); linear between the starts of the
    bands, flat below the second and above the last, zero from 20 kHz up."""
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


class XiphRNNoise(RNNoiseLayers):
    """xiph's RNNoise network and its C library's signal path (see the module docstring).
    `speechcompress import-rnnoise` fills it with the weights librnnoise ships."""

    hop = xiph48k.FRAME_SIZE

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

    def denoise_int16(self, wave: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One signal (48 kHz, int16 scale) → (output aligned with the input over whole frames,
        the network's band gains [F, 32] and VAD [F] of each call, zero where it skipped a silent
        frame). Call t filters frame t − 1, so the last frame comes out unfiltered."""
        analysis = xiph48k.analyse(highpass(wave))
        frames = len(analysis.silent)
        sounding = torch.nonzero(~analysis.silent).squeeze(1)
        gains = torch.zeros(frames, xiph48k.N_BANDS, dtype=torch.float64)
        vad = torch.zeros(frames, dtype=torch.float64)
        if len(sounding):
            network_gains, network_vad, _ = self._network(analysis.features[sounding].float()[None], fresh=True)
            gains[sounding], vad[sounding] = network_gains[0].double(), network_vad[0].double()
        out = analysis.spectrum.clone()
        last = torch.zeros(xiph48k.N_BANDS, dtype=torch.float64)  # the smoothed gains' floor, carried
        zero = torch.zeros(xiph48k.N_BANDS, dtype=torch.float64)
        for t in sounding.tolist():
            previous = analysis.energy[t - 1] if t else zero  # before the first frame: nothing
            g = torch.maximum(gains[t], _GAIN_FALL * last)
            last = torch.clamp(g * (previous + 1e-3) / (analysis.energy[t] + 1e-3), max=1.0)
            if t:
                p = t - 1
                filtered = self._pitch_filter(out[p], analysis.pitch_spectrum[p], analysis.energy[p],
                                              analysis.pitch_energy[p], analysis.correlation[p], gains[t])
                out[p] = filtered * (g @ self.interpolation)
        window = vorbis_window(2 * self.hop).double()
        samples = istft(out[None] * (2 * self.hop), self.hop, window, frames * self.hop)[0]
        return samples, gains, vad

    def forward(self, noisy: torch.Tensor) -> RNNoiseOutput:
        """Noisy waveform [B, T] (±1) → enhanced [B, T], with the gains and VAD of each frame."""
        _, length = noisy.shape
        frames = -(-length // self.hop)
        # two frames of zeros behind: the frame after the last (which holds the high-pass's ringing)
        # is filtered too, as when the library is flushed with two frames of zeros
        padded = torch.nn.functional.pad(noisy.detach().double(), (0, (frames + 2) * self.hop - length))
        results = [self.denoise_int16(item.cpu().numpy() * INT16_SCALE) for item in padded]
        enhanced = torch.stack([r[0][:length] for r in results]).to(noisy) / INT16_SCALE
        # call t + 1 decides frame t
        gains = torch.stack([r[1][1 : frames + 1] for r in results]).to(noisy)
        vad = torch.stack([r[2][1 : frames + 1] for r in results]).to(noisy)
        return RNNoiseOutput(enhanced, gains, vad, self.analysis_band_energy(noisy))

    def analysis_band_energy(self, wave: torch.Tensor) -> torch.Tensor:
        """Band energies [B, frames, 32] of a waveform (±1), frame t as `forward`'s gains of frame t."""
        spec = xiph48k.spectrum(torch.nn.functional.pad(wave.double(), (0, -wave.shape[-1] % self.hop)) * INT16_SCALE)
        return xiph48k.band_energy(spec).to(wave.dtype)
