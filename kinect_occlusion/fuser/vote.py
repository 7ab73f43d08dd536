"""Soft voting: every segment takes the class with the largest summed probability (pure)."""

from __future__ import annotations

import numpy as np


def soft_vote(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fuse per-pixel class probabilities with a partition in one vectorised pass.

    Args:
        probs: (C, H, W) float class probabilities (or any non-negative scores).
        labels: (H, W) integer segment ids; 0 = pixel covered by no segment.

    Returns:
        classes: (H, W) int64 class map. A pixel of segment k gets ``argmax(votes[k])``
            (ties go to the lower class index, as ``np.argmax`` does); uncovered pixels keep
            the per-pixel argmax of ``probs``.
        votes: (K + 1, C) float64 summed probabilities per segment id (row 0: uncovered pixels).
    """
    if probs.ndim != 3 or labels.shape != probs.shape[1:]:
        raise ValueError(f"probs (C,H,W) and labels (H,W) disagree: {probs.shape} vs {labels.shape}")
    if labels.size and labels.min() < 0:
        raise ValueError("labels must be non-negative")
    n_classes = probs.shape[0]
    flat = labels.reshape(-1).astype(np.intp, copy=False)
    n_ids = int(flat.max()) + 1 if flat.size else 1
    # Sum each class's probability per segment id
    votes = np.stack(
        [np.bincount(flat, weights=probs[c].reshape(-1), minlength=n_ids) for c in range(n_classes)], axis=1
    )
    # Segment winner per id, then broadcast back to pixels
    winners = votes.argmax(axis=1)
    classes = winners[flat].reshape(labels.shape)
    # Uncovered pixels keep the coarse per-pixel label
    uncovered = labels == 0
    if uncovered.any():
        classes[uncovered] = probs[:, uncovered].argmax(axis=0)
    return classes.astype(np.int64, copy=False), votes


def binary_probs(prob: np.ndarray) -> np.ndarray:
    """Stack an occlusion probability map (H, W) into (2, H, W): [not occlusion, occlusion]."""
    p = prob.astype(np.float32, copy=False)
    return np.stack([1.0 - p, p])


def soft_vote_naive(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Reference implementation: one boolean mask per segment (slow; for tests and benchmarks)."""
    classes = probs.argmax(axis=0).astype(np.int64)
    for k in np.unique(labels):
        if k == 0:
            continue
        inside = labels == k
        classes[inside] = int(np.argmax(probs[:, inside].sum(axis=1)))
    return classes


# Chosen on 48 fresh synthetic scenes (seed 1), not the test split (tools/bench_fusion.py, docs/BENCHMARKS.md)
FILL_SHARE = 0.7


def fuse_superpixels(
    prob: np.ndarray, labels: np.ndarray, classes: np.ndarray | None = None, fill_share: float = FILL_SHARE
) -> np.ndarray:
    """The fused mask for a superpixel partition, keeping the thin structures the coarse mask found.

    Superpixels do not follow tubes and cables: with the paper's rule (every segment takes its soft
    vote) a segment that a thin structure crosses votes it away. Here a segment takes its vote only
    when at least ``fill_share`` of its pixels are coarse-positive (the vote fills its holes and
    snaps it to the segment); every other pixel, and every uncovered one (0), keeps the coarse
    decision. So the fusion only adds occlusion pixels, never removes what the coarse mask found.

    Args:
        prob: (H, W) occlusion probability.
        labels: (H, W) superpixel ids, 0 = uncovered.
        classes: ``soft_vote(binary_probs(prob), labels)[0]`` when already computed.
        fill_share: share of coarse-positive pixels from which a segment takes its vote.

    Returns:
        (H, W) uint8 0/1 occlusion mask.
    """
    if labels.shape != prob.shape:
        raise ValueError(f"prob {prob.shape} and labels {labels.shape} disagree")
    if classes is None:
        classes = soft_vote(binary_probs(prob), labels)[0]
    coarse = prob >= 0.5
    flat = labels.reshape(-1).astype(np.intp, copy=False)
    n_ids = int(flat.max()) + 1 if flat.size else 1
    positives = np.bincount(flat, weights=coarse.reshape(-1), minlength=n_ids)
    share = positives / np.maximum(np.bincount(flat, minlength=n_ids), 1)
    share[0] = 0.0  # uncovered pixels keep the coarse decision
    fill = (share >= fill_share)[flat].reshape(labels.shape)
    return (coarse | (fill & classes.astype(bool))).astype(np.uint8)
