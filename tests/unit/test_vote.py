"""Soft vote against a naive per-segment reference."""

import numpy as np
import pytest

from kinect_occlusion.fuser.vote import binary_probs, soft_vote, soft_vote_naive


@pytest.mark.parametrize("seed", range(8))
def test_matches_naive_reference(seed):
    rng = np.random.default_rng(seed)
    c, h, w = int(rng.integers(2, 5)), int(rng.integers(5, 60)), int(rng.integers(5, 60))
    probs = rng.random((c, h, w)).astype(np.float32)
    labels = rng.integers(0, int(rng.integers(1, 40)), (h, w))
    classes, votes = soft_vote(probs, labels)
    np.testing.assert_array_equal(classes, soft_vote_naive(probs, labels))
    for k in np.unique(labels):
        np.testing.assert_allclose(votes[k], probs[:, labels == k].sum(axis=1), rtol=1e-5)


def test_ties_go_to_the_lower_class_and_uncovered_keep_pixel_argmax():
    probs = np.zeros((2, 2, 3), np.float32)
    probs[:, 0, :] = 0.5  # segment 1: exact tie → class 0
    probs[1, 1, :] = [0.9, 0.2, 0.7]
    probs[0, 1, :] = 1 - probs[1, 1, :]
    labels = np.array([[1, 1, 1], [0, 0, 0]])
    classes, votes = soft_vote(probs, labels)
    np.testing.assert_array_equal(classes, [[0, 0, 0], [1, 0, 1]])
    np.testing.assert_array_equal(classes, soft_vote_naive(probs, labels))
    assert votes.shape == (2, 2)


def test_a_segment_takes_its_majority_class():
    prob = np.full((10, 10), 0.3, np.float32)
    prob[:, :6] = 0.9  # summed: 66 for occlusion vs 34 against
    labels = np.ones((10, 10), np.int32)
    classes, _ = soft_vote(binary_probs(prob), labels)
    assert classes.all()


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        soft_vote(np.zeros((2, 4, 4)), np.zeros((4, 5), int))
