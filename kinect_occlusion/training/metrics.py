"""Streaming binary segmentation metrics for the occlusion class (pure: arrays in, numbers out).

The six numbers of the SOSS paper's Table I — accuracy, precision, recall, F1, IoU and ROC AUC —
are accumulated over any number of images without holding per-pixel scores:

* the confusion counts use the decision ``prob > threshold`` (default 0.5). With ``> 0.5`` a pixel
  at exactly 0.5 is background, the same tie rule as ``argmax([1 - p, p])`` in the soft vote;
* the AUC comes from two fixed-bin histograms of the scores (positives, negatives). Score ``p`` goes
  to bin ``round(p * (n_bins - 1))``; with the default 65536 bins every uint8-quantised score
  ``k / 255`` lands in its own bin (``k * 257``), so the AUC is exact for them (ties count one half,
  as in the Mann-Whitney statistic and ``sklearn.metrics.roc_auc_score``); float scores are off by
  at most the bin width. A binary output (the fused mask) has scores 0/1 only, so its AUC is that of
  the binary decision: ``(TPR + TNR) / 2``.

Undefined ratios follow scikit-learn's ``zero_division=0``: precision, recall, F1 and IoU are 0 when
their denominator is 0; the AUC is NaN when only one class is present.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

METRIC_NAMES = ("accuracy", "precision", "recall", "f1", "iou", "auc")
DEFAULT_BINS = 65536


def _ratio(num: float, den: float) -> float:
    """num / den, 0.0 when den is 0 (scikit-learn's zero_division=0)."""
    return float(num) / float(den) if den else 0.0


def auc_from_histograms(pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC AUC from per-bin counts of positive and negative scores (bins in increasing score).

    Equals the Mann-Whitney probability P(score_pos > score_neg) + 0.5 P(equal bin).
    Returns NaN when either class is empty.
    """
    pos = pos.astype(np.float64)
    neg = neg.astype(np.float64)
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos == 0 or n_neg == 0:
        return math.nan
    # Positives strictly below each bin, for every negative in that bin
    pos_below = np.cumsum(pos) - pos
    wins = (neg * (n_pos - pos_below - pos)).sum() + 0.5 * (neg * pos).sum()
    return float(wins / (n_pos * n_neg))


@dataclass
class BinaryMetrics:
    """Streaming confusion counts + score histograms for one binary segmentation output.

    ``update`` as many images as needed, then ``compute``. Two accumulators ``merge`` by adding.
    """

    threshold: float = 0.5
    n_bins: int = DEFAULT_BINS
    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0
    pos_hist: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    neg_hist: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        if self.n_bins < 2:
            raise ValueError("n_bins must be at least 2")
        if self.pos_hist.size == 0:
            self.pos_hist = np.zeros(self.n_bins, np.int64)
            self.neg_hist = np.zeros(self.n_bins, np.int64)

    def update(self, prob: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Add one image.

        Args:
            prob: occlusion score per pixel in [0, 1]: float, or bool / 0-1 integers for a binary
                mask. Values are taken as they are (divide a uint8 0–255 map by 255 first).
            truth: ground truth per pixel (bool or 0/1), same shape.
            valid: optional bool mask of the pixels to count (e.g. the ROI); None counts all.
        """
        if prob.shape != truth.shape:
            raise ValueError(f"prob and truth shapes differ: {prob.shape} vs {truth.shape}")
        scores = prob.astype(np.float64)
        gt = truth.astype(bool)
        if valid is not None:
            scores, gt = scores[valid], gt[valid]
        scores, gt = scores.reshape(-1), gt.reshape(-1)
        # Confusion counts at the threshold
        pred = scores > self.threshold
        tp = int(np.count_nonzero(pred & gt))
        fp = int(np.count_nonzero(pred & ~gt))
        fn = int(np.count_nonzero(~pred & gt))
        self.tp, self.fp, self.fn = self.tp + tp, self.fp + fp, self.fn + fn
        self.tn += int(gt.size) - tp - fp - fn
        # Score histograms per true class, for the AUC
        bins = np.clip(np.rint(scores * (self.n_bins - 1)), 0, self.n_bins - 1).astype(np.intp)
        self.pos_hist += np.bincount(bins[gt], minlength=self.n_bins)
        self.neg_hist += np.bincount(bins[~gt], minlength=self.n_bins)

    def merge(self, other: BinaryMetrics) -> None:
        """Add another accumulator's counts (same threshold and bins) into this one."""
        if other.n_bins != self.n_bins or other.threshold != self.threshold:
            raise ValueError("cannot merge metrics with different bins or threshold")
        self.tp, self.fp, self.tn, self.fn = (
            self.tp + other.tp,
            self.fp + other.fp,
            self.tn + other.tn,
            self.fn + other.fn,
        )
        self.pos_hist += other.pos_hist
        self.neg_hist += other.neg_hist

    @property
    def n_pixels(self) -> int:
        """Pixels counted so far."""
        return self.tp + self.fp + self.tn + self.fn

    def compute(self) -> dict[str, float]:
        """accuracy, precision, recall, f1, iou (fractions in [0, 1]) and auc (NaN if undefined)."""
        tp, fp, tn, fn = self.tp, self.fp, self.tn, self.fn
        return {
            "accuracy": _ratio(tp + tn, tp + fp + tn + fn),
            "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn),
            "iou": _ratio(tp, tp + fp + fn),
            "auc": auc_from_histograms(self.pos_hist, self.neg_hist),
        }
