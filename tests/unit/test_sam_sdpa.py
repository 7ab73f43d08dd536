"""SDPA attention for SAM: same outputs as segment-anything's hand-written attention."""

from __future__ import annotations

import copy
from functools import partial

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor
from segment_anything.modeling import ImageEncoderViT
from torch import nn

from kinect_occlusion.sam.partition import build_tiny_sam
from kinect_occlusion.sam.sdpa import enable_sdpa


def small_encoder() -> ImageEncoderViT:
    """A vit-style encoder with windowed and global blocks and non-zero relative-position tables."""
    torch.manual_seed(0)
    enc = ImageEncoderViT(
        img_size=128,
        patch_size=16,  # 8×8 tokens
        embed_dim=48,
        depth=2,
        num_heads=3,
        mlp_ratio=2.0,
        out_chans=16,
        qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        act_layer=nn.GELU,
        use_rel_pos=True,
        window_size=3,  # 3×3 windows with padding: the windowed path
        global_attn_indexes=(1,),
    ).eval()
    with torch.no_grad():
        for name, param in enc.named_parameters():
            if "rel_pos" in name:
                param.normal_(0, 0.5)  # SAM zero-initialises them; trained ones are not zero
    return enc


def test_encoder_with_rel_pos_matches_reference():
    ref = small_encoder()
    fast = copy.deepcopy(ref)
    assert enable_sdpa(fast) == 2
    x = torch.randn(2, 3, 128, 128)
    with torch.inference_mode():
        want, got = ref(x), fast(x)
    assert want.abs().max() > 0.1  # a real signal, not all zeros
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_rel_pos_bias_matters():
    """The bias path is exercised: dropping it changes the output (guards the comparison above)."""
    ref = small_encoder()
    no_bias = copy.deepcopy(ref)
    enable_sdpa(no_bias)
    for block in no_bias.blocks:
        block.attn.use_rel_pos = False
    x = torch.randn(1, 3, 128, 128)
    with torch.inference_mode():
        assert not torch.allclose(ref(x), no_bias(x), atol=1e-3)


@pytest.mark.parametrize("multimask", [True, False])
def test_tiny_sam_predictions_match_reference(multimask):
    ref = build_tiny_sam(seed=3)
    fast = copy.deepcopy(ref)
    patched = enable_sdpa(fast)
    # one encoder block + the decoder's two-way transformer (2 per layer + final token→image)
    assert patched == 1 + 3 + 1
    img = (np.random.default_rng(0).random((96, 128, 3)) * 255).astype(np.uint8)
    points = np.array([[30.0, 20.0], [100.0, 70.0]])
    outs = []
    for sam in (ref, fast):
        predictor = SamPredictor(sam)
        with torch.inference_mode():
            predictor.set_image(img)
            outs.append(
                predictor.predict(
                    point_coords=points,
                    point_labels=np.ones(2),
                    multimask_output=multimask,
                    return_logits=True,
                )
            )
    (m0, s0, l0), (m1, s1, l1) = outs
    np.testing.assert_allclose(m1, m0, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(s1, s0, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(l1, l0, rtol=1e-4, atol=1e-4)


def test_enable_twice_is_harmless():
    sam = build_tiny_sam(seed=0)
    first = enable_sdpa(sam)
    assert enable_sdpa(sam) == first
    x = torch.randn(1, 3, 1024, 1024)
    with torch.inference_mode():
        assert torch.isfinite(sam.image_encoder(x)).all()
