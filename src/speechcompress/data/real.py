"""Real recordings from Debian packages: people's voices and recorded noise, beside espeak-ng.

`fetch_corpus` (`speechcompress corpus fetch`) downloads the packages of `SOURCES`, decodes every
matching file to 16 kHz mono, trims its leading and trailing silence, measures its bandwidth, and
writes the clips as FLAC with a manifest (file, package, speaker, language, seconds, bandwidth,
licence, and DeepFilterNet3's cleanliness figure, `data/cleanliness.py`) under a folder named by a
digest of these settings, so a change of them fetches anew.
The packages are deleted once decoded; their copyright files are kept beside the manifest.

`load_real_split` turns the manifest into a split like the synthetic ones: utterances assembled
from several clips of one speaker with pauses between them (most clips are one or two seconds),
heard in the same simulated rooms and through the same device responses as espeak's, and noise
clips of 8 s assembled from one recorded group. `held_out_speakers` names the voices that only
`test_real` speaks with; a share `noise_test_share` of each noise group's files (by a hash of the
file name) is heard only there. Speech clips band-limited below `min_bandwidth_hz`, or less clean
than `min_clean_snr_db`, are left out.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal
from tqdm import tqdm

from speechcompress.atomic_files import atomic_path
from speechcompress.data.audio import resample
from speechcompress.data.debian import download_package, package_version
from speechcompress.data.mixing import frame_energy
from speechcompress.data.rooms import simulate_room
from speechcompress.data.splits import SyntheticSplit, read_split, record_split, write_split
from speechcompress.test_splits import REAL

CORPUS_VERSION = 2  # 2: clips named uniquely (gcin's syllable folders, in Chinese characters, had collapsed into a few names)
CORPUS_RATE = 16000
REAL_SPLITS = {"train": 10, "val": 11, REAL: 12}  # seeds apart from the synthetic splits'


@dataclass(frozen=True)
class Source:
    """Files of one Debian package. `pattern` matches a file's path inside the package (or inside
    `archive`, a zip the package ships); its named groups give the `voice` (else the language is
    the voice), the `language` (else `language`) and, for noise, the `group` (else `voice`)."""

    package: str
    kind: str  # "speech" or "noise"
    pattern: str
    licence: str  # as the package's copyright file states it (copied beside the manifest)
    language: str = ""
    voice: str = ""
    archive: str = ""


SOURCES: tuple[Source, ...] = (
    # Spoken descriptions of the drawing stamps, one volunteer per language (Catalan partly ~4 kHz).
    Source("tuxpaint-stamps-default", "speech", r"stamps/.+_desc_(?P<language>[a-z]+)\.ogg$", "GPL-2"),
    # Czech acted lines: the two fish (v, m) and a score of minor characters, named in the file.
    Source("fillets-ng-data-cs", "speech", r"sound/[^/]+/cs/[a-z0-9_]+-(?P<voice>[a-z]+)-[^/]+\.ogg$", "GPL-2",
           language="cs"),
    # Letters and syllables read aloud, one reader per language.
    Source("klettres-data", "speech", r"klettres/(?P<language>[a-zA-Z_]+)/.+\.ogg$", "GPL-2+"),
    # Words read aloud, one reader per language (some files are 8 kHz: the bandwidth check drops them).
    Source("ktuberling-data", "speech", r"sounds/(?P<language>[a-zA-Z_@]+)/[^/]+\.(?:ogg|wav|opus)$", "GPL-2+"),
    # Mandarin syllables by two speakers, 3 and 5 (licences per speaker: GPL-3 or LGPL-3, CC-BY-3).
    Source("gcin-voice", "speech", r"ogg/[^/]+/(?P<voice>[35])\.ogg$", "GPL-3 or LGPL-3 (3), CC-BY-3 (5)",
           language="zh"),
    # Ambiences (fire, water, wind, thunder, city, night, machinery), footsteps, doors, breaking
    # glass / wood / metal, vehicles; voices, TV news and radio messages left out.
    Source("ufoai-sound", "noise",
           r"sound/(?P<group>ambience|footsteps|doors|misc|ugv|impact)/(?!tv_news|radiomessage|talk)[^/]+\.ogg$",
           "GPL-2+, CC-BY-3.0 or CC-BY-SA-3.0 per file", archive="usr/share/games/ufoai/base/0snd.pk3"),
    # A real keyboard's key clicks.
    Source("bucklespring-data", "noise", r"buckle/wav/[^/]+\.wav$", "GPL-2+", voice="keys"),
    # The stamps' sounds: animals, household machines, vehicles, instruments (not the spoken
    # letters and numbers under symbols/, nor the dreidel's sides, which speak their Hebrew letters).
    Source("tuxpaint-stamps-default", "noise",
           r"stamps/(?!symbols/|military/|seasonal/hanukkah/dreydl-)(?P<group>[^/]+)/(?:.+/)?(?![^/]*_desc)[^/]+\.(?:ogg|wav)$", "GPL-2"),
    # A city's places: farms, mills, mines, industry, traffic, trains, harbours, fire, water, wind
    # (the schools, markets, homes, sports grounds, clinics, shanties and universities, which hold
    # voices, left out).
    Source("lincity-ng-data", "noise",
           r"sounds/(?!School|SportsCroud|Market|Residential|Health|Shanty|University)[A-Za-z]+[0-9]*\.wav$", "GPL-2+",
           voice="city"),
    # Dogs, cows, sheep, roosters, frogs, gulls, bats, a wolf, birdsong, rain, thunder, waves,
    # aircraft, car horns and sirens (screams, cheering, city crowds and the announcer left out) ...
    Source("scorched3d-data", "noise",
           r"data/wav/misc/(?!scream|cheering|citysounds|fight4life|extralife|play\.|text\.)[^/]+\.wav$",
           "GPL-2+ (apoc mod: CC-BY-SA-3)", voice="misc"),
    # ... and explosions, shots, shields and tank tracks.
    Source("scorched3d-data", "noise", r"data/wav/(?:explosions|movement|shoot|shield|battery)/[^/]+\.wav$",
           "GPL-2+ (apoc mod: CC-BY-SA-3)", voice="weapons"),
    # Skis sliding on snow, ice, mud, grass, leaves and rock.
    Source("extremetuxracer-data", "noise", r"etr/sounds/[^/]+\.wav$", "GPL-2+", voice="slides"),
)
FETCH = dict(trim_db=-40.0, min_seconds=0.25)


class CorpusMissing(FileNotFoundError):
    """The real-recordings corpus has not been fetched (or cannot be, on this machine)."""


@dataclass(frozen=True)
class Clip:
    """One row of the manifest."""

    file: str  # relative to the corpus folder
    kind: str
    package: str
    speaker: str  # package:voice for speech, package:group for noise
    language: str
    seconds: float
    bandwidth_hz: float
    licence: str
    clean_snr_db: float = float("nan")  # speech: the clip against DeepFilterNet3's output (data/cleanliness.py)


def corpus_folder(root: str | Path) -> Path:
    """Where the corpus of the current `SOURCES` and fetch settings lives under `root`."""
    settings = dict(version=CORPUS_VERSION, rate=CORPUS_RATE, sources=[asdict(s) for s in SOURCES], **FETCH)
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    return Path(root) / f"v{CORPUS_VERSION}-{digest}"


def bandwidth_hz(wave: np.ndarray, sample_rate: int, floor_db: float = 50.0) -> float:
    """The highest frequency at which the clip's long-term spectrum is within `floor_db` of its
    peak: speech falls some 40 dB from its low formants to 8 kHz, a low-pass cliff far more."""
    if len(wave) < 256 or not np.any(wave):
        return 0.0
    frequencies, power = signal.welch(wave, sample_rate, nperseg=min(1024, len(wave)))
    level = 10 * np.log10(np.convolve(power, np.ones(5) / 5, mode="same") + 1e-20)
    return float(frequencies[np.nonzero(level > level.max() - floor_db)[0][-1]])


def trim_silence(wave: np.ndarray, sample_rate: int, threshold_db: float = -40.0, margin_seconds: float = 0.05
                 ) -> np.ndarray:
    """`wave` without its leading and trailing 10 ms frames quieter than `threshold_db` below its
    loudest, keeping `margin_seconds` beside the speech; an empty array when nothing is louder."""
    energy = frame_energy(wave, sample_rate)
    loud = np.nonzero(energy > energy.max(initial=0.0) * 10 ** (threshold_db / 10))[0]
    if not len(loud) or energy.max(initial=0.0) == 0.0:
        return wave[:0]
    hop, margin = len(wave) / len(energy), int(margin_seconds * sample_rate)
    start = max(int(loud[0] * hop) - margin, 0)
    end = min(int((loud[-1] + 1) * hop) + margin, len(wave))
    return wave[start:end]


def _members(source: Source, unpacked: Path) -> Iterator[tuple[str, bytes | Path]]:
    """(path inside the package or archive, the file or its bytes) of every file `source` matches."""
    pattern = re.compile(source.pattern)
    if source.archive:
        with zipfile.ZipFile(unpacked / source.archive) as archive:
            for name in sorted(archive.namelist()):
                if pattern.search(name):
                    yield name, archive.read(name)
        return
    for path in sorted(p for p in unpacked.rglob("*") if p.is_file()):
        relative = path.relative_to(unpacked).as_posix()
        if pattern.search(relative):
            yield relative, path


def _decode(data: bytes | Path) -> np.ndarray:
    wave, rate = sf.read(io.BytesIO(data) if isinstance(data, bytes) else str(data), dtype="float32", always_2d=True)
    return resample(wave.mean(axis=1), rate, CORPUS_RATE)


def clip_name(member: str) -> str:
    """The FLAC name of a package member: its path with every run of characters outside A-Z a-z 0-9
    . _ - as one '_', and, where that dropped more than the slashes (gcin's syllable folders are
    named in Chinese characters), a digest of the path, so that no two members share a name."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", member)
    if re.search(r"[^A-Za-z0-9._/-]", member):
        name += "-" + hashlib.sha1(member.encode()).hexdigest()[:8]
    return name + ".flac"


def _clips_of(source: Source, unpacked: Path, folder: Path) -> list[Clip]:
    pattern, clips = re.compile(source.pattern), []
    members = list(_members(source, unpacked))
    for name, data in tqdm(members, desc=f"decoding {source.package} ({source.kind})", unit="file", leave=False):
        groups = pattern.search(name).groupdict()
        language = groups.get("language") or source.language
        voice = groups.get("group") or groups.get("voice") or source.voice or language
        try:
            wave = _decode(data)
        except (sf.LibsndfileError, RuntimeError, ValueError):
            continue  # a file libsndfile cannot read is left out, as a silent one is
        if source.kind == "speech":
            wave = trim_silence(wave, CORPUS_RATE, FETCH["trim_db"])
        if len(wave) < FETCH["min_seconds"] * CORPUS_RATE or not np.any(wave):
            continue
        relative = Path("clips") / source.package / source.kind / clip_name(name)
        sf.write(str(folder / relative), wave / max(1.0, float(np.abs(wave).max())), CORPUS_RATE, subtype="PCM_16")
        clips.append(Clip(relative.as_posix(), source.kind, source.package, f"{source.package}:{voice}", language,
                          round(len(wave) / CORPUS_RATE, 3), round(bandwidth_hz(wave, CORPUS_RATE), 1),
                          source.licence))
    return clips


def fetch_corpus(root: str | Path) -> Path:
    """Fetch, decode and describe the real recordings under `root` once; returns the manifest's
    path. Raises `PackagesUnavailable` (one line) where Debian packages cannot be had."""
    folder = corpus_folder(root)
    manifest = folder / "manifest.csv"
    if manifest.exists():
        return manifest
    work = folder / "download"
    shutil.rmtree(folder / "clips", ignore_errors=True)  # what an interrupted fetch left
    clips, versions = [], {}
    for package in dict.fromkeys(s.package for s in SOURCES):
        unpacked = download_package(package, work)
        versions[package] = package_version(unpacked, package)
        for source in (s for s in SOURCES if s.package == package):
            (folder / "clips" / package / source.kind).mkdir(parents=True, exist_ok=True)
            clips += _clips_of(source, unpacked, folder)
        copyright_file = unpacked / "usr/share/doc" / package / "copyright"
        if copyright_file.exists():
            (folder / "licences").mkdir(exist_ok=True)
            shutil.copyfile(copyright_file, folder / "licences" / f"{package}.copyright")
        shutil.rmtree(unpacked)
    shutil.rmtree(work, ignore_errors=True)
    named = Counter(c.file for c in clips)
    if max(named.values(), default=1) > 1:  # a clip written over another's file: the manifest would lie
        raise RuntimeError(f"clip_name gives {sum(n > 1 for n in named.values())} names to several members, "
                           f"e.g. {named.most_common(1)[0][0]}: it must keep every package member apart")
    (folder / "packages.json").write_text(json.dumps(versions, indent=1) + "\n")
    write_manifest(folder, with_cleanliness(folder, clips))  # written last: the corpus is whole
    return manifest


def write_manifest(folder: Path, clips: Sequence[Clip]) -> None:
    with atomic_path(folder / "manifest.csv") as partial, partial.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(Clip)])
        writer.writeheader()
        writer.writerows(asdict(clip) for clip in clips)


def measure_clips(folder: Path, clips: Sequence[Clip], desc: str = "measuring cleanliness with DeepFilterNet3"
                  ) -> dict[str, float]:
    """file -> `clean_snr_db` of the corpus's `clips`, DeepFilterNet3 streaming over each speaker's
    (`cleanliness.measure_streams`): what the committed table holds for the clips it has."""
    from speechcompress.data.cleanliness import measure_streams

    return measure_streams([c.file for c in clips], [c.speaker for c in clips],
                           lambda file: sf.read(str(folder / file), dtype="float32")[0], CORPUS_RATE, desc)


def with_cleanliness(folder: Path, clips: Sequence[Clip]) -> list[Clip]:
    """`clips` with every speech clip's `clean_snr_db`: the committed table's figure where it has
    the clip's package version and file, else measured with DeepFilterNet3 now (about 0.12 s per
    second of speech). Without DeepFilterNet3, one line says so and the figures stay unknown (nan),
    which the cleanliness gate leaves out."""
    from speechcompress.data.cleanliness import read_table
    from speechcompress.data.deepfilternet import DeepFilterNetMissing

    versions = json.loads((folder / "packages.json").read_text()) if (folder / "packages.json").exists() else {}
    table = read_table()
    speech = [c for c in clips if c.kind == "speech"]
    figures = {c.file: table[key] for c in speech if (key := (c.package, versions.get(c.package, ""), c.file)) in table}
    missing = [c for c in speech if c.file not in figures]
    if missing:
        try:
            figures |= measure_clips(folder, missing, f"measuring the cleanliness of {len(missing)} clips the table lacks")
        except DeepFilterNetMissing as error:
            print(f"{error}; {len(missing)} speech clips of {folder} keep no cleanliness figure")
    return [replace(c, clean_snr_db=figures.get(c.file, float("nan"))) if c.kind == "speech" else c for c in clips]


def read_manifest(root: str | Path) -> list[Clip]:
    """The manifest's clips; `CorpusMissing` (one line, with the command that fetches it) without one."""
    manifest = corpus_folder(root) / "manifest.csv"
    if not manifest.exists():
        raise CorpusMissing(f"no real-recordings corpus at {manifest.parent}: run `speechcompress corpus fetch` "
                            f"(Debian packages, about 430 MB once)")
    with manifest.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    numbers = ("seconds", "bandwidth_hz", "clean_snr_db")
    clips = [Clip(**{**row, **{key: float(row[key]) for key in numbers if key in row}}) for row in rows]
    if rows and "clean_snr_db" not in rows[0]:  # fetched before clips had a cleanliness figure: add it, once
        clips = with_cleanliness(manifest.parent, clips)
        write_manifest(manifest.parent, clips)
    return clips


def passes_gate(clip: Clip, min_clean_snr_db: float | None) -> bool:
    """Whether a speech clip is clean enough to be a target or a reference (nan never is)."""
    return min_clean_snr_db is None or clip.clean_snr_db >= min_clean_snr_db


def _held_out_share(file: str) -> float:
    """A stable number in [0, 1) per file: which noise files test_real keeps to itself."""
    return int(hashlib.sha1(file.encode()).hexdigest()[:8], 16) / 2**32


def split_clips(clips: Sequence[Clip], split: str, held_out_speakers: Sequence[str], noise_test_share: float,
                min_bandwidth_hz: float, min_clean_snr_db: float | None = None
                ) -> tuple[dict[str, list[Clip]], dict[str, list[Clip]]]:
    """(speech clips by speaker, noise clips by group) that `split` may draw: test_real the
    held-out speakers and its share of each noise group, every other split the rest. Speech clips
    band-limited below `min_bandwidth_hz` are left out (noise such as wind or hum is low-passed by
    nature), and so are those whose `clean_snr_db` is below `min_clean_snr_db` or unknown (None:
    no gate); an unknown speaker is refused."""
    if split not in REAL_SPLITS:
        raise ValueError(f"real-recordings split must be one of {sorted(REAL_SPLITS)}, got {split!r}")
    speakers = {c.speaker for c in clips if c.kind == "speech"}
    unknown = sorted(set(held_out_speakers) - speakers)
    if unknown:
        raise ValueError(f"data.real.held_out_speakers names {unknown}, which the corpus does not have; "
                         f"its speakers: {', '.join(sorted(speakers))}")
    testing = split == REAL
    speech, noise = defaultdict(list), defaultdict(list)
    for clip in clips:
        if clip.kind == "speech" and (clip.bandwidth_hz < min_bandwidth_hz or not passes_gate(clip, min_clean_snr_db)):
            continue
        if clip.kind == "speech" and (clip.speaker in held_out_speakers) == testing:
            speech[clip.speaker].append(clip)
        elif clip.kind == "noise" and (_held_out_share(clip.file) < noise_test_share) == testing:
            noise[clip.speaker].append(clip)
    if not speech or not noise:
        raise ValueError(f"split {split!r} has no real {'speech' if not speech else 'noise'} left: check "
                         "data.real.held_out_speakers, noise_test_share, min_bandwidth_hz and min_clean_snr_db")
    return dict(speech), dict(noise)


def assemble_utterance(rng: np.random.Generator, clips: Sequence[np.ndarray], sample_rate: int,
                       seconds: tuple[float, float] = (3.0, 8.0)) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """One utterance from clips of one speaker: a lead-in pause, then random clips (each scaled to
    a peak of 1) with pauses of 0.15-0.9 s between them, until it is `seconds` long (drawn); peak
    0.9. Returns it and each clip's (start, end) sample."""
    target = rng.uniform(*seconds) * sample_rate
    parts = [np.zeros(int(rng.uniform(0.1, 0.5) * sample_rate), np.float32)]
    spans, length = [], len(parts[0])
    while not spans or length < target:
        clip = clips[int(rng.integers(len(clips)))]
        spans.append((length, length + len(clip)))
        parts.append(clip / (np.abs(clip).max() + 1e-9))
        parts.append(np.zeros(int(rng.uniform(0.15, 0.9) * sample_rate), np.float32))
        length += len(clip) + len(parts[-1])
    return np.concatenate(parts).astype(np.float32) * 0.9, spans


def assemble_noise(rng: np.random.Generator, clips: Sequence[np.ndarray], samples: int, sample_rate: int
                   ) -> np.ndarray:
    """`samples` of one recorded group: random clips one after another (10 ms fades, up to 0.5 s
    apart), each at its recorded level relative to its peak."""
    out, at = np.zeros(samples, np.float32), int(rng.uniform(0, 0.5) * sample_rate)
    fade = int(0.01 * sample_rate)
    while at < samples:
        clip = clips[int(rng.integers(len(clips)))]
        start = int(rng.integers(max(len(clip) - (samples - at), 0) + 1))  # a long ambience: a random excerpt
        piece = clip[start : start + samples - at] / (np.abs(clip).max() + 1e-9)
        ramp = np.minimum(1.0, np.minimum(np.arange(len(piece)) + 1, np.arange(len(piece))[::-1] + 1) / fade)
        out[at : at + len(piece)] = piece * ramp
        at += len(piece) + int(rng.uniform(0, 0.5) * sample_rate)
    return out


def load_real_split(root: str | Path, split: str, sample_rate: int = 16000, seed: int = 1234, utterances: int = 400,
                    noise_clips_per_group: int = 8, noise_seconds: float = 8.0, rooms: int = 0,
                    reverb_speech: float = 0.0, reverb_noise: float = 0.0, devices: float = 0.0,
                    held_out_speakers: Sequence[str] = (), noise_test_share: float = 0.3,
                    min_bandwidth_hz: float = 6000.0, min_clean_snr_db: float | None = None) -> SyntheticSplit:
    """One split of real recordings (see the module's docstring), assembled once and cached beside
    the manifest; `CorpusMissing` where the corpus was not fetched."""
    clips = read_manifest(root)
    folder = corpus_folder(root)
    settings = dict(sample_rate=sample_rate, seed=seed, utterances=utterances, noise_seconds=noise_seconds,
                    noise_clips_per_group=noise_clips_per_group, rooms=rooms, reverb_speech=reverb_speech,
                    reverb_noise=reverb_noise, devices=devices, held_out_speakers=sorted(held_out_speakers),
                    noise_test_share=noise_test_share, min_bandwidth_hz=min_bandwidth_hz,
                    **({} if min_clean_snr_db is None else dict(min_clean_snr_db=min_clean_snr_db)))
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    path = folder / "splits" / f"{split}-{sample_rate}Hz-{digest}.npz"
    if path.exists():
        return read_split(path)
    speech_clips, noise_clips = split_clips(clips, split, held_out_speakers, noise_test_share, min_bandwidth_hz,
                                            min_clean_snr_db)
    speech_rng, noise_rng, room_rng = (np.random.default_rng([seed, REAL_SPLITS[split], part]) for part in (0, 1, 2))

    def audio(group: list[Clip]) -> list[np.ndarray]:
        return [resample(sf.read(str(folder / c.file), dtype="float32")[0], CORPUS_RATE, sample_rate) for c in group]

    speakers = sorted(speech_clips)
    chosen = [speakers[int(i)] for i in speech_rng.integers(len(speakers), size=utterances)]
    speech = []
    for speaker in tqdm(speakers, desc=f"assembling {split} real utterances (once, cached in {path.parent})"):
        waves = audio(speech_clips[speaker])
        speech += [assemble_utterance(speech_rng, waves, sample_rate)[0] for _ in range(chosen.count(speaker))]
    noise, kinds = [], []
    for group in sorted(noise_clips):
        waves = audio(noise_clips[group])
        for _ in range(noise_clips_per_group):
            noise.append(assemble_noise(noise_rng, waves, int(noise_seconds * sample_rate), sample_rate))
            kinds.append(group)
    simulated = [simulate_room(room_rng, sample_rate) for _ in range(rooms if reverb_speech or reverb_noise else 0)]
    order = speech_rng.permutation(len(speech))  # utterances of all speakers interleaved, not by speaker
    recorded = record_split(room_rng, [speech[i] for i in order], noise, kinds, simulated, settings, sample_rate)
    write_split(path, recorded)
    return read_split(path)


def real_mixtures(split: str, sample_rate: int, root: str | Path, corpus_seed: int = 1234, utterances: int = 100,
                  noise_clips_per_group: int = 3, noise_seconds: float = 8.0, held_out_speakers: Sequence[str] = (),
                  noise_test_share: float = 0.3, min_bandwidth_hz: float = 6000.0,
                  min_clean_snr_db: float | None = None, **mixing):
    """A `MixtureDataset` of real recordings alone, dry (test_real: held-out voices in held-out
    recorded noise); None, after one line, where the corpus was not fetched."""
    from speechcompress.data.mixing import MixtureDataset

    try:
        recorded = load_real_split(root, split, sample_rate, corpus_seed, utterances, noise_clips_per_group,
                                   noise_seconds, held_out_speakers=held_out_speakers,
                                   noise_test_share=noise_test_share, min_bandwidth_hz=min_bandwidth_hz,
                                   min_clean_snr_db=min_clean_snr_db)
    except CorpusMissing as missing:
        print(f"{missing}; no {split} split this run")
        return None
    return MixtureDataset(recorded.speech, recorded.noise, sample_rate, heard=recorded.heard,
                          sources=[recorded.source], **mixing)
