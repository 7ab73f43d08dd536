"""A device-resident automatic mask generator with exactly ``SamAutomaticMaskGenerator``'s output.

Same prompts, same decoder calls, same filters, same NMS calls (on the same devices) and the same
small-region clean-up as segment-anything's reference generator, minus what made it slow once masks
survive: no RLE encode/decode, no ``MaskData.cat`` deep copies, no upsampling of masks that the
predicted-IoU filter already dropped, and labels painted from the kept masks on the device.

- The mask decoder gets the image embedding once for all prompts of a batch (``sam/decoder.py``)
  instead of a copy per prompt: the same outputs bit for bit on the CPU, 20–30 % less decoder
  CPU time for 64 vit_b prompts on the 2-core development host.
- Predicted-IoU filtering comes before upsampling (the IoU head does not depend on it); the
  upsampled logits of a survivor are bit-identical to the reference's (bilinear interpolation works
  channel by channel), and the padding rows the reference upsamples and crops away are skipped.
- Stability filtering, thresholding, boxes and the crop-edge filter run on the model's device;
  survivors stay there as boolean masks.
- ``min_mask_region_area``: connected components (OpenCV, as the reference) on each mask's bounding
  box plus a one-pixel margin instead of the whole image; a background component that reaches the
  margin belongs to the outside region, and when it is too small to decide from the crop alone the
  whole image is labelled, so decisions are the reference's. The re-NMS runs on the CPU, as there.

Equality is bit for bit with the reference's ``points_per_batch``; tested on the CPU, where
``auto`` is the reference's 64 (batches of 8 or fewer change the decoder's last bits). On CUDA
another batch size (``auto``) may run other GEMM kernels and change the decoder's last bits (so
may the shared image side's projections, which run on 1/B of the rows), so a logit or score
sitting exactly on a threshold could flip; ``tools/bench_amg.py`` reports whether the label
maps are identical.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops.boxes import batched_nms, box_area

from .decoder import decode_masks, decode_tokens, shares_image

MIB = 1 << 20


@dataclass
class KeptMasks:
    """Masks that survived every filter, in the reference generator's output order."""

    masks: torch.Tensor  # (n, H, W) bool, on the model's device
    iou_preds: torch.Tensor  # (n,) float32
    stability: torch.Tensor  # (n,) float32
    boxes: torch.Tensor  # (n, 4) int64 XYXY in image coordinates
    points: torch.Tensor  # (n, 2) float64 prompt in image coordinates
    crop_boxes: torch.Tensor  # (n, 4) int64 XYXY

    def filter(self, keep: torch.Tensor) -> KeptMasks:
        """The rows ``keep`` (bool mask or index tensor, in that order)."""

        def take(t: torch.Tensor) -> torch.Tensor:
            return t[keep.to(t.device)]

        return KeptMasks(*(take(t) for t in self._fields()))

    def _fields(self) -> tuple[torch.Tensor, ...]:
        return (self.masks, self.iou_preds, self.stability, self.boxes, self.points, self.crop_boxes)

    @staticmethod
    def cat(parts: list[KeptMasks]) -> KeptMasks:
        """Rows of all ``parts`` in order (parts must be non-empty)."""
        fields = zip(*(p._fields() for p in parts), strict=True)
        return KeptMasks(*(torch.cat(list(f)) for f in fields))

    def __len__(self) -> int:
        return int(self.iou_preds.shape[0])


def auto_points_per_batch(device: torch.device, image_hw: tuple[int, int], n_points: int) -> int:
    """Prompts per decoder batch: on CUDA as many as fit in half the free memory (at least 16).

    Per prompt: the decoder's activations (~24 MiB for SAM's 256-wide decoder) and, for each of the
    three masks, the 1024² intermediate and the image-size logits of the upsampling, in float32.
    Elsewhere the reference's 64: a CPU gains nothing from bigger batches, smaller ones cost more
    per prompt, and batches of 8 or fewer change the decoder's last bits (docs/BENCHMARKS.md).
    """
    if device.type != "cuda":
        return int(min(64, max(1, n_points)))
    h, w = image_hw
    per_prompt = 24 * MIB + 3 * 4 * (1024 * 1024 + h * w)
    free = torch.cuda.mem_get_info(device)[0]
    batch = max(16, int(free // 2 // per_prompt))
    return int(min(batch, max(1, n_points)))


def upsample_logits(
    low_res: torch.Tensor, img_size: int, input_size: tuple[int, ...], original_size: tuple[int, ...]
) -> torch.Tensor:
    """``Sam.postprocess_masks`` of (N, 1, h, w) logits, bit for bit, without the padding's rows.

    The reference upsamples to ``img_size``² and then crops to ``input_size``; upsampling only the
    low-resolution rows/columns that the crop reads (plus a margin, so no edge clamp differs) at the
    same scale gives the same values for a fraction of the work (0.56 of the rows for 16:9).
    """
    lh, lw = low_res.shape[-2:]
    fh, fw = img_size // lh, img_size // lw
    rows, cols = min(lh, -(-input_size[0] // fh) + 2), min(lw, -(-input_size[1] // fw) + 2)
    masks = F.interpolate(
        low_res[..., :rows, :cols], (rows * fh, cols * fw), mode="bilinear", align_corners=False
    )
    masks = masks[..., : input_size[0], : input_size[1]]
    return F.interpolate(masks, original_size, mode="bilinear", align_corners=False)


def margin_labels(regions: np.ndarray, margins: tuple[bool, bool, bool, bool]) -> np.ndarray:
    """Labels of ``regions`` on the crop's margin strips (left, top, right, bottom) that are padded."""
    left, top, right, bottom = margins
    strips = [regions[:, 0]] if left else []
    strips += [regions[0, :]] if top else []
    strips += [regions[:, -1]] if right else []
    strips += [regions[-1, :]] if bottom else []
    return np.unique(np.concatenate(strips)) if strips else np.zeros(0, regions.dtype)


def fill_small_holes(
    crop: np.ndarray, min_area: int, margins: tuple[bool, bool, bool, bool]
) -> tuple[np.ndarray, bool] | None:
    """``remove_small_regions(mode="holes")`` on a mask's bounding box with a one-pixel margin.

    Background components reaching a padded margin continue outside the crop; when one of them is
    smaller than ``min_area`` inside the crop the crop alone cannot decide: None (label the image).
    """
    n, regions, stats, _ = cv2.connectedComponentsWithStats((~crop).astype(np.uint8), connectivity=8)
    sizes = stats[:, -1]
    outer = margin_labels(regions, margins)
    outer = outer[outer > 0]
    if np.any(sizes[outer] < min_area):
        return None
    small = [i for i in range(1, n) if sizes[i] < min_area]
    if not small:
        return crop, False
    return np.isin(regions, [0, *small]), True


def clean_mask(
    mask: torch.Tensor, box: np.ndarray, min_area: int
) -> tuple[np.ndarray, tuple[int, int, int, int], bool] | None:
    """Small holes filled, then small islands removed, on the box crop (+1 px) of one mask.

    Returns the cleaned crop, its (x0, y0, x1, y1) slice in the image and whether it changed, or
    None when the crop cannot decide (``fill_small_holes``).
    """
    from segment_anything.utils.amg import remove_small_regions

    h, w = mask.shape
    bx0, by0, bx1, by1 = (int(v) for v in box)
    x0, y0, x1, y1 = max(bx0 - 1, 0), max(by0 - 1, 0), min(bx1 + 2, w), min(by1 + 2, h)
    crop = mask[y0:y1, x0:x1].cpu().numpy()
    margins = (x0 < bx0, y0 < by0, x1 > bx1 + 1, y1 > by1 + 1)
    holes = fill_small_holes(crop, min_area, margins)
    if holes is None:
        return None
    # Islands lie inside the box: the crop sees every one of them whole
    crop, changed_islands = remove_small_regions(holes[0], min_area, mode="islands")
    return crop, (x0, y0, x1, y1), holes[1] or changed_islands


def crop_box_of(crop: np.ndarray, x0: int, y0: int) -> list[int]:
    """``batched_mask_to_box`` of a mask that is zero outside this crop at (x0, y0)."""
    rows, cols = np.flatnonzero(crop.any(1)), np.flatnonzero(crop.any(0))
    if len(rows) == 0:
        return [0, 0, 0, 0]
    return [x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]), y0 + int(rows[-1])]


def clean_or_full(mask: torch.Tensor, box: np.ndarray, min_area: int) -> tuple[np.ndarray, int, int, bool]:
    """``clean_mask``, or the reference's clean-up of the whole image when the crop cannot decide.

    Returns the cleaned crop, its top-left (x0, y0) and whether the mask changed.
    """
    from segment_anything.utils.amg import remove_small_regions

    result = clean_mask(mask, box, min_area)
    if result is not None:
        crop, (x0, y0, _, _), changed = result
        return crop, x0, y0, changed
    full = mask.cpu().numpy()
    full, changed_holes = remove_small_regions(full, min_area, mode="holes")
    full, changed_islands = remove_small_regions(full, min_area, mode="islands")
    return full, 0, 0, changed_holes or changed_islands


def remove_small_regions_kept(data: KeptMasks, min_area: int, nms_thresh: float) -> KeptMasks:
    """The reference's ``postprocess_small_regions`` without RLEs: same masks, boxes, NMS and order."""
    if len(data) == 0:
        return data
    boxes_np = data.boxes.cpu().numpy()
    cleaned = [clean_or_full(data.masks[i], boxes_np[i], min_area) for i in range(len(data))]
    # Recalculate boxes (from the crops, which hold the whole mask) and remove new duplicates
    boxes = torch.tensor([crop_box_of(c, x0, y0) for c, x0, y0, _ in cleaned], dtype=torch.int64)
    # Unchanged masks score 1 so NMS prefers them (as the reference); the NMS runs on the CPU there too
    scores = [float(not changed) for *_, changed in cleaned]
    keep = batched_nms(
        boxes.reshape(-1, 4).float(),
        torch.as_tensor(scores),
        torch.zeros(len(boxes)),
        iou_threshold=nms_thresh,
    )
    for i in keep.tolist():
        crop, x0, y0, changed = cleaned[i]
        if changed:
            data.masks[i].zero_()
            data.masks[i, y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]] = torch.from_numpy(crop).to(
                data.masks.device
            )
            data.boxes[i] = boxes[i].to(data.boxes.device)
    return data.filter(keep)


def paint_labels(
    masks: torch.Tensor, iou_preds: torch.Tensor, stability: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """``masks_to_labels`` on the device: largest area painted first, compact labels, scores.

    Returns H×W int32 labels (0 = uncovered) and (n, 2) float32 [predicted_iou, stability] per label.
    """
    n, h, w = masks.shape
    if n == 0:
        return np.zeros((h, w), np.int32), np.zeros((0, 2), np.float32)
    areas = masks.sum((1, 2), dtype=torch.int64)
    order = torch.sort(-areas, stable=True).indices
    painted = torch.zeros((h, w), dtype=torch.int32, device=masks.device)
    for start in range(0, n, 64):
        chunk = order[start : start + 64]
        ks = torch.arange(start + 1, start + 1 + len(chunk), dtype=torch.int32, device=masks.device)
        # Later (smaller) masks carry larger numbers: the maximum is the last painted
        painted = torch.maximum(painted, (masks[chunk] * ks[:, None, None]).amax(0))
    # Drop fully overpainted segments and renumber compactly, keeping paint order
    visible = torch.bincount(painted.flatten().long(), minlength=n + 1) > 0
    visible[0] = True
    lut = (torch.cumsum(visible, 0) - 1).to(torch.int32)
    labels = lut[painted.long()]
    kept = order[visible[1:].nonzero()[:, 0]]
    scores = torch.stack([iou_preds[kept], stability[kept]], 1).float()
    return labels.cpu().numpy(), scores.cpu().numpy()


class FastMaskGenerator:
    """``SamAutomaticMaskGenerator`` with the same arguments and exactly its masks, kept on the device.

    ``points_per_batch="auto"`` sends as many prompts per decoder call as memory allows
    (``auto_points_per_batch``). ``output_mode`` is accepted for signature compatibility; masks come
    back as boolean tensors (``generate_kept``), records with binary masks (``generate``) or a
    label image (``labels``). ``decoder_arithmetic="factored"`` runs the decoder's transformer
    with fewer operations (``sam/factored.py``): not the reference's masks bit for bit.
    """

    def __init__(
        self,
        model: Any,
        points_per_batch: int | str = "auto",
        decoder_arithmetic: str = "exact",
        **kwargs: Any,
    ) -> None:
        from segment_anything import SamAutomaticMaskGenerator

        # The reference validates the arguments and builds the point grids
        ref = SamAutomaticMaskGenerator(model, **{**kwargs, "points_per_batch": 64})
        self.predictor, self.point_grids = ref.predictor, ref.point_grids
        if points_per_batch != "auto" and (not isinstance(points_per_batch, int) or points_per_batch < 1):
            raise ValueError(f"points_per_batch must be a positive int or 'auto', not {points_per_batch!r}")
        self.points_per_batch = points_per_batch
        if decoder_arithmetic not in ("exact", "factored"):
            raise ValueError(f"decoder_arithmetic must be 'exact' or 'factored', not {decoder_arithmetic!r}")
        self.decoder_arithmetic = decoder_arithmetic
        # Checked before each crop and decoder batch; True → errors.Cancelled (set by the partitioner)
        self.should_stop: Any = None
        self.pred_iou_thresh: float = ref.pred_iou_thresh
        self.stability_score_thresh: float = ref.stability_score_thresh
        self.stability_score_offset: float = ref.stability_score_offset
        self.box_nms_thresh: float = ref.box_nms_thresh
        self.crop_n_layers: int = ref.crop_n_layers
        self.crop_nms_thresh: float = ref.crop_nms_thresh
        self.crop_overlap_ratio: float = ref.crop_overlap_ratio
        self.min_mask_region_area: int = ref.min_mask_region_area
        self.output_mode: str = ref.output_mode

    def labels(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The label image and scores of ``masks_to_labels(reference.generate(image))``."""
        kept = self.generate_kept(image)
        return paint_labels(kept.masks, kept.iou_preds, kept.stability)

    def generate(self, image: np.ndarray) -> list[dict[str, Any]]:
        """Records like the reference's (binary masks), for comparison; slow for many masks."""
        from segment_anything.utils.amg import box_xyxy_to_xywh

        kept = self.generate_kept(image)
        masks = kept.masks.cpu().numpy()
        return [
            {
                "segmentation": masks[i],
                "area": int(masks[i].sum()),
                "bbox": box_xyxy_to_xywh(kept.boxes[i].cpu()).tolist(),
                "predicted_iou": kept.iou_preds[i].item(),
                "point_coords": [kept.points[i].tolist()],
                "stability_score": kept.stability[i].item(),
                "crop_box": box_xyxy_to_xywh(kept.crop_boxes[i]).tolist(),
            }
            for i in range(len(kept))
        ]

    @torch.inference_mode()
    def generate_kept(self, image: np.ndarray) -> KeptMasks:
        """Every mask the reference would return for ``image`` (H×W×3 uint8), in its order."""
        from segment_anything.utils.amg import generate_crop_boxes

        orig_size = image.shape[:2]
        crop_boxes, layer_idxs = generate_crop_boxes(orig_size, self.crop_n_layers, self.crop_overlap_ratio)
        parts = [
            self._process_crop(image, box, layer, orig_size)
            for box, layer in zip(crop_boxes, layer_idxs, strict=True)
        ]
        found = [p for p in parts if p is not None]
        if not found:
            return self._empty(orig_size)
        data = KeptMasks.cat(found)
        # Remove duplicate masks between crops, preferring masks from smaller crops
        if len(crop_boxes) > 1:
            scores = (1 / box_area(data.crop_boxes)).to(data.boxes.device)
            keep = batched_nms(
                data.boxes.float(), scores, torch.zeros(len(data.boxes)), iou_threshold=self.crop_nms_thresh
            )
            data = data.filter(keep)
        if self.min_mask_region_area > 0:
            nms = max(self.box_nms_thresh, self.crop_nms_thresh)
            data = remove_small_regions_kept(data, self.min_mask_region_area, nms)
        return data

    def _check_stop(self) -> None:
        """Raise ``errors.Cancelled`` when ``should_stop()`` (set by the caller) says so."""
        if self.should_stop is not None and self.should_stop():
            from ..errors import Cancelled

            self.predictor.reset_image()
            raise Cancelled("partition cancelled")

    def _empty(self, orig_size: tuple[int, ...]) -> KeptMasks:
        dev = self.predictor.device
        return KeptMasks(
            masks=torch.zeros((0, *orig_size), dtype=torch.bool, device=dev),
            iou_preds=torch.zeros(0, device=dev),
            stability=torch.zeros(0, device=dev),
            boxes=torch.zeros((0, 4), dtype=torch.int64, device=dev),
            points=torch.zeros((0, 2), dtype=torch.float64),
            crop_boxes=torch.zeros((0, 4), dtype=torch.int64),
        )

    def _process_crop(
        self, image: np.ndarray, crop_box: list[int], layer: int, orig_size: tuple[int, ...]
    ) -> KeptMasks | None:
        """Masks of one crop after the per-crop NMS, in image coordinates; None when none survive."""
        from segment_anything.utils.amg import uncrop_boxes_xyxy, uncrop_masks, uncrop_points

        x0, y0, x1, y1 = crop_box
        cropped = image[y0:y1, x0:x1, :]
        im_size = cropped.shape[:2]
        self._check_stop()
        self.predictor.set_image(cropped)
        points_for_image = self.point_grids[layer] * np.array(im_size)[None, ::-1]
        batch = self.points_per_batch
        if batch == "auto":
            batch = auto_points_per_batch(self.predictor.device, im_size, len(points_for_image))
        parts = []
        for start in range(0, len(points_for_image), int(batch)):
            self._check_stop()
            part = self._process_batch(
                points_for_image[start : start + int(batch)], im_size, crop_box, orig_size
            )
            if part is not None:
                parts.append(part)
        self.predictor.reset_image()
        if not parts:
            return None
        data = KeptMasks.cat(parts)
        # Remove duplicates within this crop
        keep = batched_nms(
            data.boxes.float(),
            data.iou_preds,
            torch.zeros(len(data.boxes)),
            iou_threshold=self.box_nms_thresh,
        )
        data = data.filter(keep)
        # Return to the original image frame
        data.boxes = uncrop_boxes_xyxy(data.boxes, crop_box)
        data.points = uncrop_points(data.points, crop_box)
        data.crop_boxes = torch.tensor([crop_box for _ in range(len(data))]).reshape(-1, 4)
        data.masks = uncrop_masks(data.masks, crop_box, orig_size[0], orig_size[1])
        return data

    def _decode(
        self, points: np.ndarray, im_size: tuple[int, ...]
    ) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """Predicted IoUs (3B,) of B point prompts, and ``logits(idx)``: the (n, 256, 256) low-resolution
        logits of the masks ``idx`` (indices into the 3B), computed only for the prompts they need."""
        pred, model = self.predictor, self.predictor.model
        in_points = torch.as_tensor(pred.transform.apply_coords(points, im_size), device=pred.device)
        in_labels = torch.ones(in_points.shape[0], dtype=torch.int, device=in_points.device)
        sparse, dense = model.prompt_encoder(
            points=(in_points[:, None, :], in_labels[:, None]), boxes=None, masks=None
        )
        image_pe = model.prompt_encoder.get_dense_pe()
        if shares_image(model.mask_decoder, dense):
            # The same outputs without a copy of the image embedding per prompt (sam/decoder.py),
            # and no upscaling of prompts whose masks the predicted-IoU filter drops
            decoded = decode_tokens(
                model.mask_decoder, pred.features, image_pe, sparse, dense, self.decoder_arithmetic
            )

            def logits(idx: torch.Tensor) -> torch.Tensor:
                prompts, slot = torch.unique(idx // 3, return_inverse=True)
                every = len(prompts) == len(decoded.src)  # all B: no gathered copy of the image side
                masks = decode_masks(model.mask_decoder, decoded, None if every else prompts)
                return masks[slot, idx % 3]

            return decoded.iou_preds.flatten(0, 1), logits
        low_res, iou_preds = model.mask_decoder(
            image_embeddings=pred.features,
            image_pe=image_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
        )
        low_res = low_res.flatten(0, 1)
        return iou_preds.flatten(0, 1), lambda idx: low_res[idx]

    def _process_batch(
        self, points: np.ndarray, im_size: tuple[int, ...], crop_box: list[int], orig_size: tuple[int, ...]
    ) -> KeptMasks | None:
        """One decoder call and the reference's per-batch filters; None when nothing survives."""
        from segment_anything.utils.amg import (
            batched_mask_to_box,
            calculate_stability_score,
            is_box_near_crop_edge,
        )

        pred, model = self.predictor, self.predictor.model
        iou_preds, low_res_of = self._decode(points, im_size)
        idx = torch.arange(len(iou_preds), device=iou_preds.device)
        # Filter by predicted IoU before upsampling: the IoU head does not look at the upsampled masks
        if self.pred_iou_thresh > 0.0:
            idx = idx[iou_preds > self.pred_iou_thresh]
        if len(idx) == 0:
            return None
        logits = upsample_logits(
            low_res_of(idx)[:, None], model.image_encoder.img_size, pred.input_size, pred.original_size
        )
        logits = logits[:, 0]
        stability = calculate_stability_score(logits, model.mask_threshold, self.stability_score_offset)
        if self.stability_score_thresh > 0.0:
            keep = stability >= self.stability_score_thresh
            idx, logits, stability = idx[keep], logits[keep], stability[keep]
        masks = logits > model.mask_threshold
        del logits
        boxes = batched_mask_to_box(masks)
        # Filter boxes that touch crop boundaries
        keep = ~is_box_near_crop_edge(boxes, crop_box, [0, 0, orig_size[1], orig_size[0]])
        if not bool(keep.any()):
            return None
        pts = torch.as_tensor(points.repeat(3, axis=0))[idx.cpu()]
        crop_boxes = torch.zeros((len(idx), 4), dtype=torch.int64)  # set per crop
        return KeptMasks(masks, iou_preds[idx], stability, boxes, pts, crop_boxes).filter(keep)
