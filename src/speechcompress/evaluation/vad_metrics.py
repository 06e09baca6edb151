"""Detection metrics of VADs, on 10 ms frames and on speech segments.

Frame level, speech = positive class, at a probability threshold: precision, recall, F1, the
detection cost DCF = 0.25 · false-alarm rate + 0.75 · miss rate, and the threshold-free ROC-AUC;
`noise_false_alarm` is the share of frames called speech in items with no speech at all.
Segment level, the post-processed segments (see `vad_segments`) against the segmenter's reading of
the true labels: pyannote.metrics' duration-based detection precision, recall, F-measure and
detection error rate ((false alarm + miss) / reference speech) outside a collar around each
reference boundary, and sed_eval's event-based precision, recall and F-measure (onset within
200 ms, offset within max(200 ms, 20 % of the segment), matched one-to-one).

`frame_scores` scores one array; `FrameVAD` and `SegmentVAD` accumulate a split on one process or
many, counting every item once (see `evaluation.items`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.functional.classification import binary_auroc, binary_stat_scores
from torchmetrics.utilities import dim_zero_cat

from speechcompress.evaluation.items import first_of_each_item
from speechcompress.evaluation.vad_segments import (
    FRAMES_PER_SECOND,
    SegmentConfig,
    detection_counts,
    match_events,
    reference_segments,
    speech_segments,
)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def frame_scores(probabilities: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Frame metrics of 1-D `probabilities` against 0/1 `labels` of the same length."""
    predicted, actual = probabilities >= threshold, labels > 0.5
    # decided here (speech from the threshold up, as the segmenter reads it) and counted by torchmetrics
    tp, fp, tn, fn, _ = binary_stat_scores(torch.from_numpy(predicted).long(), torch.from_numpy(actual).long()).tolist()
    negatives, positives = float(tn + fp), float(tp + fn)
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


def _valid_items(probabilities: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor):
    """Each item's valid frames as (probabilities, labels) numpy arrays."""
    for p, y, keep in zip(probabilities, labels, valid, strict=True):
        yield p[keep].float().cpu().numpy(), y[keep].float().cpu().numpy()


class FrameVAD(Metric):
    """Frame metrics over a split: `update(probabilities, labels, valid, index)` with [B, F] speech
    probabilities and 0/1 labels, a [B, F] mask of the frames inside each item, and the items'
    dataset `index` [B]. `compute()` gives `frame_scores` of all frames of the distinct items, plus
    `noise_false_alarm`, `items` and `noise_items` (items without any speech)."""

    full_state_update = False

    def __init__(self, threshold: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.threshold = threshold
        self.add_state("index", default=[], dist_reduce_fx="cat")  # per item
        self.add_state("frames", default=[], dist_reduce_fx="cat")  # per item: its number of frames
        self.add_state("probability", default=[], dist_reduce_fx="cat")  # per frame, items one after another
        self.add_state("label", default=[], dist_reduce_fx="cat")

    def update(self, probabilities: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor, index: torch.Tensor) -> None:
        self.index.append(index.detach().long().reshape(-1).to(self.device))
        self.frames.append(valid.sum(dim=1).long().to(self.device))
        self.probability.append(probabilities.detach()[valid].float().to(self.device))
        self.label.append((labels.detach()[valid] > 0.5).float().to(self.device))

    def compute(self) -> dict[str, float]:
        if len(self.index) == 0:
            return {"items": 0.0}
        index, frames = dim_zero_cat(self.index), dim_zero_cat(self.frames)
        probability, label = dim_zero_cat(self.probability), dim_zero_cat(self.label)
        # every rank's frames follow its items in order, so item k owns the k-th run of frames
        item_of_frame = torch.repeat_interleave(torch.arange(len(frames), device=frames.device), frames)
        kept = first_of_each_item(index)
        keep_frame = torch.zeros(len(frames), dtype=torch.bool, device=frames.device)
        keep_frame[kept] = True
        keep_frame = keep_frame[item_of_frame]
        probability, item_of_frame = probability[keep_frame], item_of_frame[keep_frame]
        label = label[keep_frame] > 0.5
        speech_frames = torch.zeros(len(frames), device=frames.device).index_add_(0, item_of_frame, label.float())
        noise_item = torch.zeros(len(frames), dtype=torch.bool, device=frames.device)
        noise_item[kept] = speech_frames[kept] == 0
        in_noise_item = noise_item[item_of_frame]
        called_speech = probability >= self.threshold
        return {
            **frame_scores(probability.cpu().numpy(), label.cpu().numpy(), self.threshold),
            "noise_false_alarm": _ratio(float(called_speech[in_noise_item].sum()), float(in_noise_item.sum())),
            "items": float(len(kept)),
            "noise_items": float(noise_item.sum()),
        }


def _f_measure(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


class SegmentVAD(Metric):
    """Segment detection and event scores over a split (see the module's docstring); `collar` is
    pyannote's: seconds around each reference boundary, half before and half after, left out.
    Same `update` arguments as `FrameVAD`. Durations and counts are summed over items before the
    ratios are taken, as pyannote.metrics and sed_eval accumulate files."""

    full_state_update = False

    def __init__(self, segments: SegmentConfig | None = None, collar: float = 0.25, **kwargs) -> None:
        super().__init__(**kwargs)
        self.segments, self.collar = segments or SegmentConfig(), collar
        self.add_state("index", default=[], dist_reduce_fx="cat")
        # per item: seconds found, falsely found, missed; estimated, reference and matched segments
        self.add_state("counts", default=[], dist_reduce_fx="cat")

    def update(self, probabilities: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor, index: torch.Tensor) -> None:
        rows = []
        for p, y in _valid_items(probabilities, labels, valid):
            hypotheses, references = speech_segments(p, self.segments), reference_segments(y, self.segments)
            seconds = detection_counts(hypotheses, references, len(y) / FRAMES_PER_SECOND, self.collar)
            rows.append((seconds.true_positive, seconds.false_alarm, seconds.miss, len(hypotheses), len(references),
                         match_events(hypotheses, references)))
        self.index.append(index.detach().long().reshape(-1).to(self.device))
        self.counts.append(torch.tensor(rows, dtype=torch.float64, device=self.device).reshape(-1, 6))

    def compute(self) -> dict[str, float]:
        if len(self.index) == 0:
            return {}
        counts = dim_zero_cat(self.counts)[first_of_each_item(dim_zero_cat(self.index))]
        found, false_alarm, miss, estimated, references, matched = (float(c) for c in counts.sum(dim=0))
        precision, recall = _ratio(found, found + false_alarm), _ratio(found, found + miss)
        event_precision, event_recall = _ratio(matched, estimated), _ratio(matched, references)
        return {"detection_precision": precision, "detection_recall": recall,
                "detection_f": _f_measure(precision, recall),
                "detection_error_rate": _ratio(false_alarm + miss, found + miss),
                "event_precision": event_precision, "event_recall": event_recall,
                "event_f": _f_measure(event_precision, event_recall)}
