import numpy as np
import pytest
import soundfile as sf

from speechcompress.data.audio import read_audio
from speechcompress.data.espeak import EspeakCrashed, EspeakSynthesizer
from speechcompress.data.folders import PairedFolderDataset, dns_mixtures
from speechcompress.data.microphone import clip_peaks, level_changes
from speechcompress.data.mixing import MixtureDataset, mix_at_snr, pad_collate, vad_labels
from speechcompress.data.noise import NOISE_FAMILIES, render_noise
from speechcompress.data.rooms import EARLY_SECONDS, RoomResponse, reverberate, simulate_room
from speechcompress.data.splits import record
from speechcompress.data.synthetic import load_synthetic_split, split_choices

from .conftest import compose_config

SMALL = dict(utterances=6, noise_clips_per_family=1, noise_seconds=2.0, babble_talkers=3, rooms=2)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("synthetic")


def test_synthetic_split_is_deterministic_cached_and_disjoint(cache):
    first = load_synthetic_split(cache, "val", 16000, seed=7, **SMALL)
    again = load_synthetic_split(cache, "val", 16000, seed=7, **SMALL)  # from the cache this time
    other = load_synthetic_split(cache, "test", 16000, seed=7, **SMALL)
    assert len(list(cache.glob("*.npz"))) == 2
    assert len(first.speech) == 6 and set(first.noise_kinds) == set(NOISE_FAMILIES)
    for a, b in zip(first.speech, again.speech, strict=True):
        assert np.array_equal(a, b)
    assert not any(len(a) == len(b) and np.allclose(a, b) for a in first.speech for b in other.speech)
    for clip in first.speech:
        assert 1.0 < len(clip) / 16000 < 20.0 and 0.5 < np.abs(clip).max() <= 0.9 + 1e-3
    for clip in first.noise:
        assert np.sqrt(np.mean(clip**2)) == pytest.approx(1.0, rel=0.01)
    assert all(np.array_equal(a, b) for a, b in zip(first.speech, first.heard, strict=True))  # no rooms drawn


def test_espeak_calls_are_independent_and_a_crash_costs_only_its_own():
    synth = EspeakSynthesizer()
    texts = ["a breathy voice, twice.", "and a second sentence."]
    first = synth.synthesize(texts, "en+f3", 170, 40, 60, seed=5)
    synth.synthesize(["something else between."], "de+Alicia", 250, 20, 90, seed=1)
    assert len(first) == 2 and all(len(wave) > 0.5 * 22050 for wave in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, synth.synthesize(texts, "en+f3", 170, 40, 60, seed=5), strict=True))
    assert not np.array_equal(first[0], synth.synthesize(texts, "en+f3", 170, 40, 60, seed=6)[0])  # breath noise
    # espeak-ng (espeakng-loader 0.2.4) dies of a segmentation fault on this request
    with pytest.raises(EspeakCrashed, match="es\\+rob"):
        synth.synthesize(["damoltro."], "es+rob", 165, 10, 100)
    with pytest.raises(ValueError, match="no voice 'xx-nowhere'"):
        synth.synthesize(["hello."], "xx-nowhere")
    assert np.array_equal(first[1], synth.synthesize(texts, "en+f3", 170, 40, 60, seed=5)[1])


def test_a_split_is_the_same_audio_whatever_was_synthesised_before_it(tmp_path):
    # espeak-ng seeds breath noise from the clock and carries state from one utterance to the next, so a
    # cache made after other work (another split, or anything spoken in this process) used to differ.
    first = load_synthetic_split(tmp_path / "a", "val", 16000, seed=7, **SMALL)
    EspeakSynthesizer().synthesize(["something else first, breathily."], "en+f3")
    load_synthetic_split(tmp_path / "b", "test", 16000, seed=7, **SMALL)
    again = load_synthetic_split(tmp_path / "c", "val", 16000, seed=7, **SMALL)
    for part in ("speech", "heard", "noise"):
        assert all(np.array_equal(a, b) for a, b in zip(getattr(first, part), getattr(again, part), strict=True)), part


@pytest.mark.parametrize("sample_rate", [16000, 48000])
def test_every_noise_family_renders_finite_audio_of_the_requested_length_and_level(sample_rate):
    talkers = [np.sin(np.arange(sample_rate) * 0.05 * (k + 1)).astype(np.float32) for k in range(3)]
    for family in NOISE_FAMILIES:
        for seed in range(2):
            clip = render_noise(family, np.random.default_rng(seed), int(1.5 * sample_rate), sample_rate, talkers)
            assert clip.shape == (int(1.5 * sample_rate),) and clip.dtype == np.float32, family
            assert np.isfinite(clip).all(), family
            assert np.sqrt(np.mean(clip.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-3), family
        other = render_noise(family, np.random.default_rng(2), int(1.5 * sample_rate), sample_rate, talkers)
        assert not np.allclose(clip, other), f"{family}: two seeds gave the same clip"
    with pytest.raises(ValueError, match="unknown noise family 'thunder'"):
        render_noise("thunder", np.random.default_rng(0), 100, sample_rate)


def test_reverberation_keeps_the_target_aligned_on_a_known_delay():
    rate, delay = 16000, 37
    rir = np.zeros(4000, np.float32)
    rir[delay] = 1.0                 # direct sound, 37 samples after emission
    rir[delay + 80] = 0.5            # a reflection 5 ms later: early, part of the target
    rir[delay + 2000] = 0.3          # one 125 ms later: late reverberation, not in the target
    x = np.random.default_rng(0).standard_normal(rate).astype(np.float32)
    reverberant, early = reverberate(x, RoomResponse(rir, delay), rate)
    assert reverberant.shape == early.shape == x.shape
    shifted = lambda lag: np.concatenate([np.zeros(lag, np.float32), x[:-lag]])  # noqa: E731
    np.testing.assert_allclose(early, x + 0.5 * shifted(80), atol=1e-4)
    np.testing.assert_allclose(reverberant, early + 0.3 * shifted(2000), atol=1e-4)
    assert 80 < EARLY_SECONDS * rate < 2000


def test_simulated_rooms_put_the_direct_sound_where_they_say():
    rate = 16000
    x = np.random.default_rng(1).standard_normal(rate).astype(np.float32)
    for seed in range(4):
        room = simulate_room(np.random.default_rng(seed), rate, distance=(0.3, 1.0))  # near: the direct sound dominates
        assert np.isfinite(room.rir).all() and int(np.argmax(np.abs(room.rir))) == room.direct
        _, early = reverberate(x, room, rate)
        lags = np.arange(-50, 51)
        correlation = [np.dot(early[max(0, k):len(x) + min(0, k)], x[max(0, -k):len(x) - max(0, k)]) for k in lags]
        assert lags[int(np.argmax(correlation))] == 0


def test_a_recording_colours_input_and_target_alike_and_clipping_is_light():
    rate = 16000
    x = np.random.default_rng(2).standard_normal(rate).astype(np.float32)
    rooms = [simulate_room(np.random.default_rng(4), rate)]
    target, heard = record(np.random.default_rng(3), x, rooms, reverb=0.0, devices=1.0, sample_rate=rate)
    np.testing.assert_allclose(heard, target, atol=1e-6)  # one device response for both
    assert not np.allclose(heard, x, atol=1e-2)
    target, heard = record(np.random.default_rng(3), x, rooms, reverb=1.0, devices=1.0, sample_rate=rate)
    assert not np.allclose(heard, target, atol=1e-2)  # the late reverberation is in the input only
    gain = level_changes(np.random.default_rng(5), 4 * rate, rate)
    assert gain.shape == (4 * rate,) and 10 ** (-9.5 / 20) < gain.min() <= gain.max() < 10 ** (9.5 / 20)
    clipped = clip_peaks(np.random.default_rng(6), x)
    assert np.abs(clipped).max() < np.abs(x).max() and 0.0005 < np.mean(clipped != x) < 0.011


def test_the_unseen_split_shares_no_noise_family_or_voice_with_training(cache):
    cfg = compose_config(["+experiment=rnnoise"])
    held_out = cfg.data.train.held_out
    assert cfg.data.test_unseen.held_out == cfg.data.val.held_out == cfg.data.test.held_out == held_out
    unseen_families, unseen_voices = split_choices("test_unseen", held_out)
    for split in ("train", "val", "test"):
        families, voices = split_choices(split, held_out)
        assert not set(families) & set(unseen_families)
        assert not set(voices.languages) & set(unseen_voices.languages)
        assert not set(voices.variants) & set(unseen_voices.variants)
        assert set(families) | set(unseen_families) == set(NOISE_FAMILIES)
    assert len(unseen_families) >= 3 and len(NOISE_FAMILIES) - len(unseen_families) >= 15
    corpus = dict(SMALL, held_out=held_out)
    seen = load_synthetic_split(cache, "train", 16000, seed=7, **corpus)
    unseen = load_synthetic_split(cache, "test_unseen", 16000, seed=7, **corpus)
    assert set(unseen.noise_kinds) == set(unseen_families) and not set(seen.noise_kinds) & set(unseen.noise_kinds)
    with pytest.raises(ValueError, match=r"held_out.noise names \['thunder'\]"):
        split_choices("train", {"noise": ["thunder"]})


def test_mix_at_snr_hits_the_requested_snr():
    rng = np.random.default_rng(0)
    clean, noise = rng.standard_normal(16000), rng.standard_normal(16000) * 3
    for snr in (-5.0, 0.0, 12.5):
        scaled = mix_at_snr(clean, noise, snr)
        assert 10 * np.log10(np.mean(clean**2) / np.mean(scaled**2)) == pytest.approx(snr, abs=1e-6)


def test_mixtures_hit_their_snr_over_the_speech_frames(cache):
    split = load_synthetic_split(cache, "val", 16000, seed=7, **SMALL)
    mixtures = MixtureDataset(split.speech, split.noise, 16000, length=6, segment_seconds=1.5, snr_db=(7.5, 7.5),
                              fixed=True)
    for i in range(6):
        item = mixtures[i]
        clean, noise = item["clean"].numpy(), (item["noisy"] - item["clean"]).numpy()
        speech_frames = np.repeat(item["vad"].numpy() > 0, 160)[: len(clean)]
        snr = 10 * np.log10(np.mean(clean[speech_frames] ** 2) / np.mean(noise**2))
        assert snr == pytest.approx(7.5, abs=0.05)


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
    wet = load_synthetic_split(cache, "val", 16000, seed=7, **dict(SMALL, reverb_speech=1.0, reverb_noise=1.0, devices=1.0))
    assert not any(np.allclose(a, b, atol=1e-3) for a, b in zip(wet.speech, wet.heard, strict=True))
    rough = MixtureDataset(wet.speech, wet.noise, 16000, length=8, segment_seconds=1.0, fixed=True, seed=3,
                           heard=wet.heard, level_changes=1.0, clip=1.0)
    for i in range(8):
        item = rough[i]
        assert np.isfinite(item["noisy"]).all() and item["noisy"].abs().max() < 1.0 and item["clean"].abs().max() < 1.0
    assert np.array_equal(rough[5]["noisy"], rough[5]["noisy"])
    with pytest.raises(ValueError, match="need rooms"):
        load_synthetic_split(cache, "val", 16000, seed=7, **dict(SMALL, rooms=0, reverb_speech=0.5))
    (cache / "a-file").touch()
    with pytest.raises(ValueError, match="a-file.*writable"):
        load_synthetic_split(cache / "a-file", "val", 16000, seed=7, **SMALL)
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
