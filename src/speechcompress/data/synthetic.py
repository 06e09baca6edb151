"""The embedded corpus: espeak-ng speech, procedural noise and simulated rooms, cached per split
under data/synthetic/.

Utterances are two to three sentences in one of 61 Latin-script languages (real words in five of
them, pseudo-words read by each language's own rules in all), spoken by a random voice variant
(whispered and creaky ones among them) at random rate and pitch, with pauses between sentences.
Noise clips cover the split's families of `noise.NOISE_FAMILIES`; babble is made from talkers
synthesised for that purpose.

Each split also simulates its own rooms (`rooms.simulate_room`). A share `reverb_speech` of the
utterances is heard in one of them (the target is then the direct path and early reflections), a
share `reverb_noise` of the noise clips plays in one, and a share `devices` of each is recorded
through a random device response (`microphone.random_response`, one per clip: speech and noise
pass through different ones, as in xiph's training). These are applied once, as the cache is made
(`splits.record_split`, `splits.write_split`), so mixing stays cheap; level changes and clipping are drawn per item by the mixer.

`held_out` names noise families, languages and voice variants that only the `test_unseen` split
uses: train, val and test never draw them, so `test_unseen/*` measures what a model does on
noises and voices it never met. Each split is drawn from its own seed, so no two splits share an
utterance, a noise clip or a room.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from speechcompress.data.audio import resample
from speechcompress.data.espeak import EspeakCrashed, EspeakSynthesizer
from speechcompress.data.noise import NOISE_FAMILIES, render_noise
from speechcompress.data.real import CorpusMissing, load_real_split
from speechcompress.data.rooms import simulate_room
from speechcompress.data.splits import SyntheticSplit, read_split, record_split, write_split
from speechcompress.test_splits import TEST, UNSEEN

CACHE_VERSION = 6
SPLIT_IDS = {"train": 0, "val": 1, TEST: 2, UNSEEN: 3}  # a part of each split's random seeds

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
# espeak-ng's installed Latin-script languages, which read pseudo-words by their own spelling rules
# (text in other scripts would be spelt out or read as English). "fo" is left out: its dictionary
# is missing from the wheel.
LANGUAGES = ("af an az bs ca cs cy da de en en-029 en-GB-scotland en-GB-x-rp en-US eo es es-419 et eu fi "
             "fr fr-BE ga gd gn haw hr ht hu ia id io is it kl la lb lfn lt lv mi ms mt nb nl om pap pl pt "
             "pt-BR qu ro sk sl sq sv sw tn tr uz vi").split()
# Voice variants that sound like people (espeak's robot and effect variants are left out).
VARIANTS = ("none f1 f2 f3 f4 f5 m1 m2 m3 m4 m5 m6 m7 m8 klatt klatt2 klatt3 klatt4 klatt5 klatt6 croak "
            "whisper whisperf Andy Annie Gene john adam anika aunty belinda benjamin boris caleb david ed "
            "edward grandma grandpa gustave ian iven linda max michel miguel norbert pablo paul pedro "
            "quincy rob robert shelby steph travis victor zac Alex Alicia Andrea Denis Diogo Henrique Hugo "
            "Lee Marco Mario Michael Mike Reed").split()
_ONSETS = "p t k b d g m n l r s f v h j w ch sh z pr tr kl bl st".split()
_VOWELS = "a e i o u a e i o u ai ou".split()
_CODAS = [""] * 6 + "n s l r m t k".split()


def _pseudo_word(rng: np.random.Generator) -> str:
    return "".join(str(rng.choice(_ONSETS)) + str(rng.choice(_VOWELS)) + str(rng.choice(_CODAS))
                   for _ in range(rng.integers(1, 4)))


@dataclass(frozen=True)
class Voices:
    """The languages and voice variants a split speaks with."""

    languages: tuple[str, ...]
    variants: tuple[str, ...]


def split_choices(split: str, held_out: Mapping[str, Sequence[str]]) -> tuple[tuple[str, ...], Voices]:
    """(noise families, voices) of `split`: test_unseen gets exactly the held-out ones, every other
    split everything else. An unknown name in `held_out` is refused."""
    every = {"noise": NOISE_FAMILIES, "languages": LANGUAGES, "variants": VARIANTS}
    for key in held_out:
        if key not in every:
            raise ValueError(f"held_out takes {', '.join(every)}; {key!r} is not one of them")
        unknown = sorted(set(held_out[key]) - set(every[key]))
        if unknown:
            raise ValueError(f"held_out.{key} names {unknown}, which the synthetic corpus does not have; "
                             f"choose from {', '.join(every[key])}")

    def chosen(key: str, every: Sequence[str]) -> tuple[str, ...]:
        kept = set(held_out.get(key, ()))
        names = tuple(n for n in every if (n in kept) == (split == UNSEEN))
        if not names:
            side = "held out" if split == UNSEEN else "left once the held-out ones are removed"
            hint = " (or drop the unseen split: data.test_unseen=null)" if split == UNSEEN else ""
            raise ValueError(f"split {split!r} has no {key} {side}: check held_out.{key}{hint}")
        return names

    return chosen("noise", NOISE_FAMILIES), Voices(chosen("languages", LANGUAGES), chosen("variants", VARIANTS))


def _random_utterance(rng: np.random.Generator, synth, sample_rate: int, voices: Voices) -> np.ndarray:
    language = str(rng.choice(voices.languages))
    variant = str(rng.choice(voices.variants))
    voice = language + ("" if variant == "none" else "+" + variant)
    rate, pitch, pitch_range = rng.integers(100, 300), rng.integers(5, 95), rng.integers(10, 100)
    real_words = language in WORDS and rng.uniform() < 0.5
    texts = []
    for _ in range(rng.integers(2, 4)):
        count = rng.integers(3, 9)
        words = rng.choice(WORDS[language], size=count) if real_words else [_pseudo_word(rng) for _ in range(count)]
        texts.append(" ".join(words) + ".")
    seed = int(rng.integers(2**31))
    try:
        spoken = synth.synthesize(texts, voice, rate, pitch, pitch_range, seed)
    except EspeakCrashed:  # rare (a wide range at low pitch, some variants): espeak's own pitch instead
        spoken = synth.synthesize(texts, voice, rate, 50, 50, seed)
    parts = [np.zeros(int(rng.uniform(0.1, 0.5) * sample_rate), np.float32)]
    for sentence in spoken:
        parts.append(resample(sentence, synth.sample_rate, sample_rate))
        parts.append(np.zeros(int(rng.uniform(0.15, 0.9) * sample_rate), np.float32))
    speech = np.concatenate(parts)
    return speech / (np.abs(speech).max() + 1e-9) * 0.9


def _cache_path(cache_dir: Path, split: str, settings: dict) -> Path:
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    return cache_dir / f"{split}-{settings['sample_rate']}Hz-{digest}.npz"


def load_synthetic_split(
    cache_dir: str | Path,
    split: str,
    sample_rate: int = 16000,
    seed: int = 1234,
    utterances: int = 400,
    noise_clips_per_family: int = 8,
    noise_seconds: float = 8.0,
    babble_talkers: int = 40,
    rooms: int = 32,
    reverb_speech: float = 0.0,
    reverb_noise: float = 0.0,
    devices: float = 0.0,
    held_out: Mapping[str, Sequence[str]] | None = None,
) -> SyntheticSplit:
    """Load one split from the cache, generating and caching it first if needed (with a progress bar)."""
    if split not in SPLIT_IDS:
        raise ValueError(f"split must be one of {sorted(SPLIT_IDS)}, got {split!r}")
    held_out = {key: sorted(names) for key, names in (held_out or {}).items()}
    families, voices = split_choices(split, held_out)
    settings = dict(version=CACHE_VERSION, sample_rate=sample_rate, seed=seed, utterances=utterances,
                    noise_clips_per_family=noise_clips_per_family, noise_seconds=noise_seconds,
                    babble_talkers=babble_talkers, rooms=rooms, reverb_speech=reverb_speech,
                    reverb_noise=reverb_noise, devices=devices, held_out=held_out)
    for name in ("reverb_speech", "reverb_noise", "devices"):
        if not 0.0 <= settings[name] <= 1.0:
            raise ValueError(f"{name} is a share of clips, between 0 and 1; got {settings[name]}")
    if (reverb_speech or reverb_noise) and rooms < 1:
        raise ValueError("reverb_speech / reverb_noise need rooms to play in: set rooms > 0, or both shares to 0")
    path = _cache_path(Path(cache_dir), split, settings)
    if not path.exists():
        try:  # before minutes of synthesis, not after
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(f"cannot make the synthetic cache folder {path.parent} ({error.strerror}): "
                             "point data.train.cache_dir (or paths.data_dir) at a writable folder") from None
        _generate(path, split, settings, families, voices)
    return read_split(path)


def _generate(path: Path, split: str, settings: dict, families: tuple[str, ...], voices: Voices) -> None:
    synth = EspeakSynthesizer()
    sample_rate = settings["sample_rate"]
    speech_rng, noise_rng, room_rng = (np.random.default_rng([settings["seed"], SPLIT_IDS[split], part])
                                       for part in (0, 1, 2))
    clips = settings["noise_clips_per_family"] * len(families)
    total = settings["utterances"] + settings["babble_talkers"] + clips + settings["rooms"]
    with tqdm(total=total, desc=f"synthesising {split} speech, noise and rooms (once, cached in {path.parent})") as bar:
        speech = []
        for _ in range(settings["utterances"]):
            speech.append(_random_utterance(speech_rng, synth, sample_rate, voices))
            bar.update()
        talkers = []
        for _ in range(settings["babble_talkers"]):
            talkers.append(_random_utterance(noise_rng, synth, sample_rate, voices))
            bar.update()
        noise, kinds = [], []
        n = int(settings["noise_seconds"] * sample_rate)
        for family in families:
            for _ in range(settings["noise_clips_per_family"]):
                noise.append(render_noise(family, noise_rng, n, sample_rate, talkers, pool=families))
                kinds.append(family)
                bar.update()
        rooms = []
        for _ in range(settings["rooms"]):
            rooms.append(simulate_room(room_rng, sample_rate))
            bar.update()
    write_split(path, record_split(room_rng, speech, noise, kinds, rooms, settings, sample_rate))


def synthetic_mixtures(
    split: str,
    sample_rate: int,
    cache_dir: str | Path,
    corpus_seed: int = 1234,
    utterances: int = 400,
    noise_clips_per_family: int = 8,
    noise_seconds: float = 8.0,
    babble_talkers: int = 40,
    rooms: int = 32,
    reverb_speech: float = 0.0,
    reverb_noise: float = 0.0,
    devices: float = 0.0,
    held_out: Mapping[str, Sequence[str]] | None = None,
    real: Mapping | None = None,
    real_share: float = 0.0,
    real_noise_share: float = 0.0,
    real_utterances: int = 400,
    real_noise_clips_per_group: int = 8,
    **mixing,
):
    """A `MixtureDataset` over one cached synthetic split; `mixing` goes to MixtureDataset.

    With `real` (the corpus settings: root, held_out_speakers, noise_test_share, min_bandwidth_hz)
    a share `real_share` of the items speak with real recorded voices and a share
    `real_noise_share` hear real recorded noise (`real.load_real_split`, `real_utterances`
    utterances and `real_noise_clips_per_group` clips per group, in the split's rooms and devices).
    Without a fetched corpus they print one line and use espeak-ng and procedural noise alone.
    """
    from speechcompress.data.mixing import MixtureDataset

    for name, share in dict(real_share=real_share, real_noise_share=real_noise_share).items():
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"data.{split}.{name} is a share of items, between 0 and 1; got {share}")
    corpus = load_synthetic_split(cache_dir, split, sample_rate, corpus_seed, utterances, noise_clips_per_family,
                                  noise_seconds, babble_talkers, rooms, reverb_speech, reverb_noise, devices, held_out)
    recorded = None
    if real is not None and (real_share or real_noise_share):
        recorded = _recorded(split, sample_rate, corpus_seed, real_utterances, real_noise_clips_per_group, noise_seconds,
                             rooms, reverb_speech, reverb_noise, devices, real)
    if recorded is None:
        return MixtureDataset(corpus.speech, corpus.noise, sample_rate, heard=corpus.heard, sources=[corpus.source],
                              **mixing)
    return MixtureDataset(corpus.speech + recorded.speech, corpus.noise + recorded.noise, sample_rate,
                          heard=corpus.heard + recorded.heard, sources=[corpus.source, recorded.source],
                          speech_weights=_shares(len(corpus.speech), len(recorded.speech), real_share),
                          noise_weights=_shares(len(corpus.noise), len(recorded.noise), real_noise_share), **mixing)


def _recorded(split: str, sample_rate: int, seed: int, utterances: int, noise_clips_per_group: int,
              noise_seconds: float, rooms: int, reverb_speech: float, reverb_noise: float, devices: float, real: Mapping):
    """The split's real recordings (`real.load_real_split`), or None, said in one line, without a fetched corpus."""
    try:
        return load_real_split(split=split, sample_rate=sample_rate, seed=seed, utterances=utterances,
                               noise_clips_per_group=noise_clips_per_group, noise_seconds=noise_seconds, rooms=rooms,
                               reverb_speech=reverb_speech, reverb_noise=reverb_noise, devices=devices, **real)
    except CorpusMissing as missing:
        print(f"{missing}; the {split} split uses espeak-ng speech and procedural noise alone")
        return None


def _shares(synthetic: int, real: int, real_share: float) -> list[float]:
    """Weights that draw the `real` clips (listed after the synthetic ones) a share `real_share` of the time."""
    return [(1.0 - real_share) / synthetic] * synthetic + [real_share / real] * real
