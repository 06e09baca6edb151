"""Post-processing of frame probabilities into segments, on crafted sequences (10 ms frames)."""

import numpy as np
import pytest
import torch

from speechcompress.evaluation.vad_metrics import SegmentVAD
from speechcompress.evaluation.vad_segments import (
    Segment,
    SegmentConfig,
    Segmenter,
    detection_counts,
    match_events,
    reference_segments,
    speech_segments,
)

# No padding unless a test asks for it, so boundaries can be checked to the frame.
PLAIN = SegmentConfig(lookback_ms=0, lookahead_ms=0)


def frames(*runs: tuple[float, int]) -> np.ndarray:
    """Concatenated runs of (probability, frame count)."""
    return np.concatenate([np.full(count, value, np.float32) for value, count in runs])


def test_speech_between_silences_is_one_segment_with_exact_boundaries():
    probabilities = frames((0.1, 100), (0.9, 150), (0.1, 100))
    assert speech_segments(probabilities, PLAIN) == [Segment(1.0, 2.5)]


def test_short_blips_never_start_a_segment():
    # 50 ms blips every 300 ms: never 150 ms of speech inside a 200 ms window
    probabilities = frames(*[(0.9, 5), (0.0, 25)] * 20)
    assert speech_segments(probabilities, PLAIN) == []


def test_speech_shorter_than_the_minimum_is_dropped():
    probabilities = frames((0.0, 50), (0.9, 17), (0.0, 100))  # 170 ms: starts (≥ 150 ms) but < 200 ms
    assert speech_segments(probabilities, PLAIN) == []
    assert speech_segments(probabilities, SegmentConfig(lookback_ms=0, lookahead_ms=0, min_speech_ms=150)) \
        == [Segment(0.5, 0.67)]


def test_short_pause_is_bridged_and_long_pause_splits():
    short_pause = frames((0.9, 100), (0.1, 30), (0.9, 100), (0.1, 80))
    assert speech_segments(short_pause, PLAIN) == [Segment(0.0, 2.3)]
    long_pause = frames((0.9, 100), (0.1, 60), (0.9, 100), (0.1, 80))
    assert speech_segments(long_pause, PLAIN) == [Segment(0.0, 1.0), Segment(1.6, 2.6)]


def test_maximum_length_cuts_a_long_segment():
    probabilities = frames((0.9, 2500))  # 25 s of speech
    segments = speech_segments(probabilities, SegmentConfig(lookback_ms=0, lookahead_ms=0, max_segment_ms=10000))
    assert segments == [Segment(0.0, 10.0), Segment(10.0, 20.0), Segment(20.0, 25.0)]


def test_padding_extends_segments_but_never_into_the_previous_one():
    probabilities = frames((0.0, 100), (0.9, 100), (0.0, 52), (0.9, 100), (0.0, 100))
    config = SegmentConfig(lookback_ms=500, lookahead_ms=100, end_silence_ms=500)
    first, second = speech_segments(probabilities, config)
    assert first == Segment(0.5, 2.1)  # 1.0 − 0.5 … 2.0 + 0.1
    assert second == Segment(2.1, 3.62)  # would start at 2.52 − 0.5, but the first segment ends at 2.1


def test_threshold_decides_what_counts_as_speech():
    probabilities = frames((0.0, 50), (0.6, 100), (0.0, 100))
    assert speech_segments(probabilities, PLAIN) == [Segment(0.5, 1.5)]
    assert speech_segments(probabilities, SegmentConfig(threshold=0.7)) == []


def test_streaming_pieces_give_the_same_segments():
    rng = np.random.default_rng(0)
    runs = [(0.9 if i % 2 else rng.uniform(0, 0.4), int(rng.integers(5, 150))) for i in range(40)]
    probabilities = frames(*runs)
    segmenter, streamed, start = Segmenter(SegmentConfig()), [], 0
    for size in rng.integers(1, 90, size=200):
        streamed += segmenter.push(probabilities[start : start + size])
        start += size
    streamed += segmenter.finish()
    assert streamed == speech_segments(probabilities) and len(streamed) > 3


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="start_speech_ms"):
        SegmentConfig(window_ms=100, start_speech_ms=150)


# Hand examples: (references, hypotheses) in seconds, over 6 s of audio.
HAND_EXAMPLES = {
    "perfect": ([(1.0, 2.0), (3.0, 4.5)], [(1.0, 2.0), (3.0, 4.5)]),
    "shifted": ([(1.0, 2.0), (3.0, 4.5)], [(1.15, 2.1), (3.3, 4.9)]),
    "bridged": ([(1.0, 2.0), (2.3, 3.0)], [(0.9, 3.1)]),
    "split": ([(1.0, 3.0)], [(1.0, 1.8), (2.1, 3.0)]),
    "missed and false": ([(0.5, 1.5), (4.0, 5.0)], [(0.6, 1.4), (2.5, 3.0)]),
}


@pytest.mark.parametrize("name", list(HAND_EXAMPLES))
@pytest.mark.parametrize("collar", [0.0, 0.25, 0.5])
def test_detection_counts_are_pyannotes(name, collar):
    from pyannote.core import Annotation, Timeline
    from pyannote.core import Segment as Span
    from pyannote.metrics.detection import DetectionErrorRate, DetectionPrecision, DetectionRecall

    references, hypotheses = HAND_EXAMPLES[name]

    def annotation(spans):
        out = Annotation()
        for start, end in spans:
            out[Span(start, end)] = "speech"
        return out

    reference, hypothesis, uem = annotation(references), annotation(hypotheses), Timeline([Span(0, 6.0)])
    ours = detection_counts([Segment(*h) for h in hypotheses], [Segment(*r) for r in references], 6.0, collar)
    theirs = {cls.__name__: cls(collar=collar)(reference, hypothesis, uem=uem)
              for cls in (DetectionErrorRate, DetectionPrecision, DetectionRecall)}
    assert (ours.false_alarm + ours.miss) / ours.reference == pytest.approx(theirs["DetectionErrorRate"])
    assert ours.true_positive / (ours.true_positive + ours.false_alarm) == pytest.approx(theirs["DetectionPrecision"])
    assert ours.true_positive / ours.reference == pytest.approx(theirs["DetectionRecall"])


@pytest.mark.parametrize("name", list(HAND_EXAMPLES))
def test_event_matching_is_sed_evals(name):
    import dcase_util
    import sed_eval

    references, hypotheses = HAND_EXAMPLES[name]

    def events(spans):
        return dcase_util.containers.MetaDataContainer(
            [{"filename": "a.wav", "event_label": "speech", "onset": s, "offset": e} for s, e in spans])

    metric = sed_eval.sound_event.EventBasedMetrics(["speech"], t_collar=0.2, percentage_of_length=0.2)
    metric.evaluate(events(references), events(hypotheses))
    theirs = metric.results_overall_metrics()["f_measure"]
    matched = match_events([Segment(*h) for h in hypotheses], [Segment(*r) for r in references])
    precision, recall = matched / len(hypotheses), matched / len(references)
    assert precision == pytest.approx(theirs["precision"]) and recall == pytest.approx(theirs["recall"])
    assert (name == "perfect") == (matched == len(references) == len(hypotheses))


def test_a_perfect_frame_classifier_scores_one_on_every_segment_score():
    """The reference is the segmenter's reading of the labels, short gaps bridged: labels given as
    probabilities find exactly it."""
    labels = np.zeros(800, np.float32)
    labels[100:200] = labels[230:300] = labels[500:520] = labels[600:610] = 1  # a 300 ms gap, a 200 ms burst, a click
    references = reference_segments(labels)
    assert references == [Segment(0.8, 3.1), Segment(4.8, 5.3)]  # bridged and padded; the 100 ms click dropped
    metric = SegmentVAD()
    as_tensor = torch.from_numpy(labels)[None]
    metric.update(as_tensor, as_tensor, torch.ones_like(as_tensor, dtype=torch.bool), torch.tensor([0]))
    scores = metric.compute()
    assert scores["detection_error_rate"] == 0.0
    assert all(scores[k] == 1.0 for k in ("detection_precision", "detection_recall", "detection_f",
                                          "event_precision", "event_recall", "event_f"))
    late = torch.roll(as_tensor, 40, dims=1)  # the same decisions 400 ms late: onsets miss sed_eval's 200 ms
    metric = SegmentVAD()
    metric.update(late, as_tensor, torch.ones_like(as_tensor, dtype=torch.bool), torch.tensor([0]))
    scores = metric.compute()
    assert scores["event_f"] == 0.0 and 0 < scores["detection_error_rate"] < 1 and scores["detection_recall"] < 1
