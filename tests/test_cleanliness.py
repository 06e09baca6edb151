"""Clean references: DeepFilterNet3's cleanliness figure, the committed table of the real corpus's
figures, the gate that leaves noisy clips out, and VAD labels that follow the voice, not the floor."""

from __future__ import annotations

import re

import numpy as np
import pytest

from speechcompress.config import compose_config
from speechcompress.data.cleanliness import TABLE, measure_streams, read_table
from speechcompress.data.deepfilternet import DeepFilterNet3
from speechcompress.data.mixing import mix_at_snr, vad_labels
from speechcompress.data.real import SOURCES, Clip, split_clips
from tests.conftest import espeak_speech

RATE = 16000


def _with_noise(clean: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(len(clean)).astype(np.float32)
    voiced = np.repeat(vad_labels(clean, RATE) > 0, RATE // 100)[: len(clean)]
    return clean + mix_at_snr(clean, noise, snr_db, voiced)


def test_a_stream_gives_its_first_clips_what_they_get_without_the_rest():
    clips = [espeak_speech(0.0, text) for text in ("one small house", "by the river", "in the morning")]
    dfn = DeepFilterNet3()
    three, two = dfn.enhance_stream(clips, RATE), dfn.enhance_stream(clips[:2], RATE)
    assert [len(out) for out in three] == [len(clip) for clip in clips]
    for a, b in zip(three[:2], two, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)  # so a table's figures can be recomputed from a stream's start


def test_the_gate_leaves_out_a_clip_with_noise_at_5_db_and_keeps_its_clean_source():
    gate = compose_config(["+experiment=rnnoise"]).data.real.min_clean_snr_db
    clean = espeak_speech(0.3, "the small house by the river was quiet in the morning")
    waves = {"p:clean": clean, "p:noisy": _with_noise(clean, 5.0)}
    figures = measure_streams(list(waves), list(waves), waves.get, RATE)
    assert figures["p:noisy"] < gate <= figures["p:clean"]
    clips = [Clip(f"{name}.flac", "speech", "p", name, "en", 2.0, 8000.0, "test", figure)
             for name, figure in figures.items()]
    clips.append(Clip("hum.flac", "noise", "n", "n:hum", "", 2.0, 500.0, "test"))  # noise has no figure, and needs none
    speech, _ = split_clips(clips, "train", [], 0.0, min_bandwidth_hz=6000, min_clean_snr_db=gate)
    assert list(speech) == ["p:clean"]
    speech, _ = split_clips(clips, "train", [], 0.0, min_bandwidth_hz=6000, min_clean_snr_db=None)
    assert sorted(speech) == ["p:clean", "p:noisy"]  # None: no gate


def test_the_committed_table_is_what_deepfilternet3_measures(tmp_path):
    """Recomputes the first clips of each of gcin-voice's speakers (the smallest speech package, 8 MB)
    from a fresh download: each speaker's figures come from one stream, whose start is exact."""
    from speechcompress.data.debian import PackagesUnavailable, download_package, package_version
    from speechcompress.data.real import _clips_of, measure_clips

    try:
        unpacked = download_package("gcin-voice", tmp_path / "download")
    except PackagesUnavailable as error:
        pytest.skip(f"cannot recompute the table's sample: {error}")
    version, table = package_version(unpacked, "gcin-voice"), read_table()
    if not any(key[:2] == ("gcin-voice", version) for key in table):
        pytest.skip(f"{TABLE.name} has no figures for gcin-voice {version}: `speechcompress corpus measure` "
                    "writes them for the packages now served")
    clips = []
    for source in (s for s in SOURCES if s.package == "gcin-voice"):
        (tmp_path / "clips" / source.package / source.kind).mkdir(parents=True, exist_ok=True)
        clips += _clips_of(source, unpacked, tmp_path)
    first = [c for speaker in sorted({c.speaker for c in clips}) for c in [c for c in clips if c.speaker == speaker][:6]]
    figures = measure_clips(tmp_path, first)
    for clip in first:
        assert figures[clip.file] == pytest.approx(table["gcin-voice", version, clip.file], abs=0.05), clip.file


def test_every_speech_package_the_corpus_fetches_has_figures_in_the_table():
    table = read_table()
    packages = {package for package, _, _ in table}
    assert {s.package for s in SOURCES if s.kind == "speech"} <= packages
    assert all(re.fullmatch(r"clips/[^/]+/speech/.+\.flac", file) for _, _, file in table)
    values = np.array(list(table.values()))
    assert np.isfinite(values).all() and values.min() < 10 < 25 < values.max()  # a spread, not a constant


def test_labels_mark_the_voice_not_a_noise_lead_in_30_db_down():
    voice = espeak_speech(0.0, "the small house by the river was quiet in the morning")
    noise = np.random.default_rng(1).standard_normal(RATE).astype(np.float32)
    voiced = vad_labels(voice, RATE) > 0
    level = np.mean(np.square(voice[np.repeat(voiced, RATE // 100)[: len(voice)]]))
    lead_in = noise * np.sqrt(level * 10 ** (-30 / 10))  # 1 s of noise 30 dB below the voice's level
    clip = np.concatenate([lead_in, voice])
    labels = vad_labels(clip, RATE)
    peak = np.max(np.convolve(np.square(voice), np.ones(160) / 160, "valid"))
    assert level * 10 ** (-30 / 10) > peak * 1e-4  # within 40 dB of the peak: a peak-relative rule calls it speech
    assert labels[:100].max() == 0  # the lead-in: no voice, no label
    assert labels[100:][voiced].mean() > 0.9  # the voice keeps its labels
    assert labels[100:][~voiced].mean() < 0.2


def test_labels_of_clean_speech_stay_peak_relative():
    """Clean speech has no steady floor (its quietest frames are fades): its labels are those of the
    plain 40 dB rule, so the espeak-ng corpus's labels do not move."""
    voice = espeak_speech(0.5, "the small house by the river was quiet in the morning")
    energy = np.convolve(np.square(np.pad(voice, (0, -len(voice) % 160))), np.ones(160), "valid")[::160] / 160
    plain = (energy > max(energy.max() * 1e-4, 1e-7)).astype(np.float32)
    assert np.array_equal(vad_labels(voice, RATE), plain)


def _report_rows(printed: str) -> dict[str, list[str]]:
    return {cells[0]: cells[1:] for line in printed.splitlines() if line.startswith("| ") and "---" not in line
            for cells in [[c.strip() for c in line.strip("|").split("|")]] if cells[0] != "source"}


def test_corpus_report_on_a_folder_corpus_shows_which_source_is_noisy(tmp_path, capsys):
    import soundfile as sf

    from speechcompress.cli import main

    for i, text in enumerate(("one small house", "by the river", "in the quiet morning")):
        clean = espeak_speech(0.2, text)
        for source, wave in (("studio", clean), ("game", _with_noise(clean, 5.0, seed=i))):
            (tmp_path / "corpus" / source).mkdir(parents=True, exist_ok=True)
            sf.write(str(tmp_path / "corpus" / source / f"{i}.wav"), wave, RATE)
    out = tmp_path / "report"
    assert main(["corpus", "report", "--corpus", str(tmp_path / "corpus"), "--clips", "3", "--out", str(out)]) == 0
    rows = _report_rows(capsys.readouterr().out)
    assert sorted(rows) == ["game", "studio"] and rows["studio"][0] == rows["game"][0] == "3"
    median = {source: float(cells[2].split("/")[1]) for source, cells in rows.items()}
    assert median["game"] < 15 < median["studio"]
    assert float(rows["game"][5]) == 0.0 < float(rows["studio"][5])  # minutes kept at 15 dB
    assert (out / "sheet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "sheet.png" in (out / "report.md").read_text()


def test_a_manifest_fetched_before_cleanliness_gets_its_figures_once(tmp_path, capsys):
    from speechcompress.cli import main
    from speechcompress.data.real import corpus_folder, read_manifest
    from tests.test_real import make_corpus

    make_corpus(tmp_path, {"a:1": 3, "b:1": 3}, {"n:hum": 2}, cleanliness=False)
    manifest = corpus_folder(tmp_path) / "manifest.csv"
    assert "clean_snr_db" not in manifest.read_text().splitlines()[0]
    clips = read_manifest(tmp_path)
    assert all(np.isfinite(c.clean_snr_db) for c in clips if c.kind == "speech")
    assert "clean_snr_db" in manifest.read_text().splitlines()[0]  # written back: measured once
    assert [c.clean_snr_db for c in read_manifest(tmp_path)] == pytest.approx([c.clean_snr_db for c in clips],
                                                                                 nan_ok=True)
    assert main(["corpus", "report", "--root", str(tmp_path), "--clips", "2", "--out", str(tmp_path / "out")]) == 0
    assert sorted(_report_rows(capsys.readouterr().out)) == ["a", "b"]
