"""Running trained models on audio at any sample rate: denoisers and VADs."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from speechcompress.data.audio import resample


@torch.no_grad()
def enhance_waveform(model: nn.Module, wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 `wave` at `sample_rate` → enhanced mono float32 at the same rate and length."""
    if len(wave) == 0:
        return np.zeros(0, np.float32)
    model_rate = model.sample_rate
    device = next(model.parameters()).device
    x = torch.from_numpy(resample(wave, sample_rate, model_rate)).to(device).unsqueeze(0)
    enhanced = model(x).enhanced.squeeze(0).float().cpu().numpy()
    out = resample(enhanced, model_rate, sample_rate)
    return np.pad(out, (0, max(0, len(wave) - len(out))))[: len(wave)]


@torch.no_grad()
def speech_probabilities(model: nn.Module, wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 `wave` at `sample_rate` → speech probability per 10 ms frame from the start, float32."""
    if len(wave) == 0:
        return np.zeros(0, np.float32)
    device = next(model.parameters()).device
    x = torch.from_numpy(resample(wave, sample_rate, model.sample_rate)).to(device).unsqueeze(0)
    return model(x).speech_probability().squeeze(0).float().cpu().numpy()
