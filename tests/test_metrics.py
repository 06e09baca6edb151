import math

import numpy as np
import pytest
import torch

from speechcompress.compression.size import size_report
from speechcompress.evaluation.measure import real_time_factor
from speechcompress.evaluation.speech_quality import (
    SpeechQuality,
    pesq_wb,
    scored_in_workers,
    si_sdr,
)
from speechcompress.evaluation.vad_metrics import FrameVAD
from speechcompress.models.rnnoise import RNNoise, RNNoiseOutput
from speechcompress.tasks.losses import RNNoiseLoss, XiphRNNoiseLoss, frame_vad_targets


def _speechlike(seconds: float = 3.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    voiced = sum(np.sin(2 * np.pi * k * 140 * t) / k for k in range(1, 20))
    return (0.1 * voiced * (np.sin(2 * np.pi * 2 * t) > -0.2)).astype(np.float32)


def test_si_sdr_is_zero_mean_scale_invariant_and_tracks_noise():
    clean = _speechlike()
    noise = np.random.default_rng(0).standard_normal(len(clean)).astype(np.float32) * 0.05
    assert si_sdr(clean, 3.0 * clean) > 60
    assert si_sdr(clean, clean + 0.3) > 60  # a DC offset is not distortion under the zero-mean definition
    assert si_sdr(clean, clean + noise) > si_sdr(clean, clean + 4 * noise) + 10


def test_pesq_resamples_and_counts_failures_of_enhanced_and_noisy_apart():
    clean = _speechlike(rate=48000)
    assert pesq_wb(clean, clean, 48000) > 4.0
    speech = torch.from_numpy(_speechlike())
    silent = torch.zeros_like(speech)  # PESQ refuses a reference without speech
    quality = SpeechQuality(16000)
    quality.update(torch.stack([speech, silent]), torch.stack([speech, silent]), torch.tensor([len(speech)] * 2),
                   torch.tensor([0, 1]), torch.stack([speech + 0.01, silent]))
    summary = quality.compute()
    assert summary["items"] == 2
    assert summary["pesq_errors"] == 1 and summary["pesq_errors_noisy"] == 1  # one item each, not 2 "of 2 items"
    assert summary["pesq"] > 4.0 and math.isfinite(summary["stoi"])
    assert summary["si_sdr_i"] == pytest.approx(summary["si_sdr"] - summary["si_sdr_noisy"])


def test_an_item_the_distributed_sampler_repeats_is_counted_once():
    rng = np.random.default_rng(0)
    clean = torch.from_numpy(np.stack([_speechlike(1.0)] * 3))
    enhanced = clean + torch.from_numpy(rng.standard_normal(clean.shape).astype(np.float32)) * torch.tensor([[0.01], [0.1], [0.3]])
    lengths = torch.tensor([clean.shape[1]] * 3)
    once = SpeechQuality(16000, with_noisy=False)
    once.update(clean, enhanced, lengths, torch.tensor([0, 1, 2]))
    repeated = SpeechQuality(16000, with_noisy=False)
    repeated.update(clean[:2], enhanced[:2], lengths[:2], torch.tensor([0, 1]))
    repeated.update(clean[[2, 0]], enhanced[[2, 0]], lengths[:2], torch.tensor([2, 0]))  # item 0 again, as padding
    assert repeated.compute() == pytest.approx(once.compute())

    probabilities = torch.tensor([[0.9, 0.8, 0.1], [0.2, 0.7, 0.0]])
    labels = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    valid = torch.tensor([[True, True, True], [True, True, False]])
    frames = FrameVAD()
    frames.update(probabilities, labels, valid, torch.tensor([5, 6]))
    expected = frames.compute()
    frames.update(probabilities[1:], labels[1:], valid[1:], torch.tensor([6]))  # item 6 seen twice
    assert frames.compute() == pytest.approx(expected, nan_ok=True)
    # item 6 has no speech: one of its two frames is called speech
    assert expected["noise_items"] == 1 and expected["noise_false_alarm"] == pytest.approx(0.5)
    assert expected["items"] == 2 and expected["recall"] == 1.0 and expected["precision"] == pytest.approx(2 / 3)


def test_worker_processes_score_as_this_process_does_and_compute_waits_for_them():
    rng = np.random.default_rng(1)
    clean = torch.from_numpy(np.stack([_speechlike(1.5)] * 4))
    noisy = clean + torch.from_numpy(rng.standard_normal(clean.shape).astype(np.float32)) * 0.05
    enhanced = clean + (noisy - clean) * torch.tensor([[0.1], [0.3], [0.5], [1.0]])
    lengths = torch.tensor([clean.shape[1], 20000, 16000, 12000])
    inline, pooled = SpeechQuality(16000, processes=1), SpeechQuality(16000, processes=2)
    for quality in (inline, pooled):
        for batch in (slice(0, 3), slice(3, 4)):
            quality.update(clean[batch], enhanced[batch], lengths[batch], torch.arange(4)[batch], noisy[batch])
    assert pooled.compute() == inline.compute()
    assert inline.compute()["items"] == 4 and inline.compute()["pesq"] > inline.compute()["pesq_noisy"]
    pooled.reset()
    pooled.update(clean[:1], enhanced[:1], lengths[:1], torch.tensor([0]), noisy[:1])
    assert pooled.compute()["items"] == 1  # nothing of the earlier batches is left after a reset


def test_noisy_scores_are_kept_by_content_and_read_back(tmp_path):
    clean = torch.from_numpy(np.stack([_speechlike(1.0), _speechlike(1.0) * 0.5]))
    noisy = clean + torch.from_numpy(np.random.default_rng(2).standard_normal(clean.shape).astype(np.float32)) * 0.05
    lengths, index = torch.tensor([clean.shape[1]] * 2), torch.tensor([0, 1])

    def scores() -> dict[str, float]:
        with scored_in_workers(noisy_cache=tmp_path):
            quality = SpeechQuality(16000)
        quality.update(clean, clean * 0.9, lengths, index, noisy)
        return quality.compute()

    first = scores()
    kept = sorted(tmp_path.glob("*.json"))
    assert len(kept) == 2  # the two noisy inputs; the enhanced outputs change from run to run
    assert scores() == first
    for path in kept:  # what the folder holds is what the next run reports
        path.write_text("[1.5, 0.5]")
    again = scores()
    assert again["pesq_noisy"] == 1.5 and again["stoi_noisy"] == 0.5 and again["pesq"] == first["pesq"]


class _BandEnergies:
    """Stands in for the model's analysis of the clean signal: the band energies the loss compares with."""

    def __init__(self, energy: torch.Tensor) -> None:
        self.energy = energy

    def analysis_band_energy(self, clean: torch.Tensor) -> torch.Tensor:
        return self.energy


def test_rnnoise_loss_against_a_hand_computed_value():
    # one frame, two bands: band 0 has clean energy 0.999 and noisy 3.999, so its target gain is
    # sqrt((0.999 + 1e-3) / (3.999 + 1e-3)) = 0.5; band 1 is silent in both and carries no target
    clean_energy, noisy_energy = torch.tensor([[[0.999, 0.0]]]), torch.tensor([[[3.999, 0.0]]])
    gains = torch.tensor([[[0.0625, 0.9]]])  # 0.0625^0.25 = 0.5
    output = RNNoiseOutput(torch.zeros(1, 160), gains, torch.tensor([[0.8]]), noisy_energy)
    batch = {"clean": torch.zeros(1, 160), "vad": torch.tensor([[1.0]])}
    terms = RNNoiseLoss()(_BandEnergies(clean_energy), output, batch)
    error = 0.5 - 0.5**0.25  # γ = 0.25 on both sides
    gain_loss = (1 + 5 * 1) * error**2 / 1  # speech frame weight 1 + 5·vad, one valid band
    vad_loss = -math.log(0.8)  # BCE with target 1, weight |2·1 − 1| = 1
    assert float(terms["gain_loss"]) == pytest.approx(gain_loss, rel=1e-5)
    assert float(terms["vad_loss"]) == pytest.approx(vad_loss, rel=1e-5)
    assert float(terms["loss"]) == pytest.approx(gain_loss + 0.001 * vad_loss, rel=1e-5)


def test_xiph_loss_against_a_hand_computed_value():
    # one frame, three bands (noisy energies sum to 4.2, above xiph's 0.1 of silence): band 0's target
    # gain is sqrt((0.999 + 1e-3) / (3.999 + 1e-3)) = 0.5, shaped to 0.5 · tanh(4)²; band 1 is quiet
    # in both (under 5e-2) and has no target; band 2's clean is louder than its noisy: gain 1, shaped tanh(8)²
    clean_energy, noisy_energy = torch.tensor([[[0.999, 0.01, 0.4]]]), torch.tensor([[[3.999, 0.01, 0.2]]])
    gains = torch.tensor([[[0.0625, 0.9, 1.0]]])
    output = RNNoiseOutput(torch.zeros(1, 480), gains, torch.tensor([[0.8]]), noisy_energy)
    batch = {"clean": torch.zeros(1, 480), "vad": torch.tensor([[1.0]])}
    terms = XiphRNNoiseLoss()(_BandEnergies(clean_energy), output, batch)
    errors = [0.5 - (0.5 * math.tanh(4) ** 2) ** 0.25, 0.0, 1.0 - (math.tanh(8) ** 2) ** 0.25]
    gain_loss = (1 + 5 * 1) * sum(e**2 for e in errors) / 3  # a mean over all three bands, the masked one as 0
    vad_loss = -math.log(0.01 + 0.8)  # xiph's BCE: log(0.01 + p) for speech, weight |2·1 − 1| = 1
    assert float(terms["gain_loss"]) == pytest.approx(gain_loss, rel=1e-5)
    assert float(terms["vad_loss"]) == pytest.approx(vad_loss, rel=1e-5)
    assert float(terms["loss"]) == pytest.approx(gain_loss + 0.001 * vad_loss, rel=1e-5)
    # a frame whose noisy bands sum under 0.1 is xiph's silence: no gain target at all
    quiet = RNNoiseOutput(torch.zeros(1, 480), gains, torch.tensor([[0.8]]), noisy_energy / 100)
    assert float(XiphRNNoiseLoss()(_BandEnergies(clean_energy), quiet, batch)["gain_loss"]) == 0.0


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
