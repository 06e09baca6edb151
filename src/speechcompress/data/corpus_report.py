"""What a speech corpus holds before anything trains on it: per source, its minutes, how clean its
clips are (DeepFilterNet3's `clean_snr_db`), the share of frames its VAD labels call speech, the
minutes the cleanliness gate keeps at several thresholds, and a sheet of spectrograms of a few
clips each. Faults a model sweep would never show (a music bed under every line, a second of hum
before each word) show here in minutes.

The fetched corpus's figures come from its manifest; a folder corpus (any folder of audio files,
a source per subfolder) is measured now, on up to `clips_per_source` clips of each source.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechcompress.data.mixing import vad_labels

GATES_DB = (10.0, 15.0, 20.0, 25.0)


@dataclass(frozen=True)
class SourceClips:
    """One source's speech clips: files (to read), seconds and cleanliness figures (nan: unknown)."""

    name: str
    files: list[Path]
    seconds: list[float]
    clean_snr_db: list[float]


@dataclass(frozen=True)
class SourceRow:
    name: str
    clips: int
    minutes: float
    clean_snr_db: tuple[float, float, float]  # 10th percentile, median, 90th percentile
    speech_share: float  # of the 10 ms frames of the clips read, labelled speech
    minutes_kept: dict[float, float]  # gate (dB) -> minutes at or above it (from the measured clips' share)


def _read(path: Path, sample_rate: int) -> np.ndarray:
    from speechcompress.data.audio import read_audio

    return read_audio(path, sample_rate)[0]


def fetched_sources(root: str | Path) -> list[SourceClips]:
    """The fetched corpus's speech clips, a source per package, with the manifest's figures."""
    from speechcompress.data.real import corpus_folder, read_manifest

    folder, by_package = corpus_folder(root), defaultdict(list)
    for clip in read_manifest(root):
        if clip.kind == "speech":
            by_package[clip.package].append(clip)
    return [SourceClips(package, [folder / c.file for c in clips], [c.seconds for c in clips],
                        [c.clean_snr_db for c in clips]) for package, clips in sorted(by_package.items())]


def folder_sources(corpus: str | Path, clips_per_source: int, sample_rate: int = 16000) -> list[SourceClips]:
    """A folder of speech files, a source per subfolder (the folder itself for files at its top);
    `clips_per_source` clips of each (spread over its sorted files) measured with DeepFilterNet3,
    the others' figures unknown (nan)."""
    import soundfile as sf

    from speechcompress.data.audio import list_audio
    from speechcompress.data.cleanliness import measure_streams

    corpus, by_source = Path(corpus), defaultdict(list)
    for file in list_audio(corpus):
        relative = file.relative_to(corpus)
        by_source[relative.parts[0] if len(relative.parts) > 1 else corpus.name].append(file)
    chosen = [files[int(i)] for files in by_source.values()
              for i in np.unique(np.linspace(0, len(files) - 1, clips_per_source).round())]
    waves = {str(file): _read(file, sample_rate) for file in chosen}
    figures = measure_streams(list(waves), [str(Path(key).parent) for key in waves], waves.get, sample_rate)
    return [SourceClips(name, files, [sf.info(str(f)).duration for f in files],
                        [figures.get(str(f), float("nan")) for f in files]) for name, files in sorted(by_source.items())]


def source_row(source: SourceClips, label_clips: int, sample_rate: int = 16000) -> SourceRow:
    """A source's figures; the speech share over up to `label_clips` of its clips (spread evenly)."""
    figures, seconds = np.array(source.clean_snr_db, float), np.array(source.seconds, float)
    picks = np.unique(np.linspace(0, len(source.files) - 1, min(label_clips, len(source.files))).round().astype(int))
    labels = np.concatenate([vad_labels(_read(source.files[i], sample_rate), sample_rate) for i in picks])
    measured = np.isfinite(figures)
    quantiles = tuple(float(q) for q in np.percentile(figures[measured], [10, 50, 90])) if measured.any() else (np.nan,) * 3
    minutes, measured_seconds = seconds.sum() / 60, max(seconds[measured].sum(), 1e-9)
    kept = {gate: float(minutes * seconds[measured & (figures >= gate)].sum() / measured_seconds) for gate in GATES_DB}
    return SourceRow(source.name, len(source.files), float(minutes), quantiles, float(labels.mean()), kept)


def format_table(rows: Sequence[SourceRow]) -> str:
    """The rows as a Markdown table."""
    gates = " | ".join(f"min ≥ {g:.0f} dB" for g in GATES_DB)
    lines = [f"| source | clips | minutes | clean SNR dB p10 / median / p90 | frames labelled speech | {gates} |",
             "|---|---|---|---|---|" + "---|" * len(GATES_DB)]
    for row in rows:
        p10, median, p90 = row.clean_snr_db
        kept = " | ".join(f"{row.minutes_kept[g]:.1f}" for g in GATES_DB)
        lines.append(f"| {row.name} | {row.clips} | {row.minutes:.1f} | {p10:.1f} / {median:.1f} / {p90:.1f} | "
                     f"{row.speech_share:.2f} | {kept} |")
    return "\n".join(lines)


def write_report(sources: Sequence[SourceClips], folder: str | Path, label_clips: int, title: str) -> str:
    """`report.md` (the table and the sheet) and `sheet.png` in `folder`; returns the table."""
    from speechcompress.atomic_files import atomic_path

    table = format_table([source_row(source, label_clips) for source in sources])
    spectrogram_sheet(sources, Path(folder) / "sheet.png")
    with atomic_path(Path(folder) / "report.md") as partial:
        partial.write_text(f"# Corpus report: {title}\n\n{table}\n\n![spectrograms](sheet.png)\n")
    return table


def spectrogram_sheet(sources: Sequence[SourceClips], path: str | Path, per_source: int = 4,
                      sample_rate: int = 16000, seconds: float = 3.0) -> Path:
    """A PNG of `per_source` clips' spectrograms per source (a row each, the first `seconds` of each,
    at peak 1), from the cleanest to the noisiest of clips spread over the source, titled with
    their clean SNR."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from speechcompress.atomic_files import atomic_path
    from speechcompress.spectrogram import plot_spectrogram

    figure, axes = plt.subplots(len(sources), per_source, figsize=(3.2 * per_source, 2.2 * len(sources)),
                                squeeze=False, sharey=True)
    for row, source in zip(axes, sources, strict=True):
        spread = np.unique(np.linspace(0, len(source.files) - 1, per_source * 4).round().astype(int))
        picks = sorted(spread, key=lambda i: -np.nan_to_num(source.clean_snr_db[i], nan=-99.0))
        picks = [picks[int(k)] for k in np.linspace(0, len(picks) - 1, per_source).round()]
        for axis, index in zip(row, picks, strict=True):
            wave = _read(source.files[index], sample_rate)[: int(seconds * sample_rate)]
            plot_spectrogram(axis, wave / (np.abs(wave).max() + 1e-9), sample_rate)
            axis.set_title(f"{source.files[index].name[-28:]}\n{source.clean_snr_db[index]:.1f} dB", fontsize=7)
            axis.tick_params(labelsize=6)
        row[0].set_ylabel(source.name, fontsize=8)
    figure.tight_layout()
    path = Path(path)
    with atomic_path(path) as partial:
        figure.savefig(partial, dpi=64, format="png")
    plt.close(figure)
    return path
