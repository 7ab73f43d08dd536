"""sam/decoder.py: the mask decoder with the image once gives MaskDecoder's outputs bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sam_fixtures import scene
from segment_anything import SamAutomaticMaskGenerator
from segment_anything.modeling import MaskDecoder, PromptEncoder, TwoWayTransformer

from kinect_occlusion.sam.amg import FastMaskGenerator, paint_labels
from kinect_occlusion.sam.decoder import decode_masks, decode_points, decode_tokens, shares_image
from kinect_occlusion.sam.partition import amg_kwargs, build_tiny_sam, masks_to_labels


def sam_sized_decoder(seed: int) -> tuple[MaskDecoder, PromptEncoder]:
    """The mask decoder and prompt encoder of every SAM (vit_b/l/h share them), random weights."""
    torch.manual_seed(seed)
    decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
        transformer_dim=256,
    )
    prompts = PromptEncoder(
        embed_dim=256, image_embedding_size=(64, 64), input_image_size=(1024, 1024), mask_in_chans=16
    )
    return decoder.eval(), prompts.eval()


def encode_points(prompts, points):
    """(sparse, dense, dense positional encoding) of one positive point per row of ``points`` (B, 2)."""
    labels = torch.ones(len(points), 1, dtype=torch.int)
    sparse, dense = prompts(points=(points[:, None], labels), boxes=None, masks=None)
    return sparse, dense, prompts.get_dense_pe()


def both(decoder, prompts, embedding, points):
    """(reference outputs, decode_points outputs) for point prompts (B, 2) on one embedding."""
    with torch.inference_mode():
        sparse, dense, pe = encode_points(prompts, points)
        assert shares_image(decoder, dense)
        ref = decoder(embedding, pe, sparse, dense, multimask_output=True)
        return ref, decode_points(decoder, embedding, pe, sparse, dense)


@pytest.mark.parametrize(("seed", "batch"), [(0, 1), (1, 5), (2, 16)])
def test_sam_sized_decoder_bit_for_bit(seed, batch):
    torch.set_num_threads(2)
    decoder, prompts = sam_sized_decoder(seed)
    gen = torch.Generator().manual_seed(seed)
    embedding = torch.randn(1, 256, 64, 64, generator=gen)
    (ref_masks, ref_iou), (masks, iou) = both(
        decoder, prompts, embedding, torch.rand(batch, 2, generator=gen) * 1024
    )
    assert masks.shape == ref_masks.shape == (batch, 3, 256, 256)
    assert torch.equal(masks, ref_masks)
    assert torch.equal(iou, ref_iou)


@pytest.mark.parametrize("batch", [1, 3, 64])
def test_tiny_sam_decoder_bit_for_bit(batch):
    sam = build_tiny_sam(0)
    gen = torch.Generator().manual_seed(batch)
    size = sam.prompt_encoder.image_embedding_size
    embedding = torch.randn(1, sam.prompt_encoder.embed_dim, *size, generator=gen)
    points = torch.rand(batch, 2, generator=gen) * sam.image_encoder.img_size
    (ref_masks, ref_iou), (masks, iou) = both(sam.mask_decoder, sam.prompt_encoder, embedding, points)
    assert torch.equal(masks, ref_masks)
    assert torch.equal(iou, ref_iou)


@pytest.mark.parametrize("seed", [0, 1])
def test_masks_of_some_prompts_are_those_rows_bit_for_bit(seed):
    """decode_masks on subsets of the prompts (what survives the IoU filter) gives the whole batch's rows."""
    torch.set_num_threads(2)
    decoder, prompts = sam_sized_decoder(seed)
    gen = torch.Generator().manual_seed(seed)
    embedding = torch.randn(1, 256, 64, 64, generator=gen)
    points = torch.rand(16, 1, 2, generator=gen) * 1024
    with torch.inference_mode():
        sparse, dense = prompts(points=(points, torch.ones(16, 1, dtype=torch.int)), boxes=None, masks=None)
        pe = prompts.get_dense_pe()
        ref_masks, ref_iou = decoder(embedding, pe, sparse, dense, multimask_output=True)
        decoded = decode_tokens(decoder, embedding, pe, sparse, dense)
        assert torch.equal(decoded.iou_preds, ref_iou)
        for subset in ([0], [15], [3, 4], [3, 4, 12], list(range(1, 16, 2)), list(range(15))):
            some = decode_masks(decoder, decoded, torch.tensor(subset))
            assert some.shape == (len(subset), 3, 256, 256)
            assert torch.equal(some, ref_masks[subset]), subset


def test_other_decoders_and_mask_prompts_take_the_module():
    decoder, prompts = sam_sized_decoder(0)
    labels = torch.ones(2, 1, dtype=torch.int)
    masks = torch.randn(2, 1, 256, 256)
    with torch.inference_mode():
        _, dense_masks = prompts(points=(torch.rand(2, 1, 2), labels), boxes=None, masks=masks)
        _, dense_points = prompts(points=(torch.rand(2, 1, 2), labels), boxes=None, masks=None)
    assert not shares_image(decoder, dense_masks)  # a mask prompt per prompt: no shared image side
    assert not shares_image(torch.nn.Identity(), dense_points)


@pytest.mark.parametrize("seed", [0, 1])
def test_generator_with_sam_decoder_equals_reference(seed):
    """FastMaskGenerator on a real (tiny) SAM decoder — the path decode_points takes — vs the reference."""
    sam, img = build_tiny_sam(seed), scene(48, 64, seed)
    assert isinstance(sam.mask_decoder, MaskDecoder)
    kw = amg_kwargs(points_per_side=6, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)
    kw.pop("points_per_batch")
    ref_masks = SamAutomaticMaskGenerator(sam, points_per_batch=64, **kw).generate(img)
    kept = FastMaskGenerator(sam, points_per_batch=64, **kw).generate_kept(img)
    assert len(kept) == len(ref_masks) > 10, "every candidate mask should survive"
    labels, scores = paint_labels(kept.masks, kept.iou_preds, kept.stability)
    ref_labels, ref_scores = masks_to_labels(ref_masks, img.shape[:2])
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_array_equal(scores, ref_scores)
    ref_ious = np.array([m["predicted_iou"] for m in ref_masks], np.float32)
    np.testing.assert_array_equal(kept.iou_preds.numpy(), ref_ious)


def test_auto_batch_on_the_cpu_is_the_references():
    from kinect_occlusion.sam.amg import auto_points_per_batch

    cpu = torch.device("cpu")
    assert auto_points_per_batch(cpu, (720, 1280), 1600) == 64
    assert auto_points_per_batch(cpu, (720, 1280), 10) == 10
