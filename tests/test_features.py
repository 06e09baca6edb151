import torch

from speechcompress.features.bands import dct_matrix, erb_band_centers, triangular_filterbank
from speechcompress.features.stft import istft, num_frames, stft, vorbis_window


def test_vorbis_window_is_power_complementary():
    window = vorbis_window(320)
    assert torch.allclose(window[:160] ** 2 + window[160:] ** 2, torch.ones(160), atol=1e-6)


def test_stft_round_trip_is_exact_for_any_length():
    window = vorbis_window(320)
    for length in (160, 1000, 16037):
        wave = torch.randn(2, length)
        spec = stft(wave, 160, window)
        assert spec.shape == (2, num_frames(length, 160), 161)
        assert torch.allclose(istft(spec, 160, window, length), wave, atol=1e-5)


def test_erb_bands_are_increasing_and_span_the_spectrum():
    for bands, bins, rate in ((22, 161, 16000), (32, 481, 48000), (8, 161, 16000)):
        centers = erb_band_centers(bands, bins, rate)
        assert len(centers) == bands and centers[0] == 0 and centers[-1] == bins - 1
        assert all(b > a for a, b in zip(centers, centers[1:], strict=False))


def test_filterbank_is_a_partition_of_unity():
    weights = triangular_filterbank(22, 161, 16000)
    assert torch.allclose(weights.sum(0), torch.ones(161))
    assert (weights >= 0).all()


def test_dct_is_orthonormal():
    basis = dct_matrix(22)
    assert torch.allclose(basis @ basis.T, torch.eye(22), atol=1e-5)
