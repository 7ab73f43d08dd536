#!/usr/bin/env python3
"""Coarse vs fused on the synthetic test split: the six metrics and thin-instance recall per class.

    python tools/bench_fusion.py [--work /tmp/ko-fusion] [--json OUT]

Re-creates the demo model's data set (tools/make_synthetic_dataset.py: 160 scenes, seed 0,
640×360, as tools/train_demo_model.py does), takes the test split stored in the checkpoint
(recordings/demo_model.pt), partitions each image with superpixels (SEEDS, 300, as ``evaluate``)
and fuses with each rule of ``RULES``. Recall per class = occlusion pixels of that class's
instances predicted as occlusion (inside the ROI), pooled over the split.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def paper(prob: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The paper's rule: every segment takes its soft vote."""
    from kinect_occlusion.fuser.vote import binary_probs, soft_vote

    return soft_vote(binary_probs(prob), labels)[0].astype(bool)


def thin_aware(prob: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``vote.fuse_superpixels``: mixed segments keep the coarse pixels (what the fuser now does)."""
    from kinect_occlusion.fuser.vote import fuse_superpixels

    return fuse_superpixels(prob, labels).astype(bool)


RULES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {"paper": paper, "thin-aware": thin_aware}


def load_split(work: Path, checkpoint: Path) -> tuple[Any, list[Any]]:
    """(CoarsePredictor, test samples) of the demo model's data set (written once under ``work``)."""
    from kinect_occlusion.deeplab.model import load_checkpoint
    from kinect_occlusion.deeplab.predict import CoarsePredictor
    from kinect_occlusion.training.data import load_dataset
    from kinect_occlusion.training.evaluate import select_samples

    data = work / "data"
    if not (data / "annotations.json").exists():
        spec = importlib.util.spec_from_file_location("msd", ROOT / "tools" / "make_synthetic_dataset.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.write_dataset(data, 160, 0, 640, 360, False)
    loaded = load_checkpoint(checkpoint)
    samples = select_samples(load_dataset(data / "annotations.json").samples, "test", loaded.meta, None, None)
    return CoarsePredictor(loaded, device="cpu"), samples


class ClassRecall:
    """Pixel recall per instance class, pooled over images."""

    def __init__(self) -> None:
        self.hit: dict[str, int] = {}
        self.total: dict[str, int] = {}

    def update(self, pred: np.ndarray, instances: list[Any], valid: np.ndarray) -> None:
        for inst in instances:
            m = inst.rasterise(*pred.shape) & valid
            self.hit[inst.label] = self.hit.get(inst.label, 0) + int((pred & m).sum())
            self.total[inst.label] = self.total.get(inst.label, 0) + int(m.sum())

    def compute(self) -> dict[str, float]:
        return {k: self.hit[k] / self.total[k] for k in sorted(self.total) if self.total[k]}


def evaluate_rules(predictor: Any, samples: list[Any]) -> dict[str, Any]:
    """Metrics and per-class recall of the coarse mask and of every fusion rule."""
    from kinect_occlusion.sam.partitioner import SuperpixelPartitioner
    from kinect_occlusion.training.metrics import BinaryMetrics

    part = SuperpixelPartitioner("seeds", 300)
    names = ["coarse", *RULES]
    metrics = {n: BinaryMetrics() for n in names}
    recall = {n: ClassRecall() for n in names}
    for sample in samples:
        rgb, truth = sample.read_rgb(), sample.target()
        valid = np.ones(truth.shape, bool)  # the demo model's ROI mode is "full"
        prob = predictor.predict(rgb)
        labels = part(rgb, prob).labels
        preds = {"coarse": prob >= 0.5, **{n: rule(prob, labels) for n, rule in RULES.items()}}
        for n in names:
            metrics[n].update(prob if n == "coarse" else preds[n], truth, valid)
            recall[n].update(preds[n], sample.instances, valid)
    return {n: {"metrics": metrics[n].compute(), "recall": recall[n].compute()} for n in names}


def demo_frame(predictor: Any, recording: Path, index: int, out: Path | None) -> dict[str, Any]:
    """Frame ``index`` of the bundled sample (scene seed 0 at 5 fps): cable/tube pixels kept by each mask.

    The colour comes from the .mkv (MJPEG, as the demo sees it); the instances from re-rendering the
    same synthetic scene at the same time. Writes a panel (input | coarse | paper | thin-aware).
    """
    from kinect_occlusion.sam.partitioner import SuperpixelPartitioner
    from kinect_occlusion.sources.mkv import MkvSource
    from kinect_occlusion.sources.synthetic import render_scene

    source = MkvSource(recording, depth=False, max_frames=index + 1)
    source.open()
    try:
        rgb = [f.color for f in source.frames()][index]
    finally:
        source.close()
    scene = render_scene(0, 1280, 720, t=index / 5)
    prob = predictor.predict(rgb)
    labels = SuperpixelPartitioner("seeds", 300)(rgb, prob).labels
    masks = {"coarse": prob >= 0.5, **{n: rule(prob, labels) for n, rule in RULES.items()}}
    thin = [i for i in scene.instances if i.label == "pipe/cable"]
    row = {n: [int((mk & i.mask).sum()) for i in thin] for n, mk in masks.items()}
    row["instance_px"] = [int(i.mask.sum()) for i in thin]
    if out is not None:
        from kinect_occlusion.training import panels

        images = [rgb, *(panels.overlay(rgb, masks[n].astype(np.uint8)) for n in masks)]
        panels.save_rgb(out, panels.row(images, ["input", *masks], height=240))
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/ko-fusion"))
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "recordings" / "demo_model.pt")
    ap.add_argument("--recording", type=Path, default=ROOT / "recordings" / "sample.mkv")
    ap.add_argument("--frame", type=int, default=7, help="frame of the sample to check for tube pieces")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    import torch

    from kinect_occlusion.training.metrics import METRIC_NAMES

    torch.set_num_threads(2)
    predictor, samples = load_split(args.work, args.checkpoint)
    out = evaluate_rules(predictor, samples)
    print(f"{len(samples)} test images, superpixels SEEDS 300; metrics in %")
    print(f"{'':12s}" + "".join(f"{m:>10s}" for m in METRIC_NAMES))
    for n, r in out.items():
        print(f"{n:12s}" + "".join(f"{100 * r['metrics'][m]:10.2f}" for m in METRIC_NAMES))
    classes = sorted(out["coarse"]["recall"])
    print("pixel recall per class, %:")
    print(f"{'':12s}" + "".join(f"{c[:10]:>11s}" for c in classes))
    for n, r in out.items():
        print(f"{n:12s}" + "".join(f"{100 * r['recall'].get(c, float('nan')):11.1f}" for c in classes))
    demo = demo_frame(predictor, args.recording, args.frame, args.work / f"demo_frame{args.frame}.png")
    print(f"sample frame {args.frame}: pipe/cable pixels per instance {demo.pop('instance_px')}, found by")
    for n, px in demo.items():
        print(f"  {n:12s}{px}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        data = {"n_images": len(samples), "rules": out, "demo_frame": {"index": args.frame, **demo}}
        args.json.write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
