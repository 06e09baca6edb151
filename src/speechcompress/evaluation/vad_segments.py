"""From frame speech probabilities to speech segments, and segment-level precision / recall.

The state machine (FunASR's idea, with our own names):
- in silence, a sliding window of `window_ms` watches the frames; once `start_speech_ms` of them
  are speech (probability ≥ threshold), a segment starts at the window's first speech frame,
  moved `lookback_ms` earlier;
- in speech, a run of `end_silence_ms` silent frames ends it at the first silent frame, moved
  `lookahead_ms` later; a segment reaching `max_segment_ms` is cut there and a new one begins;
- segments whose speech (before padding) is shorter than `min_speech_ms` are dropped.
Segments never overlap: padding stops at the neighbouring segment.

Segment metrics, as the field scores them, compare these segments with `reference_segments`, the
segmenter's reading of the true labels: duration-based detection counts outside a collar
(pyannote.metrics' detection precision / recall / error rate) and one-to-one event matching of
onsets and offsets (sed_eval's event-based metrics).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from speechcompress.data.mixing import VAD_FRAME_SECONDS as FRAME_SECONDS  # the labels' frames

FRAMES_PER_SECOND = round(1 / FRAME_SECONDS)


@dataclass(frozen=True)
class SegmentConfig:
    threshold: float = 0.5
    window_ms: int = 200
    start_speech_ms: int = 150
    end_silence_ms: int = 500
    lookback_ms: int = 200
    lookahead_ms: int = 100
    min_speech_ms: int = 200
    max_segment_ms: int = 60000

    def __post_init__(self) -> None:
        if not 0 < self.start_speech_ms <= self.window_ms:
            raise ValueError(f"segments: start_speech_ms ({self.start_speech_ms}) must be in (0, window_ms = {self.window_ms}]")
        if self.end_silence_ms <= 0 or self.max_segment_ms <= 0:
            raise ValueError("segments: end_silence_ms and max_segment_ms must be positive")

    def frames(self, ms: int) -> int:
        return max(1, round(ms * FRAMES_PER_SECOND / 1000)) if ms else 0


@dataclass(frozen=True)
class Segment:
    start: float  # seconds
    end: float

    def as_dict(self) -> dict[str, float]:
        return {"start": round(self.start, 3), "end": round(self.end, 3)}


class Segmenter:
    """Turns a stream of frame probabilities into segments: `push` them in any pieces, then `finish`."""

    def __init__(self, config: SegmentConfig = SegmentConfig()) -> None:
        self.config = config
        self.window: deque[bool] = deque(maxlen=config.frames(config.window_ms))
        self.frame = 0  # index of the next frame
        self.start: int | None = None  # padded start of the open segment
        self.speech_start = 0  # its first speech frame (before padding)
        self.silence_run = 0
        self.last_end = 0  # end frame of the previous segment; padding never crosses it

    def push(self, probabilities: Iterable[float]) -> list[Segment]:
        done = []
        for probability in probabilities:
            done += self._frame(float(probability) >= self.config.threshold)
        return done

    def finish(self) -> list[Segment]:
        if self.start is None:
            return []
        speech_end = self.frame - self.silence_run
        return self._close(speech_end, min(self.frame, speech_end + self.config.frames(self.config.lookahead_ms)))

    def _frame(self, speech: bool) -> list[Segment]:
        c, t = self.config, self.frame
        self.frame += 1
        done: list[Segment] = []
        if self.start is None:
            self.window.append(speech)
            if sum(self.window) >= c.frames(c.start_speech_ms):
                first = t - len(self.window) + 1 + self.window.index(True)
                self.speech_start = first
                self.start = max(self.last_end, first - c.frames(c.lookback_ms))
                self.silence_run = 0
                self.window.clear()
            return done
        self.silence_run = 0 if speech else self.silence_run + 1
        if self.silence_run >= c.frames(c.end_silence_ms):
            speech_end = t - self.silence_run + 1
            return self._close(speech_end, min(t + 1, speech_end + c.frames(c.lookahead_ms)))
        if t + 1 - self.start >= c.frames(c.max_segment_ms):
            done = self._close(t + 1, t + 1)
            self.start = self.speech_start = t + 1  # the speech goes on in a new segment
            self.silence_run = 0
        return done

    def _close(self, speech_end: int, end: int) -> list[Segment]:
        start, speech_start = self.start, self.speech_start
        self.start = None
        self.silence_run = 0
        self.window.clear()
        if speech_end - speech_start < self.config.frames(self.config.min_speech_ms):
            return []
        self.last_end = end
        return [Segment(start / FRAMES_PER_SECOND, end / FRAMES_PER_SECOND)]


def speech_segments(probabilities: np.ndarray, config: SegmentConfig = SegmentConfig()) -> list[Segment]:
    """Segments of one file's frame probabilities (10 ms frames)."""
    segmenter = Segmenter(config)
    return segmenter.push(probabilities) + segmenter.finish()


def reference_segments(labels: np.ndarray, config: SegmentConfig = SegmentConfig()) -> list[Segment]:
    """What the segmenter makes of the true 10 ms labels: the reference segment metrics compare with.
    Label gaps shorter than its minimum silence are bridged, ends padded and short bursts dropped as
    the detector's own output is, so a perfect frame classifier scores perfectly."""
    return speech_segments((np.asarray(labels) >= 0.5).astype(np.float32), replace(config, threshold=0.5))


Intervals = list[tuple[float, float]]  # sorted, disjoint (start, end) in seconds


def _intersection(a: Intervals, b: Intervals) -> Intervals:
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _union(intervals: Intervals) -> Intervals:
    out: Intervals = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        elif start < end:
            out.append((start, end))
    return out


def _complement(intervals: Intervals, duration: float) -> Intervals:
    edges = [0.0] + [t for interval in intervals for t in interval] + [duration]
    return [(max(start, 0.0), min(end, duration)) for start, end in zip(edges[::2], edges[1::2], strict=True)
            if min(end, duration) > max(start, 0.0)]


def _length(intervals: Intervals) -> float:
    return sum(end - start for start, end in intervals)


@dataclass(frozen=True)
class DetectionCounts:
    """Seconds of one file as pyannote.metrics' detection metrics count them: outside the collars."""

    true_positive: float
    false_alarm: float
    miss: float

    @property
    def reference(self) -> float:
        return self.true_positive + self.miss


def detection_counts(hypotheses: list[Segment], references: list[Segment], duration: float,
                     collar: float) -> DetectionCounts:
    """Speech seconds found, falsely found and missed, with `collar` seconds around each reference
    boundary (half before, half after) left out of the evaluation, as pyannote.metrics does."""
    halves = [(t - collar / 2, t + collar / 2) for r in references for t in (r.start, r.end)] if collar else []
    scored = _complement(_union(halves), duration)
    reference = _intersection(_union([(r.start, r.end) for r in references]), scored)
    hypothesis = _intersection(_union([(h.start, h.end) for h in hypotheses]), scored)
    found = _length(_intersection(reference, hypothesis))
    return DetectionCounts(found, _length(hypothesis) - found, _length(reference) - found)


def match_events(hypotheses: list[Segment], references: list[Segment], onset_collar: float = 0.2,
                 offset_share: float = 0.2) -> int:
    """How many references an estimated segment matches one-to-one (a maximum matching), sed_eval's
    event-based rule: onsets within `onset_collar` s, offsets within max(`onset_collar`,
    `offset_share` of the reference's length)."""
    fits = [[k for k, h in enumerate(hypotheses)
             if abs(h.start - r.start) <= onset_collar
             and abs(h.end - r.end) <= max(onset_collar, offset_share * (r.end - r.start))] for r in references]
    owner: dict[int, int] = {}

    def claim(reference: int, seen: set[int]) -> bool:  # an augmenting path (Kuhn's algorithm)
        for k in fits[reference]:
            if k not in seen:
                seen.add(k)
                if k not in owner or claim(owner[k], seen):
                    owner[k] = reference
                    return True
        return False

    return sum(claim(reference, set()) for reference in range(len(references)))
