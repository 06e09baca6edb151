"""How clean a speech recording is: the SNR between the clip and what DeepFilterNet3 leaves of it.

A clean target teaches a denoiser to remove noise; a target with a music bed, hiss or hum under
the voice teaches it to keep them. `clean_snr_db` is 10·log10(clip energy / energy DFN3 removed):
high where DFN3 finds little to take away (klettres' British English reader: median 31 dB), low
for lines spoken over a game's music (fillets: median 10 dB). DFN3 runs over one speaker's clips as a stream (`STREAM_CLIPS` at a time, in manifest
order): its output on a clip depends on what it heard in the seconds before, and a stream is what
it was made for. Measuring the whole fetched corpus takes about 40 minutes on one core, so the
figures of the packages `real.SOURCES` names are committed (`TABLE`, keyed by package, version
and file) and looked up at `corpus fetch`; clips the table lacks are measured then.
"""

from __future__ import annotations

import csv
import gzip
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

TABLE = Path(__file__).with_name("cleanliness.csv.gz")
STREAM_CLIPS = 200  # clips of one speaker per DFN3 stream
MAX_SNR_DB = 60.0  # a clip DFN3 leaves untouched is clean, not infinitely so


def clean_snr_db(clip: np.ndarray, denoised: np.ndarray) -> float:
    """10·log10(energy of `clip` / energy of `clip - denoised`), at most `MAX_SNR_DB`."""
    removed = float(np.sum(np.square(clip.astype(np.float64) - denoised)))
    energy = float(np.sum(np.square(clip.astype(np.float64))))
    if energy == 0.0:
        return float("nan")
    return min(MAX_SNR_DB, 10 * np.log10(energy / max(removed, energy * 10 ** (-MAX_SNR_DB / 10))))


def measure_streams(keys: Sequence[str], groups: Sequence[str], load: Callable[[str], np.ndarray],
                    sample_rate: int, desc: str = "measuring cleanliness with DeepFilterNet3") -> dict[str, float]:
    """`clean_snr_db` of every clip `keys[i]` (audio from `load`), DFN3 streaming over each group's
    clips in the order given, `STREAM_CLIPS` at a time."""
    from speechcompress.data.deepfilternet import DeepFilterNet3

    denoiser = DeepFilterNet3()
    by_group = defaultdict(list)
    for key, group in zip(keys, groups, strict=True):
        by_group[group].append(key)
    blocks = [clips[i : i + STREAM_CLIPS] for clips in by_group.values() for i in range(0, len(clips), STREAM_CLIPS)]
    figures = {}
    with tqdm(total=len(keys), desc=desc, unit="clip") as progress:
        for block in blocks:
            waves = [load(key) for key in block]
            for key, wave, denoised in zip(block, waves, denoiser.enhance_stream(waves, sample_rate), strict=True):
                figures[key] = round(clean_snr_db(wave, denoised), 2)
            progress.update(len(block))
    return figures


def read_table(path: Path = TABLE) -> dict[tuple[str, str, str], float]:
    """(package, version, file) -> clean_snr_db of the committed table; empty without one."""
    if not path.exists():
        return {}
    with gzip.open(path, "rt", newline="") as handle:
        return {(row["package"], row["version"], row["file"]): float(row["clean_snr_db"])
                for row in csv.DictReader(handle)}


def write_table(rows: dict[tuple[str, str, str], float], path: Path = TABLE) -> None:
    """The table, sorted, gzipped without a timestamp so that the same figures give the same bytes."""
    from speechcompress.atomic_files import atomic_path

    with atomic_path(path) as partial, partial.open("wb") as raw, \
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as zipped:
        text = "package,version,file,clean_snr_db\n" + "".join(
            f"{package},{version},{file},{value}\n" for (package, version, file), value in sorted(rows.items()))
        zipped.write(text.encode())
