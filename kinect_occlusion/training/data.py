"""Training data: Label Studio / COCO import, ROI + letterbox preparation, splits, torch Dataset.

Import rules (both formats):

* Every region (polygon, rectangle, RLE mask) is one :class:`Instance`, its label kept for
  Copy-Paste; the training target is the union of all instances (binary occlusion mask).
* Label Studio: all non-cancelled annotations of a task are merged (their regions are all taken);
  a task with no such annotation is not annotated and is left out (counted, not warned). Polygons and
  rectangles (with rotation) are read; other region types (brush, keypoints, …) are reported as
  unsupported and skipped.
* COCO: polygons (list of flat coordinate lists) and RLE (compressed ``counts`` string or
  uncompressed list, decoded here in numpy). An image with no annotation is a negative sample.
* A bad region (fewer than 3 points, coordinates outside the image beyond 1 %, undecodable RLE)
  is skipped with one warning naming the JSON file and the task/annotation id; a missing or
  unreadable image skips its sample the same way. Nothing raises except an unreadable JSON file.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import cv2
import numpy as np

from ..errors import UserError
from ..geometry import Box, clip_roi, letterbox
from .rle import rle_decode as rle_decode
from .rle import rle_string_to_counts as rle_string_to_counts
from .splits import split_samples as split_samples

log = logging.getLogger(__name__)

MAX_RLE_SIDE = 16384  # larger than any camera image; bounds the memory one annotation may take
TOLERANCE = 0.01  # out-of-range coordinates allowed, as a fraction of the image size
_LS_HASH = re.compile(r"^[0-9a-f]{8}-(.+)$")


@dataclass
class Instance:
    """One annotated region: a label and polygons (pixel coordinates) or a full-image mask."""

    label: str
    polygons: list[np.ndarray] = field(default_factory=list)  # each (K, 2) float x, y
    mask: np.ndarray | None = None  # (H, W) bool

    def rasterise(self, height: int, width: int) -> np.ndarray:
        """The region as an (height, width) bool mask (polygons filled with cv2.fillPoly)."""
        if self.mask is not None:
            return self.mask.astype(bool, copy=False)
        canvas = np.zeros((height, width), np.uint8)
        pts = [np.round(p).astype(np.int32) for p in self.polygons]
        cv2.fillPoly(canvas, pts, 1)
        return canvas.astype(bool)


@dataclass
class Sample:
    """One image with its instances. ``ref`` names it in messages (e.g. ``task 12``)."""

    name: str
    image_path: Path
    height: int
    width: int
    instances: list[Instance]
    ref: str
    aliases: tuple[str, ...] = ()

    def read_rgb(self) -> np.ndarray:
        """The image as H×W×3 uint8 RGB."""
        return _read_rgb(self.image_path)

    def target(self) -> np.ndarray:
        """Union of the instances: (H, W) uint8 0/1."""
        out = np.zeros((self.height, self.width), bool)
        for inst in self.instances:
            out |= inst.rasterise(self.height, self.width)
        return out.astype(np.uint8)


@dataclass
class ImportReport:
    """What the import skipped: one line per bad item, counts of unsupported region types."""

    skipped: list[str] = field(default_factory=list)
    unsupported: Counter = field(default_factory=Counter)
    not_annotated: int = 0

    def skip(self, line: str) -> None:
        """Record one skipped item and log it as a warning."""
        self.skipped.append(line)
        log.warning(line)


@dataclass
class Dataset:
    """An imported data set: samples, what was skipped, where it came from."""

    samples: list[Sample]
    report: ImportReport
    source: Path
    format: str  # "labelstudio" | "coco"


def _read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"cannot decode image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def load_dataset(data: Path, images_dir: Path | None = None) -> Dataset:
    """Import a Label Studio JSON export (list of tasks) or a COCO file (dict), auto-detected.

    Raises:
        UserError: the file is missing, not JSON, or neither format.
    """
    data = Path(data)
    try:
        raw = json.loads(data.read_text())
    except (OSError, ValueError, RecursionError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) else " ".join(str(exc).split())[:200]
        raise UserError(f"cannot read annotations {data}: {detail or type(exc).__name__}") from None
    report = ImportReport()
    if isinstance(raw, list):
        samples, fmt = _load_labelstudio(raw, data, images_dir, report), "labelstudio"
    elif isinstance(raw, dict) and {"images", "annotations"} <= raw.keys():
        samples, fmt = _load_coco(raw, data, images_dir, report), "coco"
    else:
        raise UserError(
            f"{data}: neither a Label Studio export (list of tasks) nor COCO (images/annotations)"
        )
    for kind, n in sorted(report.unsupported.items()):
        log.warning("%s: %d '%s' regions skipped (unsupported; use polygons)", data.name, n, kind)
    log.info(
        "%s: %d images imported (%s), %d skipped, %d not annotated",
        data.name,
        len(samples),
        fmt,
        len(report.skipped),
        report.not_annotated,
    )
    return Dataset(samples, report, data, fmt)


# ---------------------------------------------------------------- image resolution


def _ref_to_path(ref: str) -> str:
    """The file path inside an image reference (URL, Label Studio local-files ?d=, plain path)."""
    parsed = urlparse(ref)
    if "d" in parse_qs(parsed.query):
        return unquote(parse_qs(parsed.query)["d"][0])
    return unquote(parsed.path if parsed.scheme or parsed.netloc else ref)


def resolve_image(ref: str, json_dir: Path, images_dir: Path | None) -> Path | None:
    """Find an image: relative to the JSON's folder, by name there (and ``images/``), by name under
    ``images_dir``, then without Label Studio's ``<8 hex>-`` upload prefix. None when not found."""
    rel = _ref_to_path(ref)
    base = Path(rel).name
    names = [base]
    if m := _LS_HASH.match(base):
        names.append(m.group(1))
    folders = [json_dir, json_dir / "images"] + ([Path(images_dir)] if images_dir else [])
    candidates = [Path(rel), json_dir / rel.lstrip("/")]
    candidates += [folder / name for name in names for folder in folders]
    return next((c for c in candidates if c.is_file()), None)


def _open_sample(
    ref: str, where: str, json_path: Path, images_dir: Path | None, report: ImportReport
) -> tuple[Path, int, int] | None:
    """Resolve and decode one image: (path, height, width), or None after recording why."""
    path = resolve_image(ref, json_path.parent, images_dir)
    if path is None:
        report.skip(
            f"{json_path.name}: {where}: image '{ref}' not found (looked next to the JSON, "
            f"in images/ and in --images)"
        )
        return None
    try:
        h, w = _read_rgb(path).shape[:2]
    except OSError:
        report.skip(f"{json_path.name}: {where}: image {path} is unreadable")
        return None
    return path, h, w


def _check_points(pts: np.ndarray, width: float, height: float) -> str | None:
    """Why a polygon (pixel coordinates) is bad, or None when fine."""
    if pts.ndim != 2 or pts.shape[0] < 3 or pts.shape[1] != 2:
        return f"polygon with {len(pts)} points (needs at least 3)"
    if not np.isfinite(pts).all():
        return "polygon with non-finite coordinates"
    tol_x, tol_y = TOLERANCE * width, TOLERANCE * height
    if (
        (pts[:, 0] < -tol_x).any()
        or (pts[:, 0] > width + tol_x).any()
        or (pts[:, 1] < -tol_y).any()
        or (pts[:, 1] > height + tol_y).any()
    ):
        return "polygon outside the image"
    return None


def _clip(pts: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.stack([np.clip(pts[:, 0], 0, width - 1), np.clip(pts[:, 1], 0, height - 1)], axis=1)


# ---------------------------------------------------------------- Label Studio


def _ls_polygon(value: dict, width: int, height: int) -> np.ndarray:
    """A Label Studio polygon or rectangle value as pixel points (percent → pixels)."""
    if "points" in value:
        pts = np.asarray(value["points"], np.float64).reshape(-1, 2)
        return pts * [width / 100.0, height / 100.0]
    # Rectangle: x, y, width, height in percent, rotated by `rotation` degrees about (x, y)
    x, y = value["x"] * width / 100.0, value["y"] * height / 100.0
    w, h = value["width"] * width / 100.0, value["height"] * height / 100.0
    a = np.deg2rad(float(value.get("rotation", 0.0)))
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return corners @ rot.T + [x, y]


def _dicts(value: object) -> list[dict]:
    """The mappings in ``value`` when it is a list (anything else in an export is ignored)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _annotations(task: dict) -> list[dict]:
    """A task's non-cancelled annotations (malformed entries ignored)."""
    return [a for a in _dicts(task.get("annotations")) if not a.get("was_cancelled")]


def _ls_instances(
    task: dict, where: str, json_path: Path, hw: tuple[int, int], report: ImportReport
) -> list[Instance] | None:
    """Merged regions of a task's non-cancelled annotations; None when none exists."""
    annotations = _annotations(task)
    if not annotations:
        return None
    out = []
    for ann in annotations:
        if not isinstance(ann.get("result") or [], list):
            report.skip(f"{json_path.name}: {where} annotation {ann.get('id', '?')}: result is not a list")
            continue
        for res in ann.get("result") or []:
            inst = _ls_region(res, f"{where} annotation {ann.get('id', '?')}", json_path, hw, report)
            if inst is not None:
                out.append(inst)
    return out


def _ls_region(
    res: object, where: str, json_path: Path, hw: tuple[int, int], report: ImportReport
) -> Instance | None:
    """One Label Studio result as an Instance, or None after recording why it was left out."""
    height, width = hw
    if not isinstance(res, dict):
        report.skip(f"{json_path.name}: {where}: region is not an object, skipped")
        return None
    kind = str(res.get("type", "?"))
    if kind not in ("polygonlabels", "rectanglelabels"):
        report.unsupported[kind] += 1
        return None
    rid = f"{where} region {res.get('id', '?')}"
    value = res.get("value")
    try:
        if not isinstance(value, dict):
            raise TypeError("value is not an object")
        pts = _ls_polygon(value, width, height)
    except (KeyError, TypeError, ValueError):
        report.skip(f"{json_path.name}: {rid}: malformed {kind} value")
        return None
    if why := _check_points(pts, width, height):
        report.skip(f"{json_path.name}: {rid}: {why}, skipped")
        return None
    labels = value.get(kind)
    label = labels[0] if isinstance(labels, list) and labels else "occlusion"
    return Instance(str(label), [_clip(pts, width, height)])


def _load_labelstudio(
    tasks: list, json_path: Path, images_dir: Path | None, report: ImportReport
) -> list[Sample]:
    samples = []
    for i, task in enumerate(tasks):
        if not isinstance(task, dict):
            report.skip(f"{json_path.name}: task #{i}: not a task object, skipped")
            continue
        where = f"task {task.get('id', f'#{i}')}"
        data = task.get("data")
        ref = data.get("image") if isinstance(data, dict) else None
        if not isinstance(ref, str):
            report.skip(f"{json_path.name}: {where}: no data.image, skipped")
            continue
        if not _annotations(task):
            report.not_annotated += 1
            continue
        opened = _open_sample(ref, where, json_path, images_dir, report)
        if opened is None:
            continue
        path, h, w = opened
        instances = _ls_instances(task, where, json_path, (h, w), report) or []
        samples.append(Sample(path.name, path, h, w, instances, where, (Path(_ref_to_path(ref)).name,)))
    return samples


# ---------------------------------------------------------------- COCO


def _coco_instance(ann: dict, label: str, hw: tuple[int, int], scale: tuple[float, float]) -> Instance:
    """One COCO annotation as an Instance; ValueError says why it is bad."""
    height, width = hw
    seg = ann.get("segmentation")
    if isinstance(seg, dict):
        rle_h, rle_w = (int(v) for v in seg["size"])
        if not (0 < rle_h <= MAX_RLE_SIDE and 0 < rle_w <= MAX_RLE_SIDE):
            raise ValueError(f"RLE size {rle_h}x{rle_w} out of range")
        mask = rle_decode(seg["counts"], rle_h, rle_w)
        if (rle_h, rle_w) != (height, width):
            mask = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
        return Instance(label, mask=mask)
    if not isinstance(seg, list) or not seg:
        raise ValueError("no segmentation")
    polygons = []
    for flat in seg:
        pts = np.asarray(flat, np.float64).reshape(-1, 2) * scale
        if why := _check_points(pts, width, height):
            raise ValueError(why)
        polygons.append(_clip(pts, width, height))
    return Instance(label, polygons)


def _coco_categories(coco: dict) -> dict:
    """Category id → name (entries without a usable id are ignored)."""
    cats = _dicts(coco.get("categories"))
    return {c["id"]: str(c.get("name", c["id"])) for c in cats if isinstance(c.get("id"), int | str)}


def _coco_by_image(coco: dict) -> dict:
    """Annotations grouped by image id (entries without a usable image_id are ignored)."""
    by_image: dict = {}
    for ann in _dicts(coco["annotations"]):
        if isinstance(ann.get("image_id"), int | str):
            by_image.setdefault(ann["image_id"], []).append(ann)
    return by_image


def _coco_scale(img: dict, h: int, w: int) -> tuple[float, float]:
    """Annotations are in the coordinates of the declared size; rescale if the file differs."""
    declared_w, declared_h = img.get("width"), img.get("height")
    sx = w / float(declared_w) if isinstance(declared_w, int | float) and declared_w > 0 else 1.0
    sy = h / float(declared_h) if isinstance(declared_h, int | float) and declared_h > 0 else 1.0
    return sx, sy


def _load_coco(coco: dict, json_path: Path, images_dir: Path | None, report: ImportReport) -> list[Sample]:
    if not isinstance(coco["images"], list) or not isinstance(coco["annotations"], list):
        raise UserError(f"{json_path}: COCO 'images' and 'annotations' must be lists")
    names, by_image = _coco_categories(coco), _coco_by_image(coco)
    samples = []
    for i, img in enumerate(coco["images"]):
        if not isinstance(img, dict) or not isinstance(img.get("file_name"), str):
            report.skip(f"{json_path.name}: image #{i}: not an image object with a file_name, skipped")
            continue
        where = f"image {img.get('id')}"
        opened = _open_sample(img["file_name"], where, json_path, images_dir, report)
        if opened is None:
            continue
        path, h, w = opened
        scale = _coco_scale(img, h, w)
        instances = []
        image_id = img.get("id")
        for ann in by_image.get(image_id, []) if isinstance(image_id, int | str) else []:
            try:
                label = names.get(ann.get("category_id"), "occlusion")
                instances.append(_coco_instance(ann, label, (h, w), scale))
            except (KeyError, TypeError, ValueError) as exc:
                report.skip(f"{json_path.name}: {where} annotation {ann.get('id', '?')}: {exc}, skipped")
        samples.append(Sample(path.name, path, h, w, instances, where, (Path(img["file_name"]).name,)))
    return samples


# ---------------------------------------------------------------- ROI + letterbox


@dataclass
class Prepared:
    """A sample cropped to its ROI and letterboxed to ``size``×``size``.

    Instances are kept as tight crops (``boxes[i]`` = x0, y0 of ``masks[i]``) to save memory.
    ``valid`` is False on the letterbox padding, where the training target is 255 (ignored).
    """

    name: str
    image: np.ndarray  # (S, S, 3) uint8
    valid: np.ndarray  # (S, S) bool
    masks: list[np.ndarray]  # (h, w) bool crops
    boxes: list[tuple[int, int]]  # (x0, y0) per crop
    labels: list[str]
    roi: tuple[int, int, int, int]

    def target(self) -> np.ndarray:
        """(S, S) uint8: 1 occlusion, 0 background, 255 padding."""
        out = np.where(self.valid, 0, 255).astype(np.uint8)
        for m, (x0, y0) in zip(self.masks, self.boxes, strict=True):
            region = out[y0 : y0 + m.shape[0], x0 : x0 + m.shape[1]]
            region[m] = 1
        return out

    def donors(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(image crop, mask crop) per instance, for Copy-Paste."""
        return [
            (self.image[y0 : y0 + m.shape[0], x0 : x0 + m.shape[1]].copy(), m)
            for m, (x0, y0) in zip(self.masks, self.boxes, strict=True)
        ]


def roi_box(sample: Sample, roi: str | Box, margin: float = 0.1) -> Box:
    """The crop (x, y, w, h): ``"full"``, ``"annotations"`` (union bbox + ``margin`` of its size;
    full image when there is none) or a fixed box (clipped to the image; UserError when outside it)."""
    h, w = sample.height, sample.width
    if roi == "full":
        return 0, 0, w, h
    if roi == "annotations":
        union = sample.target()
        ys, xs = np.nonzero(union)
        if not len(xs):
            return 0, 0, w, h
        mx, my = margin * (xs.max() - xs.min() + 1), margin * (ys.max() - ys.min() + 1)
        x0, y0 = max(0, int(xs.min() - mx)), max(0, int(ys.min() - my))
        x1, y1 = min(w, int(np.ceil(xs.max() + 1 + mx))), min(h, int(np.ceil(ys.max() + 1 + my)))
        return x0, y0, x1 - x0, y1 - y0
    if isinstance(roi, str):
        raise UserError(f"unknown ROI mode '{roi}' (full, annotations, or x,y,w,h)")
    try:
        return clip_roi(roi, w, h)
    except ValueError as exc:
        raise UserError(f"--roi: {exc} of image {sample.name}") from None


def prepare_sample(
    sample: Sample, size: int, roi: str | tuple[int, int, int, int] = "full", margin: float = 0.1
) -> Prepared:
    """Read, crop to the ROI and letterbox one sample like ``deeplab.predict.letterbox`` (masks: nearest)."""
    x, y, w, h = roi_box(sample, roi, margin)
    rgb = sample.read_rgb()[y : y + h, x : x + w]
    # The same letterbox as inference (top-left, zero padding)
    image, t = letterbox(np.ascontiguousarray(rgb), size)
    nh, nw = t.new_h, t.new_w
    valid = np.zeros((size, size), bool)
    valid[:nh, :nw] = True
    masks, boxes, labels = [], [], []
    for inst in sample.instances:
        full = inst.rasterise(sample.height, sample.width)[y : y + h, x : x + w].astype(np.uint8)
        small = cv2.resize(full, (nw, nh), interpolation=cv2.INTER_NEAREST) > 0
        ys, xs = np.nonzero(small)
        if not len(xs):
            continue
        x0, y0 = int(xs.min()), int(ys.min())
        masks.append(small[y0 : ys.max() + 1, x0 : xs.max() + 1].copy())
        boxes.append((x0, y0))
        labels.append(inst.label)
    return Prepared(sample.name, image, valid, masks, boxes, labels, (x, y, w, h))
