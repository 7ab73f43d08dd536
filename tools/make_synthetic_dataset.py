#!/usr/bin/env python3
"""Write a labelled synthetic data set: PNG images + a Label Studio JSON export (+ optional COCO).

    python tools/make_synthetic_dataset.py --out DIR [--n 60] [--seed 0] [--width 640 --height 480] [--coco]

Layout of DIR:
    images/scene_0000.png …           the RGB images
    annotations.json                   Label Studio "JSON" export: one task per image, one annotation per
                                       task, one ``polygonlabels`` result per occlusion instance, points in
                                       PERCENT of the image size (as Label Studio writes them)
    annotations_coco.json              with --coco: COCO instances, polygon segmentation in pixels

As in a real Label Studio export, ``data.image`` is the upload path with Label Studio's random prefix,
``/data/upload/1/<8 hex>-scene_0000.png``, while the file on disk is ``images/scene_0000.png``: an
importer must find the image by the basename after the first ``-`` (here the prefix is a hash of seed and
index, so the output is deterministic). Image ``i`` shows ``render_scene(scene_seed(seed, i))`` at t=0.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kinect_occlusion.sources.synthetic import LABELS, Instance, Scene, render_scene  # noqa: E402

STAMP = "2024-01-01T00:00:00.000000Z"  # fixed, so that exports are byte-for-byte reproducible


def scene_seed(seed: int, index: int) -> int:
    """The scene seed of image ``index`` in a data set made with ``seed``."""
    return (seed * 1_000_003 + index) % 2**31


def _digest(*parts: object) -> str:
    return hashlib.sha1("/".join(str(p) for p in parts).encode()).hexdigest()


def ls_result(inst: Instance, width: int, height: int, rid: str) -> dict[str, Any]:
    """One Label Studio ``polygonlabels`` result; points in percent of the image size."""
    pts = inst.polygon.astype(np.float64) / (width, height) * 100.0
    return {
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "value": {"points": np.round(pts, 4).tolist(), "closed": True, "polygonlabels": [inst.label]},
        "id": rid,
        "from_name": "label",
        "to_name": "image",
        "type": "polygonlabels",
        "origin": "manual",
    }


def ls_task(index: int, upload: str, scene: Scene, seed: int) -> dict[str, Any]:
    """One Label Studio task with its single completed annotation."""
    h, w = scene.truth.shape
    results = [ls_result(inst, w, h, _digest(seed, index, k)[:10]) for k, inst in enumerate(scene.instances)]
    return {
        "id": index + 1,
        "annotations": [
            {
                "id": index + 1,
                "completed_by": 1,
                "result": results,
                "was_cancelled": False,
                "ground_truth": False,
                "created_at": STAMP,
                "updated_at": STAMP,
                "lead_time": 0.0,
                "prediction": {},
                "result_count": 0,
                "task": index + 1,
                "project": 1,
            }
        ],
        "file_upload": upload.rsplit("/", 1)[-1],
        "drafts": [],
        "predictions": [],
        "data": {"image": upload},
        "meta": {},
        "created_at": STAMP,
        "updated_at": STAMP,
        "inner_id": index + 1,
        "total_annotations": 1,
        "cancelled_annotations": 0,
        "total_predictions": 0,
        "project": 1,
    }


def coco_annotations(image_id: int, scene: Scene, first_id: int) -> list[dict[str, Any]]:
    """COCO instance annotations of one image (polygon segmentation in pixels, amodal masks)."""
    out = []
    for k, inst in enumerate(scene.instances):
        x0, y0 = inst.polygon.min(axis=0)
        x1, y1 = inst.polygon.max(axis=0)
        out.append(
            {
                "id": first_id + k,
                "image_id": image_id,
                "category_id": LABELS.index(inst.label) + 1,
                "segmentation": [np.round(inst.polygon.reshape(-1).astype(np.float64), 2).tolist()],
                "area": int(inst.mask.sum()),
                "bbox": [float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)],
                "iscrowd": 0,
            }
        )
    return out


def write_dataset(out: Path, n: int, seed: int, width: int, height: int, coco: bool) -> dict[str, int]:
    """Render ``n`` scenes into ``out``; returns counts (images, instances)."""
    import cv2
    from tqdm import tqdm

    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    tasks: list[dict[str, Any]] = []
    coco_images: list[dict[str, Any]] = []
    coco_anns: list[dict[str, Any]] = []
    for i in tqdm(range(n), desc="scenes", unit="img"):
        # Render and save the image
        scene = render_scene(scene_seed(seed, i), width, height)
        name = f"scene_{i:04d}.png"
        if not cv2.imwrite(str(images_dir / name), cv2.cvtColor(scene.rgb, cv2.COLOR_RGB2BGR)):
            raise OSError(f"cannot write {images_dir / name}")
        # Label Studio task (upload path with a random-looking prefix) and COCO records
        tasks.append(ls_task(i, f"/data/upload/1/{_digest(seed, i)[:8]}-{name}", scene, seed))
        coco_images.append({"id": i + 1, "file_name": name, "width": width, "height": height})
        coco_anns += coco_annotations(i + 1, scene, len(coco_anns) + 1)
    (out / "annotations.json").write_text(json.dumps(tasks))
    if coco:
        categories = [
            {"id": k + 1, "name": label, "supercategory": "occlusion"} for k, label in enumerate(LABELS)
        ]
        doc = {
            "info": {"description": f"kinect-occlusion synthetic scenes, seed {seed}"},
            "images": coco_images,
            "annotations": coco_anns,
            "categories": categories,
        }
        (out / "annotations_coco.json").write_text(json.dumps(doc))
    return {"images": n, "instances": len(coco_anns)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")
    p.add_argument("--n", type=int, default=60, help="number of images (default 60)")
    p.add_argument("--seed", type=int, default=0, help="data set seed (default 0)")
    p.add_argument("--width", type=int, default=640, help="image width (default 640)")
    p.add_argument("--height", type=int, default=480, help="image height (default 480)")
    p.add_argument("--coco", action="store_true", help="also write annotations_coco.json")
    args = p.parse_args(argv)
    if args.n < 1:
        p.error("--n must be at least 1")
    if args.width < 64 or args.height < 64:
        p.error("--width and --height must be at least 64")
    if args.seed < 0:
        p.error("--seed must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    counts = write_dataset(args.out, args.n, args.seed, args.width, args.height, args.coco)
    print(f"wrote {counts['images']} images, {counts['instances']} instances to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
