import numpy as np
import pytest
import torch

from speechcompress.evaluation.measure import real_time_factor, size_report
from speechcompress.evaluation.metrics import DenoiseScores, pesq_wb, si_sdr
from speechcompress.models.rnnoise import RNNoise
from speechcompress.tasks.losses import RNNoiseLoss, frame_vad_targets


def _speechlike(seconds: float = 3.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    voiced = sum(np.sin(2 * np.pi * k * 140 * t) / k for k in range(1, 20))
    return (0.1 * voiced * (np.sin(2 * np.pi * 2 * t) > -0.2)).astype(np.float32)


def test_si_sdr_is_scale_invariant_and_tracks_noise():
    clean = _speechlike()
    noise = np.random.default_rng(0).standard_normal(len(clean)).astype(np.float32) * 0.05
    assert si_sdr(clean, 3.0 * clean) > 60
    assert si_sdr(clean, clean + noise) > si_sdr(clean, clean + 4 * noise) + 10


def test_pesq_resamples_and_silent_references_are_counted_not_dropped():
    clean = _speechlike(rate=48000)
    assert pesq_wb(clean, clean, 48000) > 4.0
    scores = DenoiseScores(16000)
    speech = _speechlike()
    scores.update(speech, speech, speech + 0.01)
    scores.update(np.zeros(48000, np.float32), np.zeros(48000, np.float32), np.zeros(48000, np.float32))
    summary = scores.summary()
    assert summary["items"] == 2 and summary["pesq_errors"] == 2  # enhanced and noisy of the silent item
    assert summary["pesq"] > 4.0 and np.isfinite(summary["stoi"])
    assert summary["si_sdr_i"] == pytest.approx(summary["si_sdr"] - summary["si_sdr_noisy"])


def test_rnnoise_loss_is_lowest_for_the_ideal_gains():
    torch.manual_seed(0)
    model = RNNoise(cond_size=8, gru_size=8)
    clean = torch.from_numpy(_speechlike(1.0)).unsqueeze(0)
    noisy = clean + 0.05 * torch.randn_like(clean)
    batch = {"clean": clean, "noisy": noisy, "vad": torch.ones(1, 100)}
    output = model(noisy)
    loss = RNNoiseLoss()
    ideal = torch.sqrt((model.analysis_band_energy(clean) + 1e-3) / (output.band_energy + 1e-3)).clamp(max=1)
    perfect = type(output)(output.enhanced, ideal, torch.ones_like(output.vad), output.band_energy)
    assert loss(model, perfect, batch)["gain_loss"] < 1e-6
    assert loss(model, output, batch)["gain_loss"] > 1e-3


def test_frame_vad_targets_cover_both_halves_of_a_frame():
    labels = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    assert frame_vad_targets(labels).tolist() == [[0.0, 1.0, 1.0, 0.0, 0.0]]


def test_size_and_latency_reports():
    model = RNNoise(cond_size=8, gru_size=8)
    with torch.no_grad():
        model.dense_out.weight.zero_()
    size = size_report(model)
    assert size["size/params"] == sum(p.numel() for p in model.parameters())
    assert size["size/nonzero"] == size["size/params"] - model.dense_out.weight.numel()
    assert size["size/bytes_checkpoint"] > 4 * size["size/params"]
    latency = real_time_factor(model, 16000, seconds=1.0, repeats=2)
    assert 0 < latency["latency/rtf"] < 1 and latency["latency/ms_per_second"] == pytest.approx(1000 * latency["latency/rtf"])
