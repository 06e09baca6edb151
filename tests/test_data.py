import numpy as np
import pytest
import soundfile as sf

from speechcompress.data.audio import read_audio
from speechcompress.data.folders import PairedFolderDataset, dns_mixtures
from speechcompress.data.mixing import MixtureDataset, mix_at_snr, pad_collate, vad_labels
from speechcompress.data.noise import NOISE_KINDS
from speechcompress.data.synthetic import load_synthetic_split

SMALL = dict(utterances=6, noise_clips_per_kind=1, noise_seconds=2.0, babble_talkers=3)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("synthetic")


def test_synthetic_split_is_deterministic_cached_and_disjoint(cache):
    first = load_synthetic_split(cache, "val", 16000, seed=7, **SMALL)
    again = load_synthetic_split(cache, "val", 16000, seed=7, **SMALL)  # from the cache this time
    other = load_synthetic_split(cache, "test", 16000, seed=7, **SMALL)
    assert len(list(cache.glob("*.npz"))) == 2
    assert len(first.speech) == 6 and set(first.noise_kinds) == set(NOISE_KINDS)
    for a, b in zip(first.speech, again.speech, strict=True):
        assert np.array_equal(a, b)
    assert not any(len(a) == len(b) and np.allclose(a, b) for a in first.speech for b in other.speech)
    for clip in first.speech:
        assert 1.0 < len(clip) / 16000 < 20.0 and 0.5 < np.abs(clip).max() <= 0.9 + 1e-3
    for clip in first.noise:
        assert np.sqrt(np.mean(clip**2)) == pytest.approx(1.0, rel=0.01)


def test_mix_at_snr_hits_the_requested_snr():
    rng = np.random.default_rng(0)
    clean, noise = rng.standard_normal(16000), rng.standard_normal(16000) * 3
    for snr in (-5.0, 0.0, 12.5):
        scaled = mix_at_snr(clean, noise, snr)
        assert 10 * np.log10(np.mean(clean**2) / np.mean(scaled**2)) == pytest.approx(snr, abs=1e-6)


def test_vad_labels_mark_the_speech_frames():
    clean = np.zeros(16000, np.float32)
    clean[4000:8000] = np.sin(np.arange(4000) * 0.3) * 0.5  # frames 25..49 are "speech"
    labels = vad_labels(clean, 16000)
    assert labels.shape == (100,)
    assert labels[25:50].all() and not labels[:25].any() and not labels[50:].any()


def test_mixtures_train_fresh_eval_fixed(cache):
    split = load_synthetic_split(cache, "val", 16000, seed=7, **SMALL)
    fixed = MixtureDataset(split.speech, split.noise, 16000, length=4, segment_seconds=1.0, fixed=True, seed=3)
    assert np.array_equal(fixed[1]["noisy"], fixed[1]["noisy"])
    fresh = MixtureDataset(split.speech, split.noise, 16000, length=4, segment_seconds=1.0)
    assert not np.array_equal(fresh[1]["noisy"], fresh[1]["noisy"])
    item = fresh[0]
    assert item["noisy"].shape == item["clean"].shape == (16000,) and item["vad"].shape == (100,)
    assert item["noisy"].abs().max() < 1.0
    whole = MixtureDataset(split.speech, split.noise, 16000, segment_seconds=None, fixed=True)
    assert len(whole) == 6 and whole[2]["clean"].shape[0] == len(split.speech[2])
    batch = pad_collate([whole[0], whole[1]])
    assert batch["length"].tolist() == [len(split.speech[0]), len(split.speech[1])]


def _tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 440 * t)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def test_read_audio_resamples_and_mixes_down(tmp_path):
    sf.write(tmp_path / "stereo44k.wav", _tone(0.5, 44100, channels=2), 44100)
    wave, rate = read_audio(tmp_path / "stereo44k.wav", 16000)
    assert rate == 16000 and wave.ndim == 1 and abs(len(wave) - 8000) <= 1
    assert np.abs(wave).max() == pytest.approx(0.3, abs=0.02)


def test_unreadable_file_names_the_file(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00not really a wav")
    with pytest.raises(ValueError, match="broken.wav"):
        read_audio(bad)


def test_paired_folders(tmp_path):
    for kind in ("noisy", "clean"):
        (tmp_path / kind).mkdir()
        sf.write(tmp_path / kind / "p1.wav", _tone(1.0, 8000), 8000)
    dataset = PairedFolderDataset(str(tmp_path / "noisy"), str(tmp_path / "clean"), 16000)
    assert dataset[0]["noisy"].shape == (16000,)
    sf.write(tmp_path / "clean" / "p2.wav", _tone(1.0, 8000), 8000)
    with pytest.raises(FileNotFoundError, match="p2.wav"):
        PairedFolderDataset(str(tmp_path / "noisy"), str(tmp_path / "clean"), 16000)


def test_dns_folders_mix_on_the_fly(tmp_path):
    (tmp_path / "clean").mkdir()
    (tmp_path / "noise").mkdir()
    sf.write(tmp_path / "clean" / "a.wav", _tone(1.0, 16000), 16000)
    sf.write(tmp_path / "noise" / "n.flac", np.random.default_rng(0).standard_normal(24000) * 0.1, 48000)
    dataset = dns_mixtures(str(tmp_path / "clean"), str(tmp_path / "noise"), 16000, length=3, segment_seconds=0.5)
    item = dataset[0]
    assert item["noisy"].shape == (8000,) and not np.allclose(item["noisy"], item["clean"])
