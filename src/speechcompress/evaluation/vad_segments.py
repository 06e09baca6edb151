"""From frame speech probabilities to speech segments, and segment-level precision / recall.

The state machine (FunASR's idea, with our own names):
- in silence, a sliding window of `window_ms` watches the frames; once `start_speech_ms` of them
  are speech (probability ≥ threshold), a segment starts at the window's first speech frame,
  moved `lookback_ms` earlier;
- in speech, a run of `end_silence_ms` silent frames ends it at the first silent frame, moved
  `lookahead_ms` later; a segment reaching `max_segment_ms` is cut there and a new one begins;
- segments whose speech (before padding) is shorter than `min_speech_ms` are dropped.
Segments never overlap: padding stops at the neighbouring segment.

`label_segments` gives the reference that segment metrics compare with: the runs of labelled
speech as they are, with no post-processing of their own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

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


def label_segments(labels: np.ndarray) -> list[Segment]:
    """Each run of consecutive speech frames (label ≥ 0.5) of 10 ms labels, as one segment."""
    speech = np.concatenate([[False], np.asarray(labels) >= 0.5, [False]])
    edges = np.flatnonzero(speech[1:] != speech[:-1])
    return [Segment(start / FRAMES_PER_SECOND, end / FRAMES_PER_SECOND) for start, end in edges.reshape(-1, 2)]


def match_segments(hypotheses: list[Segment], references: list[Segment], collar: float) -> int:
    """How many references are matched one-to-one by a hypothesis whose start and end are both within `collar` s."""
    used: set[int] = set()
    matched = 0
    for reference in references:
        for index, hypothesis in enumerate(hypotheses):
            if index not in used and abs(hypothesis.start - reference.start) <= collar \
                    and abs(hypothesis.end - reference.end) <= collar:
                used.add(index)
                matched += 1
                break
    return matched
