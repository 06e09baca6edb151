"""FSMN-VAD: front-end alignment, streaming, CMVN in checkpoints, a real tiny training run, metrics."""

import math

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from speechcompress.checkpoints import read_checkpoint
from speechcompress.data.mixing import MixtureDataset, vad_labels
from speechcompress.evaluation.vad_metrics import frame_scores
from speechcompress.features.fbank import CMVN, stack_frames
from speechcompress.models.fsmn import FSMNMemory
from speechcompress.models.fsmn_vad import FSMNVAD
from speechcompress.models.rnnoise import RNNoise
from speechcompress.tasks.vad import load_vad

from .conftest import compose_config


@pytest.mark.parametrize("samples", [160 * 50, 160 * 50 + 1, 160 * 50 - 37, 399, 1])
def test_one_frame_per_label_frame(samples):
    model = FSMNVAD(layers=1)
    wave = torch.randn(1, samples) * 0.1
    assert model(wave).logits.shape[1] == len(vad_labels(wave[0].numpy(), 16000)) == model.frames(samples)


def test_lfr_stacks_neighbours_repeats_the_first_and_reads_the_look_ahead_frames():
    features = torch.arange(6.0).view(1, 6, 1)  # frames 0 … 3, then 4 and 5 after the end of the audio
    stacked = stack_frames(features, 5)[0]
    assert stacked.tolist() == [[0, 0, 0, 1, 2], [0, 0, 1, 2, 3], [0, 1, 2, 3, 4], [1, 2, 3, 4, 5]]


@pytest.mark.parametrize("build", [lambda: FSMNVAD(layers=2), lambda: RNNoise(cond_size=16, gru_size=16)])
def test_an_item_gives_the_same_output_alone_and_padded_in_a_batch(build):
    """What makes test figures independent of batch size and of how DDP splits the items."""
    torch.manual_seed(0)
    model = build().eval()
    if hasattr(model, "cmvn"):
        model.cmvn.fit(torch.randn(200, 80) * 3 + 8)
    short, long = torch.randn(1, 16000 + 77) * 0.1, torch.randn(1, 24000) * 0.1
    batch = torch.cat([torch.nn.functional.pad(short, (0, long.shape[1] - short.shape[1])), long])
    with torch.no_grad():
        alone, batched = model(short), model(batch)
    if hasattr(alone, "logits"):
        torch.testing.assert_close(batched.logits[:1, : alone.logits.shape[1]], alone.logits, atol=1e-5, rtol=1e-5)
    else:
        torch.testing.assert_close(batched.enhanced[:1, : short.shape[1]], alone.enhanced, atol=1e-5, rtol=1e-5)


def test_fsmn_memory_matches_its_formula():
    memory = FSMNMemory(channels=1, lorder=3, rorder=1)
    with torch.no_grad():
        memory.left.weight.copy_(torch.tensor([[[1.0, 10.0, 100.0]]]))  # taps on t−2, t−1, t
        memory.right.weight.copy_(torch.tensor([[[1000.0]]]))  # tap on t+1
    p = torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1)
    # m_t = p_t + 100·p_t + 10·p_{t−1} + 1·p_{t−2} + 1000·p_{t+1}, zeros outside
    expected = [1 + 100 + 2000, 2 + 200 + 10 + 3000, 3 + 300 + 20 + 1]
    assert memory(p).flatten().tolist() == expected


@pytest.mark.parametrize("layout", [{}, {"rorder": 2, "lstride": 2, "layers": 2}])
def test_streaming_equals_offline(layout):
    torch.manual_seed(0)
    model = FSMNVAD(**layout).eval()
    model.cmvn.fit(torch.randn(200, 80) * 3 + 8)
    wave = torch.randn(2, 16000 + 123) * 0.1
    offline = model(wave).logits
    state, outputs, start = model.init_state(batch=2), [], 0
    for size in [1, 159, 160, 400, 1000, 37, 5000, 3000]:
        logits, state = model.step(wave[:, start : start + size], state)
        outputs.append(logits)
        start += size
    logits, state = model.step(wave[:, start:], state, final=True)
    streamed = torch.cat([*outputs, logits], dim=1)
    assert streamed.shape == offline.shape
    torch.testing.assert_close(streamed, offline, atol=1e-5, rtol=1e-5)


def test_cmvn_normalises_and_refuses_a_single_frame():
    cmvn = CMVN(3)
    assert not cmvn.fitted
    features = torch.randn(1000, 3) * torch.tensor([1.0, 5.0, 0.1]) + torch.tensor([2.0, -3.0, 7.0])
    cmvn.fit(features)
    normalised = cmvn(features)
    torch.testing.assert_close(normalised.mean(0), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(normalised.std(0), torch.ones(3), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="two feature frames"):
        cmvn.fit(features[:1])


def test_frame_scores_against_hand_counts():
    probabilities = np.array([0.9, 0.8, 0.2, 0.6, 0.1, 0.3], np.float32)
    labels = np.array([1, 1, 1, 0, 0, 0], np.float32)
    scores = frame_scores(probabilities, labels)
    # tp 2, fn 1, fp 1, tn 2
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)
    assert scores["dcf"] == pytest.approx(0.25 * 1 / 3 + 0.75 * 1 / 3)
    assert scores["auc"] == pytest.approx(7 / 9)  # 7 of the 9 speech/non-speech pairs ranked right


def test_noise_only_items_have_no_speech_labels():
    rng = np.random.default_rng(0)
    speech = [np.sin(np.arange(16000) / 10).astype(np.float32) * 0.5]
    noise = [rng.standard_normal(32000).astype(np.float32)]
    dataset = MixtureDataset(speech, noise, 16000, length=40, segment_seconds=1.0, noise_only=0.5, fixed=True)
    items = [dataset[i] for i in range(40)]
    silent = [item for item in items if not item["vad"].any()]
    assert 5 < len(silent) < 35
    assert all(not item["clean"].any() and item["noisy"].abs().max() > 0 for item in silent)


@pytest.mark.parametrize("split", ["test", "test_unseen"])
def test_the_vad_recipes_false_alarms_rest_on_some_thirty_noise_items(split):
    """Which items are noise alone follows from the split's seed and share, not from its audio:
    the real config's draws over stand-in clips count the noise-only items a run is scored on."""
    data = compose_config(["+experiment=fsmn_vad"]).data
    settings = data[split]
    speech = [np.ones(1600, np.float32)] * settings.utterances
    dataset = MixtureDataset(speech, [np.ones(1600, np.float32)], 16000, segment_seconds=None, fixed=True,
                             seed=settings.seed, noise_only=settings.noise_only)
    noise_items = sum(not dataset[i]["vad"].any() for i in range(len(dataset)))
    assert noise_items >= 25
    if split == "test_unseen":  # each held-out family has 12 clips to draw them from
        assert settings.noise_clips_per_family >= 12


def test_training_beats_calling_everything_speech(tiny_vad_run):
    _, metrics, _ = tiny_vad_run
    share = metrics["test/speech_share"]
    assert 0.3 < share < 0.95
    assert metrics["test/f1"] > 2 * share / (1 + share) + 0.03  # the F1 of always saying "speech"
    assert metrics["test/auc"] > 0.8  # 0.5 for a VAD that knows nothing
    assert metrics["test/dcf"] < 0.25  # 0.25 for one that always says "speech"
    assert metrics["test/noise_items"] >= 1 and 0 <= metrics["test/noise_false_alarm"] <= 1
    assert 0 <= metrics["test/detection_recall"] <= 1 and 0 <= metrics["test/event_f"] <= 1
    assert metrics["test_unseen/auc"] > 0.7 and 0 <= metrics["test_unseen/noise_false_alarm"] <= 1  # unseen noises too


def test_cmvn_statistics_travel_in_the_checkpoint(tiny_vad_run):
    _, _, checkpoint = tiny_vad_run
    saved = read_checkpoint(checkpoint)["state_dict"]
    assert saved["model.cmvn.frames"] > 1000
    task = load_vad(checkpoint)
    assert task.model.cmvn.fitted
    torch.testing.assert_close(task.model.cmvn.mean, saved["model.cmvn.mean"])
    # log-mel energies of int16-scaled audio sit far from zero; the statistics must say so
    assert task.model.cmvn.mean.abs().mean() > 1.0 and not torch.allclose(task.model.cmvn.inv_std, torch.ones(80))


def test_vad_run_is_in_mlflow_with_its_metrics(tiny_vad_run):
    cfg, metrics, _ = tiny_vad_run
    client = MlflowClient(cfg.logger.tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("fsmn_vad").experiment_id])
    for name in ("test/f1", "test/precision", "test/recall", "test/auc", "test/dcf", "test/noise_false_alarm",
                 "size/params", "latency/rtf"):
        assert math.isclose(run.data.metrics[name], metrics[name], rel_tol=1e-6), name
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "examples")}
    assert "examples/example0_vad.png" in artifacts


def _covered(segments: list[tuple[float, float]], start: float, end: float) -> float:
    """Seconds of [start, end) inside any of `segments`."""
    return sum(max(0.0, min(end, b) - max(start, a)) for a, b in segments)


def test_vad_cli_finds_the_known_speech_regions_of_a_file(tiny_vad_run, tmp_path):
    import json

    import soundfile as sf
    from hydra.utils import instantiate

    from speechcompress.cli import main
    from speechcompress.data.mixing import mix_at_snr
    from speechcompress.evaluation.vad_segments import speech_segments

    cfg, _, checkpoint = tiny_vad_run
    utterances = instantiate(cfg.data.test)(sample_rate=16000).speech
    rate, gap = 16000, np.zeros(32000, np.float32)
    clean = np.concatenate([gap[:16000], utterances[0], gap, utterances[1], gap[:16000]])
    labels = vad_labels(clean, rate)
    noise = np.random.default_rng(0).standard_normal(len(clean)).astype(np.float32)
    active = np.repeat(labels, 160)[: len(clean)] > 0
    noisy = clean + mix_at_snr(clean, noise, 15.0, active)
    sf.write(tmp_path / "talk.wav", np.stack([noisy, noisy], axis=1) * 0.3, rate)  # stereo: mixed down

    assert main(["vad", "--checkpoint", str(checkpoint), str(tmp_path / "talk.wav"), str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "talk.json").read_text())
    probabilities = np.load(tmp_path / "out" / "talk.npy")
    assert probabilities.shape == labels.shape and probabilities.dtype == np.float32
    assert frame_scores(probabilities, labels)["f1"] > 0.85

    found = [(s["start"], s["end"]) for s in report["segments"]]
    known = [(s.start, s.end) for s in speech_segments(labels, load_vad(checkpoint).segment_config)]
    assert len(known) >= 2 and found
    for start, end in known:  # every known region is found ...
        assert _covered(found, start, end) >= 0.8 * (end - start), (start, end, found)
    padded = [(a - 0.3, b + 0.3) for a, b in known]
    for start, end in found:  # ... and what is found is speech, give or take the padding
        assert _covered(padded, start, end) >= 0.8 * (end - start), (start, end, known)
    silence = (1 + len(utterances[0]) / rate + 0.6, 1 + len(utterances[0]) / rate + 1.4)  # inside the 2 s gap
    assert _covered(found, *silence) == 0
