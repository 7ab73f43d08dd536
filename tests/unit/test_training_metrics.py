"""BinaryMetrics equals scikit-learn on the same pixels, streamed over several images."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from kinect_occlusion.training.metrics import BinaryMetrics, auc_from_histograms


def _images(rng: np.random.Generator, n: int, quantise: bool):
    """n (prob, truth) pairs whose probabilities correlate with the truth."""
    out = []
    for _ in range(n):
        truth = rng.random((24, 32)) < 0.3
        prob = np.clip(0.35 * truth + rng.random(truth.shape) * 0.65, 0, 1)
        if quantise:
            prob = np.round(prob * 255) / 255
        out.append((prob, truth))
    return out


def _sklearn(prob: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    pred = prob > 0.5
    return {
        "accuracy": skm.accuracy_score(truth, pred),
        "precision": skm.precision_score(truth, pred, zero_division=0),
        "recall": skm.recall_score(truth, pred, zero_division=0),
        "f1": skm.f1_score(truth, pred, zero_division=0),
        "iou": skm.jaccard_score(truth, pred, zero_division=0),
        "auc": skm.roc_auc_score(truth, prob),
    }


@pytest.mark.parametrize("quantise", [False, True])
def test_streaming_metrics_equal_sklearn(quantise: bool) -> None:
    images = _images(np.random.default_rng(3), 5, quantise)
    acc = BinaryMetrics()
    for prob, truth in images:
        acc.update(prob.astype(np.float32), truth)
    ours = acc.compute()
    ref = _sklearn(
        np.concatenate([p.ravel() for p, _ in images]), np.concatenate([t.ravel() for _, t in images])
    )
    for name in ("accuracy", "precision", "recall", "f1", "iou"):
        assert ours[name] == pytest.approx(ref[name], abs=1e-12), name
    tol = 1e-12 if quantise else 1e-3
    assert ours["auc"] == pytest.approx(ref["auc"], abs=tol)
    assert acc.n_pixels == 5 * 24 * 32


def test_uint8_scores_binary_output_and_valid_mask() -> None:
    rng = np.random.default_rng(0)
    truth = rng.random((40, 40)) < 0.4
    prob_u8 = rng.integers(0, 256, truth.shape).astype(np.uint8)
    valid = rng.random(truth.shape) < 0.7
    acc = BinaryMetrics()
    acc.update(prob_u8 / 255.0, truth, valid=valid)
    ref = _sklearn(prob_u8[valid] / 255.0, truth[valid])
    assert acc.compute()["auc"] == pytest.approx(ref["auc"], abs=1e-12)
    assert acc.compute()["f1"] == pytest.approx(ref["f1"], abs=1e-12)
    # A binary mask: its AUC is the balanced accuracy of the decision
    fused = BinaryMetrics()
    pred = rng.random(truth.shape) < 0.5
    fused.update(pred.astype(np.uint8), truth)  # a 0/1 uint8 mask is a mask, not 0–255 scores
    assert fused.compute()["recall"] == pytest.approx(skm.recall_score(truth.ravel(), pred.ravel()))
    tpr = (pred & truth).sum() / truth.sum()
    tnr = (~pred & ~truth).sum() / (~truth).sum()
    assert fused.compute()["auc"] == pytest.approx((tpr + tnr) / 2, abs=1e-12)
    assert fused.compute()["auc"] == pytest.approx(skm.roc_auc_score(truth.ravel(), pred.ravel()), abs=1e-12)


def test_merge_equals_single_pass_and_degenerate_cases() -> None:
    images = _images(np.random.default_rng(5), 4, True)
    whole, a, b = BinaryMetrics(), BinaryMetrics(), BinaryMetrics()
    for i, (prob, truth) in enumerate(images):
        whole.update(prob, truth)
        (a if i % 2 else b).update(prob, truth)
    a.merge(b)
    assert a.compute() == whole.compute()
    # One class only: AUC undefined, ratios zero as scikit-learn's zero_division=0
    empty = BinaryMetrics()
    empty.update(np.zeros((4, 4)), np.zeros((4, 4), bool))
    res = empty.compute()
    assert math.isnan(res["auc"]) and res["accuracy"] == 1.0 and res["iou"] == 0.0
    assert math.isnan(auc_from_histograms(np.zeros(3), np.ones(3)))
    with pytest.raises(ValueError):
        empty.update(np.zeros((2, 2)), np.zeros((3, 3), bool))


def test_evaluation_scores_fused_classes_as_a_mask() -> None:
    from kinect_occlusion.fuser.vote import binary_probs, soft_vote
    from kinect_occlusion.training.evaluate import roi_mask, score_image

    truth = np.zeros((20, 30), np.uint8)
    truth[5:12, 8:20] = 1
    # Coarse is unsure (0.4–0.7) but the segments follow the object: the vote recovers it
    prob = np.where(truth == 1, 0.6, 0.45).astype(np.float32)
    prob[5:12, 8:11] = 0.4
    labels = (truth + 1).astype(np.int32)
    classes, _ = soft_vote(binary_probs(prob), labels)
    coarse, fused = score_image(prob, classes.astype(np.uint8), truth, roi_mask(truth.shape, (0, 0, 30, 20)))
    assert fused.compute()["iou"] == 1.0 and fused.compute()["auc"] == 1.0
    assert coarse.compute()["iou"] == pytest.approx(9 * 7 / (12 * 7))
    assert roi_mask((4, 5), (1, 1, 2, 2)).sum() == 4
