"""Fuser worker: soft-votes the newest coarse mask with the newest fresh-enough partition."""

from __future__ import annotations

import logging

import numpy as np

from .. import messages as m
from ..config import FuserConfig
from ..runtime.worker import WorkerRuntime, injected_fault
from .pairing import fit_labels, pair
from .vote import binary_probs, soft_vote

log = logging.getLogger(__name__)


def fuse(coarse: m.CoarseMask, partition: m.Partition | None, cfg: FuserConfig) -> m.OcclusionMask:
    """The occlusion mask for ``coarse`` (pure apart from building the message)."""
    prob = coarse.probability()
    choice = pair(coarse, partition, cfg.max_partition_age_ms)
    common = {
        "camera": coarse.camera,
        "frame_id": coarse.frame_id,
        "ts_us": coarse.ts_us,
        "origin_us": coarse.origin_us,
        "encoding": cfg.output_encoding,
    }
    if choice.partition is None:
        mask = (prob >= 0.5).astype(np.uint8)
        return m.OcclusionMask(mask=mask, fused=False, partition_age_ms=choice.age_ms, **common)
    labels = fit_labels(choice.partition.labels, prob.shape)
    classes, votes = soft_vote(binary_probs(prob), labels)
    return m.OcclusionMask(
        mask=classes.astype(np.uint8),
        votes=votes.astype(np.float32),
        fused=True,
        partition_frame_id=choice.partition.frame_id,
        partition_age_ms=choice.age_ms,
        partitioner=choice.partition.partitioner,
        **common,
    )


def run(rt: WorkerRuntime) -> int:
    """Fuse every new coarse mask as it arrives (latest-wins); publish ``mask.occlusion``."""
    sub, pub = rt.subscriber([m.TOPIC_COARSE, m.TOPIC_PARTITION]), rt.publisher()
    fault = injected_fault(rt.name)
    partition: m.Partition | None = None
    rt.tick("ready")
    while not rt.stop.is_set():
        latest = sub.recv_latest(100)
        rt.tick()
        partition = latest.get(m.TOPIC_PARTITION, partition)  # type: ignore[assignment]
        coarse = latest.get(m.TOPIC_COARSE)
        if coarse is None:
            continue
        rt.counters.frames_in += 1
        try:
            if fault == "raise":
                raise RuntimeError("injected fault")
            out = fuse(coarse, partition, rt.cfg.fuser)  # type: ignore[arg-type]
        except Exception as exc:  # per-frame: log with the frame id, count, go on
            rt.frame_error(coarse.frame_id, exc)
            continue
        pub.publish(out)
        rt.counters.out()
        rt.info.update(
            fused=out.fused,
            partition_age_ms=round(out.partition_age_ms, 1),
            dropped=sub.stats.stale,
            invalid=sub.stats.invalid,
        )
    return 0
