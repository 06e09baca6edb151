"""xiph's 48 kHz RNNoise front-end in torch (`features.xiph48k`) against the C library's own
`rnn_compute_frame_features`, frame by frame on the same samples."""

import ctypes

import numpy as np
import pytest
import torch
import torchaudio.functional as AF

from speechcompress.data.espeak import EspeakSynthesizer
from speechcompress.export.rnnoise_c import LibRNNoise
from speechcompress.features import xiph48k


def _c_frame_features(audio: np.ndarray) -> dict[str, np.ndarray]:
    """Per 480-sample frame, what librnnoise's analysis computes: spectrum X (481 complex as
    pairs), band energies Ex, the 65 features, and whether it called the frame silent."""
    lib = LibRNNoise().lib
    floats = ctypes.POINTER(ctypes.c_float)
    analyse = lib.rnn_compute_frame_features
    analyse.argtypes, analyse.restype = [ctypes.c_void_p] + [floats] * 7, ctypes.c_int
    state = lib.rnnoise_create(None)
    spectrum, pitch_spectrum = np.zeros(2 * xiph48k.N_BINS, np.float32), np.zeros(2 * xiph48k.N_BINS, np.float32)
    energy, pitch_energy, correlation = (np.zeros(xiph48k.N_BANDS, np.float32) for _ in range(3))
    features = np.zeros(65, np.float32)
    rows = {"X": [], "Ex": [], "features": [], "silent": []}
    try:
        for start in range(0, len(audio) - xiph48k.FRAME_SIZE + 1, xiph48k.FRAME_SIZE):
            frame = np.ascontiguousarray(audio[start : start + xiph48k.FRAME_SIZE], np.float32)
            silent = analyse(state, *(a.ctypes.data_as(floats) for a in
                                      (spectrum, pitch_spectrum, energy, pitch_energy, correlation, features, frame)))
            for name, value in (("X", spectrum), ("Ex", energy), ("features", features), ("silent", silent)):
                rows[name].append(np.copy(value))
    finally:
        lib.rnnoise_destroy(state)
    return {name: np.array(values) for name, values in rows.items()}


def _gliding_voice(seconds: float = 3.0, seed: int = 5) -> np.ndarray:
    """48 kHz, int16 scale: a harmonic voice gliding between 90 and 340 Hz, in pieces, over noise
    that grows 4× for the last second, after a stretch of digital silence."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(48000 * seconds)) / 48000
    f0 = 90 + 250 * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f0) / 48000
    voice = sum(np.sin(k * phase) / k for k in range(1, 20)) * (np.sin(2 * np.pi * 1.3 * t) > -0.3)
    audio = 3000 * voice + 300 * rng.standard_normal(len(t)) * (1 + 3 * (t > seconds - 1))
    audio[4800:9600] = 0.0  # frames 10-19 hold nothing at all
    return audio.astype(np.float32)


@pytest.fixture(scope="module")
def reference():
    audio = _gliding_voice()
    return audio, _c_frame_features(audio)


def test_spectrum_band_energies_and_cepstrum_are_librnnoises(reference):
    audio, c = reference
    spec = xiph48k.spectrum(torch.from_numpy(audio)[None].double())[0]
    assert spec.shape == (len(audio) // xiph48k.FRAME_SIZE, xiph48k.N_BINS)
    # the FFT scaled by 1/960: bins agree to float32 rounding of values up to about 1e3
    np.testing.assert_allclose(torch.view_as_real(spec).reshape(len(spec), -1).numpy(), c["X"], atol=1e-3)
    energy = xiph48k.band_energy(spec.to(torch.complex64)[None])[0]
    np.testing.assert_allclose(energy.numpy(), c["Ex"], rtol=1e-5, atol=1e-4)
    sounding = ~c["silent"].astype(bool)
    cepstrum = xiph48k.cepstrum(energy[None])[0].numpy()
    np.testing.assert_allclose(cepstrum[sounding], c["features"][sounding, : xiph48k.N_BANDS], atol=1e-4)


def test_all_65_features_pitch_included_are_librnnoises(reference):
    audio, c = reference
    analysis = xiph48k.analyse(audio)
    # the pitch search picks librnnoise's period on every frame of a gliding voice, in pauses and noise
    periods = np.round(100 * c["features"][:, 64] + 300).astype(int)
    silent = c["silent"].astype(bool)
    assert silent[11:20].all() and silent.sum() == 9  # a window wholly in the zeros
    np.testing.assert_array_equal(analysis.silent.numpy(), silent)
    np.testing.assert_array_equal(analysis.period.numpy()[~silent], periods[~silent])
    assert len(set(periods[~silent])) > 50  # the voice glides: many periods, not one
    np.testing.assert_allclose(analysis.features.numpy(), c["features"], atol=1e-4)


def test_the_band_matrix_is_a_partition_of_unity_but_at_its_ends():
    per_bin, edges = xiph48k.band_matrix().sum(dim=0), xiph48k.BAND_EDGES
    assert torch.allclose(per_bin[edges[2] : edges[-3]], torch.tensor(1.0))  # overlapping triangles
    # the outermost half-triangles join the first and last bands, times 2/3
    assert torch.allclose(per_bin[: edges[1]], torch.tensor(2 / 3))
    assert torch.allclose(per_bin[edges[-2] : edges[-1]], torch.tensor(2 / 3))
    assert per_bin[edges[-1] :].abs().sum() == 0  # 20 kHz and up: in no band


def test_on_espeak_speech_in_noise_the_pitch_and_features_are_librnnoises():
    (speech,) = EspeakSynthesizer().synthesize(["Hallo, wie geht es dir heute? Das Wetter ist schön."], "de+f2",
                                                 170, 50, 50, seed=1)
    speech = AF.resample(torch.from_numpy(speech).double(), EspeakSynthesizer().sample_rate, 48000).numpy()
    noise = 300 * np.random.default_rng(0).standard_normal(len(speech))
    audio = (speech / np.abs(speech).max() * 12000 + noise).astype(np.float32)
    c = _c_frame_features(audio)
    sounding = ~c["silent"].astype(bool)
    analysis = xiph48k.analyse(audio)
    np.testing.assert_array_equal(analysis.period.numpy()[sounding], np.round(100 * c["features"][sounding, 64] + 300))
    np.testing.assert_allclose(analysis.features.numpy(), c["features"], atol=1e-4)
