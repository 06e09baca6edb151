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
