import pytest
import torch

from speechcompress.models.rnnoise import RNNoise


def _stream(model: RNNoise, wave: torch.Tensor, chunk_hops: int = 1) -> torch.Tensor:
    """Feeds `wave` plus the latency's worth of zeros hop by hop; drops the latency in front."""
    state = model.init_state(wave.shape[0])
    padded = torch.nn.functional.pad(wave, (0, model.latency_samples))
    outputs = []
    for chunk in padded.split(model.hop, dim=-1):
        out, state = model.step(chunk, state)
        outputs.append(out)
    return torch.cat(outputs, dim=-1)[:, model.latency_samples :]


def test_streaming_equals_offline():
    torch.manual_seed(0)
    model = RNNoise(cond_size=16, gru_size=24).eval()
    wave = torch.randn(2, 160 * 41) * 0.1
    with torch.no_grad():
        offline = model(wave).enhanced
    assert torch.allclose(_stream(model, wave), offline, atol=1e-5)


def test_shapes_at_48k_with_32_bands():
    model = RNNoise(sample_rate=48000, n_bands=32, cond_size=16, gru_size=24)
    wave = torch.randn(1, 48000 // 2)
    out = model(wave)
    frames = wave.shape[-1] // model.hop + 1
    assert model.hop == 480
    assert out.enhanced.shape == wave.shape
    assert out.gains.shape == (1, frames, 32)
    assert out.vad.shape == (1, frames)
    assert ((out.gains > 0) & (out.gains < 1)).all()


def test_unit_gains_give_back_the_input():
    model = RNNoise(cond_size=16, gru_size=24)
    with torch.no_grad():  # a huge bias saturates the sigmoid: every band passes unchanged
        model.dense_out.weight.zero_()
        model.dense_out.bias.fill_(50.0)
    wave = torch.randn(1, 8000) * 0.1
    assert torch.allclose(model(wave).enhanced, wave, atol=1e-4)


def test_layout_follows_xiph():
    model = RNNoise(n_bands=22, n_deltas=6, cond_size=128, gru_size=384)
    assert model.conv1.kernel_size == (3,) and model.conv1.padding == (0,)
    assert model.conv1.in_channels == 22 + 12
    assert model.gru1.hidden_size == model.gru3.hidden_size == 384
    assert model.dense_out.in_features == 4 * 384


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_training_step_under_autocast_stays_finite(dtype):
    """Band energies of 1e8–1e12 overflow fp16: the front-end and the loss run in fp32 under autocast."""
    from speechcompress.tasks.losses import RNNoiseLoss

    torch.manual_seed(0)
    model = RNNoise(cond_size=16, gru_size=16)
    clean = torch.randn(2, 8000) * 0.3
    batch = {"clean": clean, "noisy": clean + 0.1 * torch.randn_like(clean), "vad": torch.ones(2, 50)}
    with torch.autocast("cpu", dtype=dtype):
        output = model(batch["noisy"])
        loss = RNNoiseLoss()(model, output, batch)["loss"]
    assert output.band_energy.dtype == torch.float32 and torch.isfinite(output.band_energy).all()
    assert output.gains.dtype == dtype  # the network itself does run in reduced precision
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_lightning_trains_a_step_in_bf16_mixed_precision(tmp_path):
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    from speechcompress.data.mixing import pad_collate
    from speechcompress.tasks.denoise import DenoiseTask

    torch.manual_seed(0)
    task = DenoiseTask(model={"_target_": "speechcompress.models.rnnoise.RNNoise", "cond_size": 8, "gru_size": 8},
                       loss={"_target_": "speechcompress.tasks.losses.RNNoiseLoss"}, optimizer={"lr": 1e-3})
    clean = torch.randn(4, 4000) * 0.3
    items = [{"noisy": c + 0.1 * torch.randn_like(c), "clean": c, "vad": torch.ones(25), "index": torch.tensor(i)}
             for i, c in enumerate(clean)]
    before = [p.detach().clone() for p in task.parameters()]
    trainer = pl.Trainer(accelerator="cpu", precision="bf16-mixed", max_steps=2, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(task, DataLoader(items, batch_size=2, collate_fn=pad_collate))
    assert all(torch.isfinite(p).all() for p in task.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, task.parameters(), strict=True))  # it did learn


def test_the_band_gain_oracle_scores_far_above_the_noisy_input():
    """benchmarks/band_gain_oracle.py: the ideal band gains, through the model's own bands and
    overlap-add, give back clean speech unchanged and lift speech in white noise by over 6 dB SI-SDR."""
    import importlib.util

    import numpy as np

    from speechcompress.config import PROJECT_ROOT
    from speechcompress.evaluation.speech_quality import si_sdr
    from tests.conftest import espeak_speech

    spec = importlib.util.spec_from_file_location("band_gain_oracle", PROJECT_ROOT / "benchmarks" / "band_gain_oracle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = RNNoise()
    clean = torch.from_numpy(espeak_speech(0.3))
    noisy = clean + 0.05 * torch.randn(clean.shape[-1], generator=torch.Generator().manual_seed(0))
    assert torch.allclose(module.oracle(model, clean, clean), clean, atol=1e-4)
    before, after = (si_sdr(clean.numpy(), wave.numpy().astype(np.float32)) for wave in (noisy, module.oracle(model, noisy, clean)))
    assert after > before + 6.0, (before, after)
