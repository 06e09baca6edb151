"""Detection metrics of VADs, on 10 ms frames and on speech segments.

Frame level, speech = positive class, at a probability threshold: precision, recall, F1, the
detection cost DCF = 0.25 · false-alarm rate + 0.75 · miss rate, and the threshold-free ROC-AUC.
`noise_false_alarm` is the share of frames called speech in items with no speech at all.
Segment level: precision and recall of segments matched one-to-one within a collar, against the
segments that the same post-processing makes of the labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torchmetrics.functional.classification import binary_auroc

from speechcompress.tasks.vad_segments import SegmentConfig, match_segments, speech_segments


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def frame_scores(probabilities: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Frame metrics of 1-D `probabilities` against 0/1 `labels` of the same length."""
    predicted, actual = probabilities >= threshold, labels > 0.5
    tp = float(np.sum(predicted & actual))
    fp = float(np.sum(predicted & ~actual))
    fn = float(np.sum(~predicted & actual))
    negatives, positives = float(np.sum(~actual)), float(np.sum(actual))
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    scores = {
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "false_alarm_rate": _ratio(fp, negatives),
        "miss_rate": _ratio(fn, positives),
    }
    scores["dcf"] = 0.25 * scores["false_alarm_rate"] + 0.75 * scores["miss_rate"]
    # the F1 of a VAD that always says "speech" is 2s / (1 + s): the floor any F1 is read against
    scores["speech_share"] = _ratio(positives, positives + negatives)
    both_classes = positives > 0 and negatives > 0
    scores["auc"] = float(binary_auroc(torch.from_numpy(probabilities), torch.from_numpy(actual.astype(np.int64)))) \
        if both_classes else math.nan
    return scores


@dataclass
class VADScores:
    """Accumulates items (frame probabilities + labels) and summarises them all at once."""

    threshold: float = 0.5
    segments: SegmentConfig = field(default_factory=SegmentConfig)
    collar: float = 0.25  # seconds
    probabilities: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    counts: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("hypothesis_segments", "reference_segments", "matched_segments", "noise_frames", "noise_false_alarms"), 0.0))

    def update(self, probabilities: np.ndarray, labels: np.ndarray) -> None:
        self.probabilities.append(probabilities.astype(np.float32))
        self.labels.append(labels.astype(np.float32))
        hypotheses = speech_segments(probabilities, self.segments)
        references = speech_segments(labels, self.segments)
        self.counts["hypothesis_segments"] += len(hypotheses)
        self.counts["reference_segments"] += len(references)
        self.counts["matched_segments"] += match_segments(hypotheses, references, self.collar)
        if not labels.any():
            self.counts["noise_frames"] += len(labels)
            self.counts["noise_false_alarms"] += float(np.sum(probabilities >= self.threshold))

    def summary(self) -> dict[str, float]:
        if not self.probabilities:
            return {"items": 0.0}
        c = self.counts
        return {
            **frame_scores(np.concatenate(self.probabilities), np.concatenate(self.labels), self.threshold),
            "noise_false_alarm": _ratio(c["noise_false_alarms"], c["noise_frames"]),
            "segment_precision": _ratio(c["matched_segments"], c["hypothesis_segments"]),
            "segment_recall": _ratio(c["matched_segments"], c["reference_segments"]),
            "items": float(len(self.probabilities)),
            "noise_items": float(sum(not labels.any() for labels in self.labels)),
        }
