"""Fusion over superpixels that keeps thin structures (vote.fuse_superpixels, fuser.worker.fuse)."""

from __future__ import annotations

import numpy as np
import pytest

from kinect_occlusion import messages as m
from kinect_occlusion.config import FuserConfig
from kinect_occlusion.fuser.vote import binary_probs, fuse_superpixels, soft_vote
from kinect_occlusion.fuser.worker import fuse


def tube_scene() -> tuple[np.ndarray, np.ndarray]:
    """A 2-px tube crossing a big superpixel, and a blob with holes that fills most of another."""
    prob = np.full((40, 80), 0.05, np.float32)
    prob[19:21, :40] = 0.9  # the tube: 5 % of segment 1
    prob[2:38, 42:78] = 0.8  # the blob: 80 % of segment 2 …
    prob[15:18, 55:58] = 0.2  # … with a hole the coarse branch missed
    labels = np.ones((40, 80), np.int32)
    labels[:, 40:] = 2
    return prob, labels


def test_tube_kept_where_the_paper_rule_votes_it_away():
    prob, labels = tube_scene()
    paper = soft_vote(binary_probs(prob), labels)[0]
    assert not paper[19:21, :40].any()  # the defect: the segment votes the tube away
    fused = fuse_superpixels(prob, labels)
    assert fused.dtype == np.uint8 and fused[19:21, :40].all()


def test_pure_segments_still_take_their_vote_and_fusion_only_adds():
    prob, labels = tube_scene()
    fused = fuse_superpixels(prob, labels)
    assert fused[:, 40:].all()  # 80 % positive: the whole segment, hole included
    assert (fused >= (prob >= 0.5)).all()
    # A mixed segment (40 % positive) keeps the coarse pixels; uncovered pixels too
    labels[:, 40:] = 0
    labels[:, 40:68] = 3
    prob[:, 40:] = 0.05
    prob[:, 40:51] = 0.9
    fused = fuse_superpixels(prob, labels)
    np.testing.assert_array_equal(fused[:, 40:], prob[:, 40:] >= 0.5)


def test_shapes_must_agree():
    with pytest.raises(ValueError, match="disagree"):
        fuse_superpixels(np.zeros((4, 4), np.float32), np.zeros((4, 5), np.int32))


@pytest.mark.parametrize(("partitioner", "tube_kept"), [("superpixel/seeds", True), ("sam/vit_b", False)])
def test_fuser_keeps_the_tube_on_superpixels_and_the_paper_rule_on_sam(partitioner, tube_kept):
    prob, labels = tube_scene()
    coarse = m.CoarseMask(
        camera="bed1", frame_id=3, ts_us=1000, prob=(prob * 255).astype(np.uint8), roi=(0, 0, 80, 40)
    )
    part = m.Partition(
        camera="bed1",
        frame_id=3,
        ts_us=1000,
        labels=labels,
        scores=np.zeros((2, 2), np.float32),
        partitioner=partitioner,
    )
    out = fuse(coarse, part, FuserConfig())
    assert out.fused and bool(out.mask[19:21, :40].all()) is tube_kept
    assert out.votes.shape == (3, 2)
