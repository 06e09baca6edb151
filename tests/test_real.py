"""The real-recordings corpus: bandwidth, held-out speakers, utterance assembly, the no-apt path, and
test_real in a run. Every corpus here is made in the test (nothing is downloaded)."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from dataclasses import asdict, fields
from pathlib import Path

import mlflow
import numpy as np
import pytest
import soundfile as sf
import torch
from scipy import signal

from speechcompress.config import compose_config
from speechcompress.data.mixing import vad_labels
from speechcompress.data.real import (
    SOURCES,
    Clip,
    assemble_utterance,
    bandwidth_hz,
    clip_name,
    corpus_folder,
    load_real_split,
    read_manifest,
    split_clips,
    trim_silence,
)
from tests.conftest import TINY, sandbox_overrides

RATE = 16000


def _voice(rng: np.random.Generator, seconds: float, pitch: float) -> np.ndarray:
    """A voiced, full-band stand-in for a spoken clip: harmonics of `pitch` under a syllable envelope."""
    t = np.arange(int(seconds * RATE)) / RATE
    harmonics = sum(np.sin(2 * np.pi * pitch * k * t + rng.uniform(0, 6)) / k for k in range(1, 80) if pitch * k < 7800)
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 3 * t)  # syllables, never silent
    return (0.5 * harmonics * envelope / np.abs(harmonics).max() + 0.002 * rng.standard_normal(len(t))).astype(np.float32)


def make_corpus(root: Path, speakers: dict[str, int], noise_groups: dict[str, int], seed: int = 0,
                cleanliness: bool = True) -> None:
    """A corpus of `speakers` ({speaker: clips}) and `noise_groups` ({group: clips}) with its manifest,
    where `read_manifest(root)` looks for it: its speech clean (30 dB) by the manifest, or, without
    `cleanliness`, a manifest as fetched before clips had a cleanliness figure."""
    rng, folder, rows = np.random.default_rng(seed), corpus_folder(root), []
    for kind, groups in (("speech", speakers), ("noise", noise_groups)):
        for number, (speaker, count) in enumerate(groups.items()):
            for k in range(count):
                wave = (_voice(rng, rng.uniform(0.6, 1.5), 110 + 40 * number) if kind == "speech"
                        else 0.3 * rng.standard_normal(int(2.0 * RATE)).astype(np.float32))
                file = f"clips/{speaker.replace(':', '_')}/{k}.flac"
                (folder / file).parent.mkdir(parents=True, exist_ok=True)
                sf.write(str(folder / file), wave, RATE, subtype="PCM_16")
                rows.append(Clip(file, kind, speaker.split(":")[0], speaker, "xx", len(wave) / RATE,
                                 bandwidth_hz(wave, RATE), "test", 30.0 if kind == "speech" else float("nan")))
    columns = [f.name for f in fields(Clip) if cleanliness or f.name != "clean_snr_db"]
    with (folder / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(asdict(row) for row in rows)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("real_corpus")
    make_corpus(root, {"a:1": 6, "a:2": 6, "b:1": 6, "b:2": 6}, {"n:hum": 10, "n:hiss": 10})
    return root


# (package, path inside it as `dpkg-deb -x` unpacks it) and whether it is drawn as noise: files that
# speak (letters, crowds, screams, an announcer) or may sing (music) never are.
NOISE_OR_NOT = {
    ("tuxpaint-stamps-default", "usr/share/tuxpaint/stamps/animals/mammals/koala.ogg"): True,
    ("tuxpaint-stamps-default", "usr/share/tuxpaint/stamps/animals/mammals/koala_desc_fr.ogg"): False,
    ("tuxpaint-stamps-default", "usr/share/tuxpaint/stamps/seasonal/hanukkah/dreydl-nun.ogg"): False,
    ("tuxpaint-stamps-default", "usr/share/tuxpaint/stamps/symbols/letters/a.ogg"): False,
    ("lincity-ng-data", "usr/share/games/lincity-ng/sounds/Farm1.wav"): True,
    ("lincity-ng-data", "usr/share/games/lincity-ng/sounds/School2.wav"): False,
    ("lincity-ng-data", "usr/share/games/lincity-ng/sounds/MarketFull1.wav"): False,
    ("lincity-ng-data", "usr/share/games/lincity-ng/sounds/ResidentialLowLow.wav"): False,
    ("lincity-ng-data", "usr/share/games/lincity-ng/music/default/01 - pronobozo - lincity.ogg"): False,
    ("scorched3d-data", "usr/share/games/scorched3d/data/globalmods/none/data/wav/misc/dog2.wav"): True,
    ("scorched3d-data", "usr/share/games/scorched3d/data/globalmods/none/data/wav/misc/scream1.wav"): False,
    ("scorched3d-data", "usr/share/games/scorched3d/data/globalmods/none/data/wav/misc/cheeringloop.wav"): False,
    ("scorched3d-data", "usr/share/games/scorched3d/data/globalmods/apoc/data/wav/explosions/nuke.wav"): True,
    ("extremetuxracer-data", "usr/share/games/etr/sounds/snow_slide.wav"): True,
    ("extremetuxracer-data", "usr/share/games/etr/music/race1-jt.ogg"): False,
}


@pytest.mark.parametrize(("package", "path"), NOISE_OR_NOT)
def test_noise_sources_leave_out_files_that_speak(package, path):
    noise = [s for s in SOURCES if s.package == package and s.kind == "noise"]
    assert noise, f"no noise source reads {package}"
    assert any(re.search(s.pattern, path) for s in noise) == NOISE_OR_NOT[package, path]


def test_bandwidth_tells_a_band_limited_clip_from_a_full_band_one():
    rng = np.random.default_rng(1)
    full = _voice(rng, 2.0, 150)
    narrow = signal.sosfilt(signal.butter(10, 3800, fs=RATE, output="sos"), full).astype(np.float32)
    assert bandwidth_hz(full, RATE) > 7000
    assert 3000 < bandwidth_hz(narrow, RATE) < 5000
    clips = [Clip(f"{name}.flac", "speech", "p", f"p:{name}", "xx", 2.0, bandwidth_hz(wave, RATE), "test")
             for name, wave in (("full", full), ("narrow", narrow))]
    clips.append(Clip("n.flac", "noise", "n", "n:low", "", 2.0, 500.0, "test"))  # noise may be low-passed by nature
    speech, noise = split_clips(clips, "train", [], 0.0, min_bandwidth_hz=6000)
    assert list(speech) == ["p:full"] and list(noise) == ["n:low"]


def test_clip_names_keep_package_members_apart():
    syllables = ["usr/share/gcin-voice/ogg/\u5df4/3.ogg", "usr/share/gcin-voice/ogg/\u516b/3.ogg"]  # 巴, 八
    assert len({clip_name(member) for member in syllables}) == 2  # once both were usr_share_gcin-voice_ogg_3.ogg
    # plain names stay as they were: the committed cleanliness table is keyed by them
    assert clip_name("usr/share/klettres/en_GB/alpha/a.ogg") == "usr_share_klettres_en_GB_alpha_a.ogg.flac"


def test_trim_silence_keeps_the_speech_and_a_margin():
    wave = np.concatenate([np.zeros(RATE), _voice(np.random.default_rng(2), 1.0, 120), np.zeros(RATE)])
    trimmed = trim_silence(wave, RATE, margin_seconds=0.05)
    assert 1.0 <= len(trimmed) / RATE <= 1.15
    assert len(trim_silence(np.zeros(RATE, np.float32), RATE)) == 0


def test_test_real_speakers_and_noise_files_are_apart_from_trainings(corpus):
    clips = read_manifest(corpus)
    train_speech, train_noise = split_clips(clips, "train", ["a:2", "b:1"], 0.3, 0)
    test_speech, test_noise = split_clips(clips, "test_real", ["a:2", "b:1"], 0.3, 0)
    assert set(train_speech) == {"a:1", "b:2"} and set(test_speech) == {"a:2", "b:1"}
    train_files = {c.file for group in train_noise.values() for c in group}
    test_files = {c.file for group in test_noise.values() for c in group}
    assert train_files and test_files and not train_files & test_files
    assert len(train_files | test_files) == 20
    with pytest.raises(ValueError, match="'nobody'.*its speakers: a:1, a:2, b:1, b:2"):
        split_clips(clips, "test_real", ["nobody"], 0.3, 0)


def test_the_default_held_out_speakers_never_train():
    """The recipe's own settings: test_real's speakers are exactly the held-out ones, and no
    training or validation utterance comes from them."""
    cfg = compose_config(["+experiment=rnnoise"])
    held_out = list(cfg.data.real.held_out_speakers)
    assert cfg.data.test_real.held_out_speakers == held_out and cfg.data.train.real.held_out_speakers == held_out
    others = ["tuxpaint-stamps-default:fr", "fillets-ng-data-cs:v", "gcin-voice:3"]
    clips = [Clip(f"{s}.flac", "speech", s.split(":")[0], s, "xx", 1.0, 8000.0, "test") for s in held_out + others]
    clips.append(Clip("n.flac", "noise", "n", "n:x", "", 1.0, 8000.0, "test"))
    assert set(split_clips(clips, "test_real", held_out, 1.0, 6000)[0]) == set(held_out)
    for split in ("train", "val"):
        assert set(split_clips(clips, split, held_out, 0.0, 6000)[0]) == set(others)


def test_an_assembled_utterance_keeps_its_labels_on_its_clips():
    rng = np.random.default_rng(3)
    clips = [_voice(rng, seconds, 140) for seconds in (0.5, 0.8, 1.1)]
    clips = [trim_silence(c, RATE) for c in clips]
    wave, spans = assemble_utterance(rng, clips, RATE, seconds=(4.0, 5.0))
    assert len(spans) >= 3 and len(wave) >= 4.0 * RATE
    labels = vad_labels(wave, RATE)
    hop = RATE // 100
    inside = np.zeros(len(labels), bool)
    for start, end in spans:
        inside[-(-start // hop) : end // hop] = True
        assert labels[start // hop + 1 : end // hop - 1].all()  # the clip is speech throughout
    edges = np.zeros(len(labels), bool)
    for start, end in spans:  # the frames that hold a clip's first or last samples
        edges[[start // hop, min((end - 1) // hop, len(labels) - 1)]] = True
    assert not labels[~inside & ~edges].any()  # the pauses between the clips are not


def test_a_real_split_is_cached_and_mixes_like_the_synthetic_ones(corpus):
    kwargs = dict(utterances=6, noise_clips_per_group=2, held_out_speakers=["a:2"], noise_test_share=0.3,
                  min_bandwidth_hz=0)
    split = load_real_split(corpus, "test_real", RATE, seed=5, **kwargs)
    again = load_real_split(corpus, "test_real", RATE, seed=5, **kwargs)
    assert len(split.speech) == 6 and len(split.noise) == 4 and sorted(set(split.noise_kinds)) == ["n:hiss", "n:hum"]
    assert all(np.array_equal(a, b) for a, b in zip(split.speech, again.speech, strict=True))
    assert all(abs(np.sqrt(np.mean(n**2)) - 1) < 1e-2 for n in split.noise)


def test_fetch_without_apt_says_so_in_one_line(tmp_path):
    bare = tmp_path / "bin"  # a PATH with no apt-get or dpkg-deb on it
    bare.mkdir()
    done = subprocess.run([sys.executable, "-m", "speechcompress.cli", "corpus", "fetch", "--root",
                           str(tmp_path / "real")], capture_output=True, text=True,
                          env={**os.environ, "PATH": str(bare)}, timeout=120)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "apt-get not found" in lines[0] and "espeak-ng" in lines[0], done.stderr
    assert not (tmp_path / "real").exists() or not any((tmp_path / "real").rglob("manifest.csv"))


def test_a_run_logs_test_real_beside_test(corpus, tmp_path):
    """A short real run on the corpus made above: real voices in training, test_real/* logged, and
    the corpus report when the run asks for it."""
    from speechcompress.train import run

    cfg = compose_config(["+experiment=rnnoise", *TINY, *sandbox_overrides(tmp_path), f"data.real.root={corpus}",
                          "data.real.held_out_speakers=[a:2,b:1]", "data.real.min_bandwidth_hz=0",
                          "data.train.real_utterances=8", "data.train.real_noise_clips_per_group=2",
                          "data.test_real.utterances=4", "trainer.max_steps=20", "trainer.val_check_interval=20",
                          "logger.corpus_report=true"])
    metrics = run(cfg)
    assert metrics["test_real/items"] == 4 and metrics["test/items"] == 8
    assert {"test_real/pesq", "test_real/stoi", "test_real/si_sdr", "test_real/pesq_noisy"} <= set(metrics)
    client = mlflow.tracking.MlflowClient(cfg.logger.tracking_uri)
    (logged,) = client.search_runs([client.get_experiment_by_name(cfg.name).experiment_id])
    assert logged.data.metrics["test_real/stoi"] == pytest.approx(metrics["test_real/stoi"])
    report = {a.path for a in client.list_artifacts(logged.info.run_id, "corpus_report")}
    assert report == {"corpus_report/report.md", "corpus_report/sheet.png"}


def test_real_share_is_the_share_of_items_that_draw_real_speech_and_noise():
    from speechcompress.data.mixing import MixtureDataset
    from speechcompress.data.synthetic import _shares

    rng = np.random.default_rng(4)
    espeak = [_voice(rng, 1.0, 100) for _ in range(6)]
    real = [_voice(rng, 1.0, 300) * 0.5 for _ in range(2)]  # told apart by their peak
    noise = [rng.standard_normal(RATE).astype(np.float32) for _ in range(3)]
    dataset = MixtureDataset(espeak + real, noise + [np.zeros(RATE, np.float32)], RATE, length=2000,
                             segment_seconds=0.5, snr_db=(30.0, 30.0), seed=1,
                             speech_weights=_shares(6, 2, 0.25), noise_weights=_shares(3, 1, 0.4))
    items = [dataset[i] for i in range(2000)]
    assert abs(np.mean([_speaks_real(item) for item in items]) - 0.25) < 0.04
    silent_noise = np.mean([torch.equal(item["noisy"], item["clean"]) for item in items])
    assert abs(silent_noise - 0.4) < 0.04  # the silent stand-in for recorded noise leaves the input as its target


def _speaks_real(item) -> bool:
    """A 300 Hz voice, not a 100 Hz one: the share of energy above 250 Hz."""
    spectrum = np.abs(np.fft.rfft(item["clean"].numpy())) ** 2
    return spectrum[int(250 * len(item["clean"]) / RATE) :].sum() > 0.5 * spectrum.sum()
