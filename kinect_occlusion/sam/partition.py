"""SAM partition: the automatic mask generator's masks painted into one label image.

Pure compute: a model and an RGB array in, ``(labels, scores)`` out. Masks are painted from the
largest to the smallest area so finer segments win; label k is the k-th painted segment that is
still visible, 0 = uncovered. Defaults follow the SOSS paper: 40×40 grid, pred_iou_thresh 0.9,
stability_score_thresh 0.85, min_mask_region_area 5.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache, partial
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import nn

from ..errors import Cancelled, CheckpointError

if TYPE_CHECKING:
    from segment_anything import SamAutomaticMaskGenerator
    from segment_anything.modeling import Sam

ModelType = Literal["vit_b", "vit_l", "vit_h", "tiny"]
PAPER_AMG: dict[str, Any] = {
    "points_per_side": 40,
    "points_per_batch": 64,
    "pred_iou_thresh": 0.9,
    "stability_score_thresh": 0.85,
    "min_mask_region_area": 5,
}


def amg_kwargs(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments for ``SamAutomaticMaskGenerator``: the paper's settings, then ``overrides``.

    Passing ``point_grids`` drops ``points_per_side`` (the generator takes exactly one of them).
    """
    kwargs = {**PAPER_AMG, **{k: v for k, v in overrides.items() if v is not None or k == "points_per_side"}}
    if kwargs.get("point_grids") is not None:
        kwargs["points_per_side"] = None
    return kwargs


def _read_state_dict(checkpoint: str) -> dict[str, torch.Tensor]:
    """Load a SAM state dict on the CPU; CheckpointError naming the path when it cannot be read."""
    if not os.path.isfile(checkpoint):
        raise CheckpointError(
            f"SAM checkpoint not found: {checkpoint} (set sam.checkpoint to a local .pth file)"
        )
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is a start-up error
        raise CheckpointError(
            f"SAM checkpoint {checkpoint} is unreadable ({type(exc).__name__}); check sam.checkpoint"
        ) from exc
    # Some training frameworks wrap the weights
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise CheckpointError(f"SAM checkpoint {checkpoint} holds no state dict; check sam.checkpoint")
    return state


def build_sam(model_type: ModelType, checkpoint: str, device: str | torch.device = "cpu") -> Sam:
    """A SAM model (eval mode, on ``device``) from a local checkpoint.

    Raises CheckpointError (one line naming the path and ``sam.checkpoint``/``sam.model_type``) when
    the file is missing, unreadable or holds weights of another model.
    """
    from segment_anything import sam_model_registry

    from ..deeplab.model import non_finite_weight

    if model_type not in ("vit_b", "vit_l", "vit_h", "tiny"):
        raise CheckpointError(f"unknown sam.model_type {model_type!r}; expected vit_b, vit_l, vit_h or tiny")
    state = _read_state_dict(checkpoint)
    # Build with random weights, then load strictly so a wrong model type is caught
    sam = build_tiny_sam() if model_type == "tiny" else sam_model_registry[model_type](checkpoint=None)
    try:
        sam.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"SAM checkpoint {checkpoint} does not match sam.model_type={model_type}; "
            "check sam.checkpoint and sam.model_type"
        ) from exc
    if bad := non_finite_weight(sam):
        raise CheckpointError(
            f"SAM checkpoint {checkpoint} holds NaN or infinity ({bad}); check sam.checkpoint"
        )
    return sam.to(device).eval()


def build_tiny_sam(seed: int = 0, embed_dim: int = 32, patch_size: int = 64) -> Sam:
    """A small randomly-initialised SAM for tests and demos (deterministic for a given ``seed``).

    The encoder keeps SAM's 1024 input size (the predictor's transform needs it) but uses big
    patches (16×16 embedding grid), one block and narrow layers, so a frame costs milliseconds.
    """
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    img_size, grid = 1024, 1024 // patch_size
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = ImageEncoderViT(
            img_size=img_size,
            patch_size=patch_size,
            embed_dim=64,
            depth=1,
            num_heads=2,
            mlp_ratio=2.0,
            out_chans=embed_dim,
            qkv_bias=True,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
            act_layer=nn.GELU,
            use_rel_pos=False,
            window_size=0,
            global_attn_indexes=(),
        )
        prompt = PromptEncoder(
            embed_dim=embed_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(img_size, img_size),
            mask_in_chans=8,
        )
        decoder = MaskDecoder(
            transformer_dim=embed_dim,
            num_multimask_outputs=3,
            iou_head_depth=2,
            iou_head_hidden_dim=32,
            transformer=TwoWayTransformer(depth=1, embedding_dim=embed_dim, mlp_dim=64, num_heads=2),
        )
        sam = Sam(
            image_encoder=encoder,
            prompt_encoder=prompt,
            mask_decoder=decoder,
            pixel_mean=[123.675, 116.28, 103.53],
            pixel_std=[58.395, 57.12, 57.375],
        )
    return sam.eval()


def masks_to_labels(masks: list[dict[str, Any]], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Paint AMG masks into one label image, largest area first so finer segments win.

    Args:
        masks: ``SamAutomaticMaskGenerator.generate`` output (output_mode "binary_mask").
        shape: (H, W) of the image.

    Returns:
        labels: H×W int32, k = k-th painted segment still visible (1-based, compact), 0 = uncovered.
        scores: (n, 2) float32 [predicted_iou, stability_score] of label k at row k-1.
    """
    h, w = int(shape[0]), int(shape[1])
    # Stable sort by decreasing area: among equal areas the later mask is painted last
    order = sorted(range(len(masks)), key=lambda i: -int(masks[i]["area"]))
    painted = np.zeros((h, w), np.int32)
    for k, i in enumerate(order, start=1):
        seg = masks[i]["segmentation"]
        if not isinstance(seg, np.ndarray) or seg.shape != (h, w):
            raise ValueError("masks_to_labels needs binary_mask segmentations of the image's shape")
        painted[seg] = k
    # Drop segments that ended fully overpainted and renumber compactly (keeps paint order)
    visible = np.bincount(painted.ravel(), minlength=len(order) + 1) > 0
    visible[0] = True
    lut = np.cumsum(visible).astype(np.int32) - 1
    labels = lut[painted]
    kept = [order[k - 1] for k in range(1, len(order) + 1) if visible[k]]
    scores = np.array(
        [[masks[i]["predicted_iou"], masks[i]["stability_score"]] for i in kept], dtype=np.float32
    ).reshape(-1, 2)
    return labels, scores


def mask_generator(sam: Sam, **kwargs: Any) -> SamAutomaticMaskGenerator:
    """``SamAutomaticMaskGenerator(sam, **kwargs)`` that :func:`sam_partition` can cancel.

    Before each crop (image encoder pass) and each decoder batch of ``points_per_batch`` prompts it
    calls its ``should_stop`` check, and raises :class:`~kinect_occlusion.errors.Cancelled` when true.
    """
    return _cancellable_generator()(sam, **kwargs)


@cache
def _cancellable_generator() -> type:
    """The generator class with the checks (built once: segment_anything is an optional import)."""
    from segment_anything import SamAutomaticMaskGenerator

    class CancellableMaskGenerator(SamAutomaticMaskGenerator):
        should_stop: Callable[[], bool] | None = None

        def _process_crop(self, *args: Any, **kwargs: Any) -> Any:
            _check_stop(self.should_stop, "an image crop")
            return super()._process_crop(*args, **kwargs)

        def _process_batch(self, *args: Any, **kwargs: Any) -> Any:
            _check_stop(self.should_stop, "a decoder batch")
            return super()._process_batch(*args, **kwargs)

    return CancellableMaskGenerator


def _check_stop(should_stop: Callable[[], bool] | None, before: str) -> None:
    if should_stop is not None and should_stop():
        raise Cancelled(f"SAM partition cancelled before {before}")


def sam_partition(
    generator: SamAutomaticMaskGenerator, rgb: np.ndarray, should_stop: Callable[[], bool] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Run the automatic mask generator on an H×W×3 uint8 RGB image; return ``masks_to_labels`` of it.

    ``should_stop`` (needs a :func:`mask_generator` generator) is checked before every crop and
    decoder batch; when it returns True the partition raises ``Cancelled`` (within one batch).
    """
    if generator.output_mode != "binary_mask":
        raise ValueError("sam_partition needs a generator with output_mode='binary_mask'")
    cancellable = isinstance(generator, _cancellable_generator())
    if should_stop is not None and not cancellable:
        raise TypeError("sam_partition(should_stop=...) needs a generator built by mask_generator()")
    if cancellable:
        generator.should_stop = should_stop
    try:
        masks = generator.generate(np.ascontiguousarray(rgb, dtype=np.uint8))
    finally:
        if cancellable:
            generator.should_stop = None
    return masks_to_labels(masks, rgb.shape[:2])


def decoder_prompts(generator: SamAutomaticMaskGenerator, shape: tuple[int, int]) -> int:
    """How many point prompts the generator sends through the mask decoder for an image of ``shape``."""
    from segment_anything.utils.amg import generate_crop_boxes

    _, layers = generate_crop_boxes(shape, generator.crop_n_layers, generator.crop_overlap_ratio)
    return int(sum(len(generator.point_grids[layer]) for layer in layers))


class AutocastEncoder(nn.Module):
    """Runs a SAM image encoder under CUDA autocast (bf16/fp16) and returns float32 embeddings.

    The mask decoder and AMG post-processing stay in float32 (NMS and stability scores are
    sensitive to half precision); only the encoder, where the FLOPs are, runs in reduced precision.
    """

    def __init__(self, encoder: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.encoder, self.dtype = encoder, dtype
        self.img_size = encoder.img_size  # read by Sam.preprocess and SamPredictor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, dtype=self.dtype):
            return self.encoder(x).float()
