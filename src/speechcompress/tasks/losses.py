"""Training losses of the denoisers, each a callable `(model, output, batch) -> dict of scalars`."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def frame_vad_targets(labels: torch.Tensor) -> torch.Tensor:
    """10 ms labels [B, L] → targets for STFT frames [B, L+1]; frame n spans label frames n−1 and n."""
    padded = F.pad(labels, (1, 1))
    return torch.maximum(padded[:, :-1], padded[:, 1:])


def ideal_band_gains(clean_energy: torch.Tensor, noisy_energy: torch.Tensor) -> torch.Tensor:
    """RNNoise's target: sqrt(E_clean / E_noisy) per band, at most 1 (1e-3 keeps silent bands finite)."""
    return torch.sqrt((clean_energy + 1e-3) / (noisy_energy + 1e-3)).clamp(max=1.0)


class RNNoiseLoss:
    """xiph's RNNoise loss: γ-compressed band-gain error weighted by VAD, plus a small VAD BCE.

    Target gains are sqrt(E_clean / E_noisy) per band, clipped to 1; bands where both energies are
    digital silence carry no target. The VAD BCE is weighted by |2v − 1| as in xiph.
    """

    def __init__(self, gamma: float = 0.25, vad_weight: float = 0.001, speech_weight: float = 5.0,
                 silence_energy: float = 5e-2) -> None:
        self.gamma, self.vad_weight = gamma, vad_weight
        self.speech_weight, self.silence_energy = speech_weight, silence_energy

    def __call__(self, model, output, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # in fp32 under mixed precision too: the energies overflow fp16, and CUDA's autocast refuses BCE
        with torch.autocast(batch["clean"].device.type, enabled=False):
            return self._terms(model, output, batch)

    def _terms(self, model, output, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        clean_energy = model.analysis_band_energy(batch["clean"])
        noisy_energy = output.band_energy
        target = ideal_band_gains(clean_energy, noisy_energy)
        valid = ((clean_energy > self.silence_energy) | (noisy_energy > self.silence_energy)).float()
        vad = frame_vad_targets(batch["vad"])[:, : output.vad.shape[1]]
        error = output.gains.float().pow(self.gamma) - target.pow(self.gamma)
        weight = (1.0 + self.speech_weight * vad).unsqueeze(-1) * valid
        gain_loss = (weight * error.square()).sum() / valid.sum().clamp(min=1.0)
        bce = F.binary_cross_entropy(output.vad.float().clamp(1e-4, 1 - 1e-4), vad, reduction="none")
        vad_loss = ((2 * vad - 1).abs() * bce).mean()
        return {"loss": gain_loss + self.vad_weight * vad_loss, "gain_loss": gain_loss, "vad_loss": vad_loss}


class XiphRNNoiseLoss:
    """xiph's own RNNoise loss (torch/rnnoise/train_rnnoise.py), on targets made as its
    dump_features.c makes them, for `XiphRNNoise`:
    - band energies of the high-passed clean speech (Ey) and noisy input (Ex), as the library's
      analysis computes them; the target gain g = sqrt((Ey + 1e-3) / (Ex + 1e-3)), at most 1;
    - no target (the mask m = 0) in a band where both energies are under 5e-2, nor in a frame whose
      noisy band energies sum under 0.1 (xiph's silence in training);
    - the target shaped as g · tanh(8g)², which pulls small gains to 0;
    - gain loss mean((1 + 5v) · m · (ĝ^γ − shaped^γ)²), γ = 0.25, over all bands and frames;
    - VAD loss mean(|2v − 1| · (−v log(0.01 + p) − (1 − v) log(1.01 − p))), weighted 0.001.
    (xiph also masks frames of utterances recorded without any noise, which the mixtures here never are.)"""

    def __init__(self, gamma: float = 0.25, vad_weight: float = 0.001, speech_weight: float = 5.0,
                 quiet_band: float = 5e-2, silent_frame: float = 0.1) -> None:
        self.gamma, self.vad_weight, self.speech_weight = gamma, vad_weight, speech_weight
        self.quiet_band, self.silent_frame = quiet_band, silent_frame

    def __call__(self, model, output, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with torch.autocast(batch["clean"].device.type, enabled=False):
            # the clean band energies: from the loader's workers when they computed them (`training_inputs`)
            clean = batch["xiph_clean_energy"] if "xiph_clean_energy" in batch else model.analysis_band_energy(batch["clean"])
            clean, noisy = clean.float(), output.band_energy.float()
            gain = ideal_band_gains(clean, noisy)
            quiet = (clean < self.quiet_band) & (noisy < self.quiet_band)
            silent = noisy.sum(dim=-1, keepdim=True) < self.silent_frame
            mask = (~(quiet | silent)).float()
            shaped = gain * torch.tanh(8 * gain).square()
            vad = frame_vad_targets(batch["vad"])[:, : output.vad.shape[1]].float()
            error = output.gains.float().pow(self.gamma) - shaped.pow(self.gamma)
            gain_loss = ((1 + self.speech_weight * vad).unsqueeze(-1) * mask * error.square()).mean()
            p = output.vad.float()
            bce = -vad * torch.log(0.01 + p) - (1 - vad) * torch.log(1.01 - p)
            vad_loss = ((2 * vad - 1).abs() * bce).mean()
            return {"loss": gain_loss + self.vad_weight * vad_loss, "gain_loss": gain_loss, "vad_loss": vad_loss}


def si_snr(estimate: torch.Tensor, target: torch.Tensor, lengths: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero-mean SI-SNR in dB of each item of [B, T] batches over its first `lengths` samples (the
    rest is batch padding), as the evaluation's SI-SDR: [B]."""
    valid = (torch.arange(target.shape[-1], device=target.device) < lengths[:, None]).to(target.dtype)
    count = lengths.clamp(min=1).unsqueeze(-1).to(target.dtype)

    def centred(x: torch.Tensor) -> torch.Tensor:
        return (x - (x * valid).sum(-1, keepdim=True) / count) * valid

    estimate, target = centred(estimate), centred(target)
    scale = (estimate * target).sum(-1, keepdim=True) / (target.square().sum(-1, keepdim=True) + eps)
    projection = scale * target
    residual = estimate - projection
    return 10 * torch.log10((projection.square().sum(-1) + eps) / (residual.square().sum(-1) + eps))


def ideal_ratio_mask(clean: torch.Tensor, noisy: torch.Tensor, bound: float = 2.0, eps: float = 1e-8) -> torch.Tensor:
    """The complex ideal ratio mask clean / noisy of [B, 2, bins, frames] spectra (real, imaginary
    parts), each part clamped to [−bound, bound]: the range of FRCRN's mask, tanh + tanh. (The
    published code resets parts beyond ±2 to ±1 instead of clamping them.)"""
    (cr, ci), (nr, ni) = clean.unbind(1), noisy.unbind(1)
    power = nr.square() + ni.square() + eps
    mask = torch.stack([(cr * nr + ci * ni) / power, (ci * nr - cr * ni) / power], dim=1)
    return mask.clamp(-bound, bound)


class ComplexMaskLoss:
    """FRCRN's loss: mask_weight · (MSE of the real part + MSE of the imaginary part of the mask
    against the bounded complex ideal ratio mask) − si_snr_weight · SI-SNR of the waveform (dB).

    The published code weights each MSE by 2·bins (642 for a 640-point FFT): `mask_weight`'s default.
    The model provides `analysis_spectrum(wave)` and an output with `mask`, `spectrum`, `enhanced`.
    """

    def __init__(self, mask_weight: float = 642.0, si_snr_weight: float = 1.0, bound: float = 2.0) -> None:
        self.mask_weight, self.si_snr_weight, self.bound = mask_weight, si_snr_weight, bound

    def __call__(self, model, output, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with torch.autocast(batch["clean"].device.type, enabled=False):  # ratios and logs in fp32
            target = ideal_ratio_mask(model.analysis_spectrum(batch["clean"]), output.spectrum.float(), self.bound)
            mask_error = (output.mask.float() - target).square().mean(dim=(0, 2, 3)).sum()
            snr = si_snr(output.enhanced.float(), batch["clean"].float(), batch["length"]).mean()
        loss = self.mask_weight * mask_error - self.si_snr_weight * snr
        return {"loss": loss, "mask_loss": mask_error, "si_snr": snr}
