"""The embedded corpus: espeak-ng speech and generated noise, cached per split under data/synthetic/.

Utterances are two to three sentences of random words in one of several languages, spoken by a
random voice variant at random rate and pitch, with pauses between sentences. Noise clips cover
every kind in `noise.NOISE_KINDS`; babble is made from talkers synthesised for that purpose.
Each split is drawn from its own seed, so train, val and test share no utterance or noise clip.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from speechcompress.data.audio import resample
from speechcompress.data.noise import NOISE_KINDS
from speechcompress.files import atomic_path

CACHE_VERSION = 1
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}

WORDS = {
    "en": "the a small house river morning light green never always people water over under quickly "
    "window garden yellow stone music evening follow sister number paper table little open forest "
    "bright cold travel story remember silver between machine ocean yesterday mountain gentle "
    "simple letter summer winter answer question market village".split(),
    "de": "der die das haus wasser morgen licht immer niemals garten fenster gelb stein musik abend "
    "folgen schwester zahl papier tisch klein offen wald hell kalt reise geschichte silber zwischen "
    "maschine meer gestern berg sanft einfach brief sommer winter antwort frage markt dorf".split(),
    "fr": "le la une maison eau matin lumière toujours jamais jardin fenêtre jaune pierre musique "
    "soir suivre soeur nombre papier table petit ouvert forêt clair froid voyage histoire argent "
    "entre machine océan hier montagne doux simple lettre été hiver réponse question marché".split(),
    "es": "el la una casa agua mañana luz siempre nunca jardín ventana amarillo piedra música tarde "
    "seguir hermana número papel mesa pequeño abierto bosque claro frío viaje historia plata entre "
    "máquina océano ayer montaña suave sencillo carta verano invierno respuesta pregunta".split(),
    "it": "il la una casa acqua mattina luce sempre mai giardino finestra giallo pietra musica sera "
    "seguire sorella numero carta tavolo piccolo aperto bosco chiaro freddo viaggio storia argento "
    "tra macchina oceano ieri montagna dolce semplice lettera estate inverno risposta domanda".split(),
}
VOICES = {"en": ["en", "en-us", "en-gb-x-rp"], "de": ["de"], "fr": ["fr"], "es": ["es"], "it": ["it"]}
VARIANTS = ["", "+f1", "+f2", "+f3", "+f4", "+f5", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+m7",
            "+klatt", "+klatt2", "+klatt4", "+croak", "+whisper", "+Andy", "+Annie", "+Gene", "+john"]


@dataclass
class SyntheticSplit:
    speech: list[np.ndarray]  # float32 clean utterances at the requested sample rate
    noise: list[np.ndarray]  # float32 noise clips, unit RMS
    noise_kinds: list[str]  # the kind of each noise clip


def _random_utterance(rng: np.random.Generator, synth, sample_rate: int) -> np.ndarray:
    language = str(rng.choice(list(WORDS)))
    voice = str(rng.choice(VOICES[language])) + str(rng.choice(VARIANTS))
    rate, pitch, pitch_range = rng.integers(120, 230), rng.integers(15, 85), rng.integers(20, 90)
    parts = [np.zeros(int(rng.uniform(0.1, 0.5) * sample_rate), np.float32)]
    for _ in range(rng.integers(2, 4)):
        words = rng.choice(WORDS[language], size=rng.integers(3, 9))
        spoken = synth.synthesize(" ".join(words) + ".", voice, rate, pitch, pitch_range)
        parts.append(resample(spoken, synth.sample_rate, sample_rate))
        parts.append(np.zeros(int(rng.uniform(0.15, 0.9) * sample_rate), np.float32))
    speech = np.concatenate(parts)
    return speech / (np.abs(speech).max() + 1e-9) * 0.9


def _cache_path(cache_dir: Path, split: str, settings: dict) -> Path:
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    return cache_dir / f"{split}-{settings['sample_rate']}Hz-{digest}.npz"


def _pack(clips: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.cumsum([0] + [len(c) for c in clips])
    return np.concatenate(clips), offsets


def _unpack(samples: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [samples[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]


def load_synthetic_split(
    cache_dir: str | Path,
    split: str,
    sample_rate: int = 16000,
    seed: int = 1234,
    utterances: int = 400,
    noise_clips_per_kind: int = 12,
    noise_seconds: float = 8.0,
    babble_talkers: int = 40,
) -> SyntheticSplit:
    """Load one split from the cache, generating and caching it first if needed (with a progress bar)."""
    if split not in SPLIT_IDS:
        raise ValueError(f"split must be one of {sorted(SPLIT_IDS)}, got {split!r}")
    settings = dict(version=CACHE_VERSION, sample_rate=sample_rate, seed=seed, utterances=utterances,
                    noise_clips_per_kind=noise_clips_per_kind, noise_seconds=noise_seconds,
                    babble_talkers=babble_talkers)
    path = _cache_path(Path(cache_dir), split, settings)
    if not path.exists():
        _generate(path, split, settings)
    with np.load(path) as cached:
        speech = _unpack(cached["speech"].astype(np.float32) / 32767, cached["speech_offsets"])
        noise = _unpack(cached["noise"].astype(np.float32), cached["noise_offsets"])
        kinds = [str(k) for k in cached["noise_kinds"]]
    return SyntheticSplit(speech, noise, kinds)


def _generate(path: Path, split: str, settings: dict) -> None:
    from speechcompress.data.espeak import EspeakSynthesizer  # loads the C library only when needed

    synth = EspeakSynthesizer()
    sample_rate = settings["sample_rate"]
    speech_rng, noise_rng = (np.random.default_rng([settings["seed"], SPLIT_IDS[split], part]) for part in (0, 1))
    total = settings["utterances"] + settings["babble_talkers"] + settings["noise_clips_per_kind"] * len(NOISE_KINDS)
    with tqdm(total=total, desc=f"synthesising {split} speech and noise (once, cached in {path.parent})") as bar:
        speech = []
        for _ in range(settings["utterances"]):
            speech.append(_random_utterance(speech_rng, synth, sample_rate))
            bar.update()
        talkers = []
        for _ in range(settings["babble_talkers"]):
            talkers.append(_random_utterance(noise_rng, synth, sample_rate))
            bar.update()
        noise, kinds = [], []
        n = int(settings["noise_seconds"] * sample_rate)
        for kind, generate in NOISE_KINDS.items():
            for _ in range(settings["noise_clips_per_kind"]):
                noise.append(generate(noise_rng, n, sample_rate, speech=talkers))
                kinds.append(kind)
                bar.update()
    speech_samples, speech_offsets = _pack(speech)
    noise_samples, noise_offsets = _pack(noise)
    with atomic_path(path) as partial, partial.open("wb") as handle:  # a killed run never leaves a half-written cache
        np.savez(handle, speech=(speech_samples * 32767).astype(np.int16), speech_offsets=speech_offsets,
                 noise=noise_samples.astype(np.float16), noise_offsets=noise_offsets, noise_kinds=np.array(kinds))


def synthetic_mixtures(
    split: str,
    sample_rate: int,
    cache_dir: str | Path,
    corpus_seed: int = 1234,
    utterances: int = 400,
    noise_clips_per_kind: int = 12,
    noise_seconds: float = 8.0,
    babble_talkers: int = 40,
    **mixing,
):
    """A `MixtureDataset` over one cached synthetic split; `mixing` goes to MixtureDataset."""
    from speechcompress.data.mixing import MixtureDataset

    corpus = load_synthetic_split(cache_dir, split, sample_rate, corpus_seed, utterances,
                                  noise_clips_per_kind, noise_seconds, babble_talkers)
    return MixtureDataset(corpus.speech, corpus.noise, sample_rate, **mixing)
