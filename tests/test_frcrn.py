"""FRCRN: the conv STFT, complex layers, the mask target, windowed inference, and its sizes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from speechcompress.inference import Windows, enhance_batch, window_starts
from speechcompress.models.complex import (
    ComplexConv2d,
    ComplexConvTranspose2d,
    ComplexFSMN,
    ConvSTFT,
    sqrt_hann,
)
from speechcompress.models.frcrn import FRCRN
from speechcompress.tasks.losses import ComplexMaskLoss, ideal_ratio_mask, si_snr

from .conftest import USES_TINY_FRCRN

TINY = dict(channels=4, encoder_kernels=[[5, 2], [5, 2], [5, 2]], fsmn_order=3, fsmn_hidden=8, se_reduction=2)


def db(error: torch.Tensor, signal: torch.Tensor) -> float:
    return 20 * math.log10(error.norm().item() / signal.norm().item())


@pytest.mark.parametrize("length", [16000, 16123, 700])
def test_conv_stft_reconstructs_the_signal(length):
    torch.manual_seed(0)
    stft = ConvSTFT(640, 320, 640)
    x = torch.randn(2, length)
    assert db(stft.inverse(stft(x), length) - x, x) < -60


def test_conv_stft_is_the_dft_of_windowed_frames():
    """Each frame is the DFT of sqrt-Hann × the signal, padded with win − hop zeros in front."""
    torch.manual_seed(0)
    stft = ConvSTFT(640, 320, 640)
    x = torch.randn(1, 4000)
    ours = stft(x)
    padded = F.pad(x, stft.padding(x.shape[-1]))
    reference = torch.stft(padded.double(), 640, 320, window=sqrt_hann(640), center=False, return_complex=True)
    assert ours.shape[-1] == reference.shape[-1] == stft.frames(4000)
    assert torch.allclose(ours[:, 0].double(), reference.real, atol=1e-3)
    assert torch.allclose(ours[:, 1].double(), reference.imag, atol=1e-3)


def _complex(x: torch.Tensor) -> torch.Tensor:
    """[B, 2C, ...] real layout → complex [B, C, ...]."""
    re, im = x.chunk(2, dim=1)
    return torch.complex(re.double(), im.double())


@pytest.mark.parametrize("transposed", [False, True])
def test_complex_conv_is_complex_arithmetic(transposed):
    """(Wr + iWi) * (xr + ixi) computed with torch's complex tensors; each of the published layer's
    two real convs adds its own bias, so the bias enters as (br + i·bi)(1 + i)."""
    torch.manual_seed(0)
    layer_type = ComplexConvTranspose2d if transposed else ComplexConv2d
    layer = layer_type(3, 5, (5, 2), stride=(2, 1), padding=(0, 1))
    x = torch.randn(2, 6, 17, 9)
    z = _complex(x)
    w = torch.complex(layer.weight_re.double(), layer.weight_im.double())
    op = F.conv_transpose2d if transposed else F.conv2d
    reference = op(z, w, None, (2, 1), (0, 1)) + (torch.complex(layer.bias_re.double(), layer.bias_im.double())
                                                   * (1 + 1j))[None, :, None, None]
    assert torch.allclose(_complex(layer(x)), reference, atol=1e-5)


def test_complex_fsmn_is_a_complex_product_of_its_real_units():
    torch.manual_seed(0)
    fsmn = ComplexFSMN(features=3, hidden=4, lorder=2, axis="frequency")
    x = torch.randn(2, 6, 7, 5)  # 3 complex channels, 7 bins, 5 frames
    unit = fsmn.units[0]
    xr, xi = (part.permute(0, 3, 2, 1).reshape(10, 7, 3) for part in x.chunk(2, dim=1))
    re = unit["re"](xr) - unit["im"](xi)
    im = unit["re"](xi) + unit["im"](xr)
    out_re, out_im = (part.permute(0, 3, 2, 1).reshape(10, 7, 3) for part in fsmn(x).chunk(2, dim=1))
    assert torch.allclose(out_re, re, atol=1e-6) and torch.allclose(out_im, im, atol=1e-6)


def test_mask_target_by_hand():
    """clean / noisy per bin: (1+2i)/2 = 0.5+1i; 3/1 = 3, clamped to 2; 1/i = −i."""
    clean = torch.tensor([[1.0, 3.0, 1.0], [2.0, 0.0, 0.0]]).reshape(1, 2, 3, 1)
    noisy = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 1.0]]).reshape(1, 2, 3, 1)
    mask = ideal_ratio_mask(clean, noisy).reshape(2, 3)
    assert torch.allclose(mask, torch.tensor([[0.5, 2.0, 0.0], [1.0, 0.0, -1.0]]), atol=1e-6)


def test_si_snr_ignores_padding_and_scale():
    torch.manual_seed(0)
    clean = torch.randn(1, 1000)
    noisy = clean + 0.1 * torch.randn(1, 1000)
    alone = si_snr(noisy, clean, torch.tensor([1000]))
    padded = si_snr(F.pad(3 * noisy, (0, 500), value=0.7), F.pad(clean, (0, 500)), torch.tensor([1000]))
    assert abs(alone.item() - 20.0) < 1.0 and torch.allclose(alone, padded, atol=1e-3)


def test_a_perfect_mask_scores_a_perfect_loss():
    """The output that applies the ideal mask (within its bound) reconstructs the clean signal: the
    mask term is zero and the SI-SNR term very large."""
    torch.manual_seed(0)
    model = FRCRN(**TINY).eval()
    clean = torch.randn(1, 8000)
    noisy = clean + 0.3 * torch.randn(1, 8000)
    spectrum = model.stft(noisy)
    mask = ideal_ratio_mask(model.stft(clean), spectrum, bound=1e6)
    from speechcompress.models.frcrn import FRCRNOutput, complex_multiply

    output = FRCRNOutput(model.stft.inverse(complex_multiply(spectrum, mask), 8000), mask, spectrum)
    terms = ComplexMaskLoss(bound=1e6)(model, output, {"clean": clean, "length": torch.tensor([8000])})
    assert terms["mask_loss"] < 1e-6 and terms["si_snr"] > 50


def test_frcrn_learns_a_fixed_noise():
    """A tiny FRCRN fitted for a few steps to one noisy item lowers its loss and raises SI-SNR."""
    torch.manual_seed(0)
    model = FRCRN(**TINY)
    t = torch.arange(16000) / 16000
    clean = (0.3 * torch.sin(2 * math.pi * 220 * t) * torch.sin(2 * math.pi * 3 * t)).unsqueeze(0).repeat(2, 1)
    noisy = clean + 0.1 * torch.randn(2, 16000)
    batch = {"clean": clean, "noisy": noisy, "length": torch.tensor([16000, 16000])}
    loss_fn = ComplexMaskLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        terms = loss_fn(model, model(noisy), batch)
        first = first or {k: v.item() for k, v in terms.items()}
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
    assert terms["loss"].item() < first["loss"] - 1.0
    assert terms["si_snr"].item() > first["si_snr"] + 1.0


def test_windows_cover_the_signal():
    assert window_starts(100, 40, 10) == [0, 30, 60]
    assert window_starts(40, 40, 10) == [0]
    with pytest.raises(ValueError, match="overlap_seconds"):
        Windows(window_seconds=1.0, overlap_seconds=1.0).samples(16000)


def _time_context(model: FRCRN, length: int) -> tuple[int, int]:
    """Samples before and after a position that its output depends on (measured with an impulse)."""
    x = torch.zeros(1, length)
    with torch.no_grad():
        base = model(x).enhanced
        middle = length // 2
        x[0, middle] = 1.0
        changed = ((model(x).enhanced - base).abs() > 1e-7).nonzero()[:, 1]
    return middle - int(changed.min()), int(changed.max()) - middle


def test_windowed_inference_equals_whole_file_away_from_the_seams():
    """Windows overlapping by more than the model's time context give, outside the overlaps, the
    whole-file output to rounding; inside them the cross-fade stays close."""
    torch.manual_seed(0)
    model = FRCRN(**TINY).eval()
    for parameter in model.parameters():  # a random model whose output is not near zero
        parameter.data.mul_(2.0)
    past, future = _time_context(model, 16000)
    rate, length = 16000, 16000 * 4 + 777
    windows = Windows(window_seconds=1.0, overlap_seconds=0.4, batch=3)
    window, overlap = windows.samples(rate)
    assert max(past, future) < overlap, (past, future)
    x = torch.randn(2, length) * 0.1
    with torch.no_grad():
        whole = model(x).enhanced
    chunked = enhance_batch(model, x, windows)
    starts = window_starts(length, window, overlap)
    assert len(starts) > 3
    seams = torch.zeros(length, dtype=torch.bool)
    for start in starts[1:]:
        seams[start : start + overlap] = True
    away, near = ~seams, seams
    assert db(chunked[:, away] - whole[:, away], whole[:, away]) < -80
    assert db(chunked[:, near] - whole[:, near], whole[:, near]) < -10


def test_published_frcrn_size():
    """The published code's 13,141,844 less what it builds but never calls: per UNet an FSMN
    before the first encoder and one after the last decoder (2 × 70,912) and an SE on the
    last-but-one decoder (8,480)."""
    model = FRCRN()
    count = sum(p.numel() for p in model.parameters())
    print(f"published FRCRN: {count:,} parameters")
    fsmn = 2 * (128 * 128 + 128 + 128 * 128 + 20 * 128)  # complex: a real unit each for re and im
    se = 2 * (128 * 16 + 16 + 16 * 128 + 128)
    assert count == 13_141_844 - 2 * (2 * fsmn + se) == 12_841_236


def test_the_conv_stft_stays_fp32_under_autocast():
    model = FRCRN(**TINY).eval()
    x = torch.randn(1, 4000)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        spectrum = model.stft(x)
        output = model(x)
    assert spectrum.dtype == torch.float32 and output.enhanced.dtype == torch.float32
    assert output.mask.dtype == torch.bfloat16  # the UNets did run in reduced precision


@USES_TINY_FRCRN
def test_a_tiny_frcrn_run_improves_on_the_noisy_input(tiny_frcrn_run):
    """The frcrn_small recipe at tiny sizes, trained for real through train.run: its test split
    improves on the noisy input, and the run logs its sizes, latency and peak memory."""
    _, metrics, _ = tiny_frcrn_run
    # ~2 dB better after 300 steps at 4 channels, by the draw of its 8 test utterances: 1 dB is the bar
    assert metrics["test/si_sdr"] > metrics["test/si_sdr_noisy"] + 1.0
    assert metrics["test/pesq_errors"] == 0 and math.isfinite(metrics["test/pesq"])
    assert metrics["memory/peak_mb"] > 0 and metrics["latency/rtf"] > 0 and metrics["size/params"] > 0


@USES_TINY_FRCRN
def test_enhance_cuts_a_long_file_into_the_windows_asked_for(tiny_frcrn_run, tmp_path, capsys):
    import numpy as np
    import soundfile as sf

    from speechcompress.checkpoints import load_task
    from speechcompress.cli import main

    checkpoint = tiny_frcrn_run[2]
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(16000 * 3)).astype(np.float32)
    sf.write(tmp_path / "long.wav", wave, 16000)
    args = ["enhance", "--checkpoint", str(checkpoint), str(tmp_path / "long.wav"), str(tmp_path / "out.wav"),
            "--window", "1", "--overlap", "0.4", "--verbose"]
    assert main(args) == 0
    assert "peak memory" in capsys.readouterr().err
    enhanced, rate = sf.read(tmp_path / "out.wav", dtype="float32")
    model = load_task(checkpoint).model
    expected = enhance_batch(model, torch.from_numpy(wave)[None], Windows(1.0, 0.4)).squeeze(0).numpy()
    assert rate == 16000 and len(enhanced) == len(wave)
    assert np.abs(enhanced - expected).max() < 1e-3  # the file holds 16-bit samples
    assert main(["enhance", "--checkpoint", str(checkpoint), str(tmp_path / "long.wav"), str(tmp_path / "x.wav"),
                 "--window", "1", "--overlap", "1"]) == 2
    assert "overlap_seconds" in capsys.readouterr().err


@pytest.mark.slow
def test_published_frcrn_trains_a_step_and_enhances_a_second_on_cpu():
    torch.manual_seed(0)
    model = FRCRN()
    assert sum(p.numel() for p in model.parameters()) == 12_841_236
    t = torch.arange(16000) / 16000
    clean = (0.2 * torch.sin(2 * math.pi * 300 * t)).repeat(2, 1)
    noisy = clean + 0.05 * torch.randn(2, 16000)
    batch = {"clean": clean, "noisy": noisy, "length": torch.tensor([16000, 16000])}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    terms = ComplexMaskLoss()(model, model(noisy), batch)
    terms["loss"].backward()
    optimizer.step()
    assert torch.isfinite(terms["loss"])
    assert all(not torch.equal(before[n], p) for n, p in model.named_parameters() if p.grad is not None)
    enhanced = enhance_batch(model.eval(), noisy[:1], Windows())
    assert enhanced.shape == (1, 16000) and torch.isfinite(enhanced).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="FP16 paths need a CUDA GPU")
def test_fp16_training_and_windowed_inference_on_cuda():
    torch.manual_seed(0)
    model = FRCRN().cuda()
    x = (0.1 * torch.randn(2, 32000)).cuda()
    batch = {"clean": x * 0.5, "noisy": x, "length": torch.tensor([32000, 32000]).cuda()}
    with torch.autocast("cuda", dtype=torch.float16):
        output = model(x)
        terms = ComplexMaskLoss()(model, output, batch)
    assert output.spectrum.dtype == torch.float32 and output.mask.dtype == torch.float16
    torch.cuda.amp.GradScaler().scale(terms["loss"]).backward()
    assert torch.isfinite(terms["loss"])
    model.eval()
    long = (0.1 * torch.randn(1, 16000 * 25)).cpu()
    fp16 = enhance_batch(model, long, Windows(window_seconds=10, overlap_seconds=2, batch=4, fp16=True))
    fp32 = enhance_batch(model, long, Windows(window_seconds=10, overlap_seconds=2, batch=4, fp16=False))
    assert fp16.device.type == "cpu" and db(fp16 - fp32, fp32) < -20


def test_impossible_windows_are_refused_naming_the_key():
    from speechcompress.config import ConfigError
    from speechcompress.tasks.base import build_task

    from .conftest import compose_config

    cfg = compose_config(["+experiment=frcrn_small", "task.inference.window_seconds=2",
                          "task.inference.overlap_seconds=3"])
    with pytest.raises(ConfigError, match="task.inference.*overlap_seconds=3"):
        build_task(cfg)
