"""Post-processing of frame probabilities into segments, on crafted sequences (10 ms frames)."""

import numpy as np
import pytest

from speechcompress.evaluation.vad_segments import (
    Segment,
    SegmentConfig,
    Segmenter,
    match_segments,
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


def test_matching_within_a_collar():
    references = [Segment(1.0, 2.0), Segment(3.0, 4.0)]
    assert match_segments([Segment(1.1, 1.9), Segment(3.0, 4.5)], references, collar=0.25) == 1
    assert match_segments([Segment(1.1, 1.9), Segment(1.0, 2.0)], references[:1], collar=0.25) == 1  # one-to-one
