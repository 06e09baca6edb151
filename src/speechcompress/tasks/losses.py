"""Training losses of the denoisers, each a callable `(model, output, batch) -> dict of scalars`."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def frame_vad_targets(labels: torch.Tensor) -> torch.Tensor:
    """10 ms labels [B, L] → targets for STFT frames [B, L+1]; frame n spans label frames n−1 and n."""
    padded = F.pad(labels, (1, 1))
    return torch.maximum(padded[:, :-1], padded[:, 1:])


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
        target = torch.sqrt((clean_energy + 1e-3) / (noisy_energy + 1e-3)).clamp(max=1.0)
        valid = ((clean_energy > self.silence_energy) | (noisy_energy > self.silence_energy)).float()
        vad = frame_vad_targets(batch["vad"])[:, : output.vad.shape[1]]
        error = output.gains.float().pow(self.gamma) - target.pow(self.gamma)
        weight = (1.0 + self.speech_weight * vad).unsqueeze(-1) * valid
        gain_loss = (weight * error.square()).sum() / valid.sum().clamp(min=1.0)
        bce = F.binary_cross_entropy(output.vad.float().clamp(1e-4, 1 - 1e-4), vad, reduction="none")
        vad_loss = ((2 * vad - 1).abs() * bce).mean()
        return {"loss": gain_loss + self.vad_weight * vad_loss, "gain_loss": gain_loss, "vad_loss": vad_loss}
