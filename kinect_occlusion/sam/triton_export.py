"""The SAM image encoder as ONNX and as a Triton model repository (``export-triton --sam-checkpoint``).

Layout written next to the coarse model (``NAME`` defaults to ``sam_encoder``)::

    OUT/NAME/config.pbtxt   dynamic batching, the same stale-request queue policy as the coarse model
    OUT/NAME/1/model.onnx   N×3×1024×1024 preprocessed image → N×C×h×w embedding (vit_*: 256×64×64)
    OUT/NAME/1/model.py     only with backend "python": runs model.onnx through onnxruntime

Preprocessing stays client-side, exactly SAM's predictor: resize the long side to 1024
(``ResizeLongestSide``), normalise with the model's pixel mean/std and pad to 1024×1024
(``Sam.preprocess``). Triton runs only ``image_encoder``; the prompt encoder, mask decoder and the
automatic mask generator stay in the partition worker (``sam.encoder: triton``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from ..deeplab.triton_repo import TritonModelSpec, write_model_dir

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "sam_image", "sam_embedding"


def embedding_dims(sam: Any) -> tuple[int, int, int]:
    """(C, h, w) of the embedding ``sam``'s mask decoder takes (vit_*: 256×64×64)."""
    h, w = sam.prompt_encoder.image_embedding_size
    return int(sam.prompt_encoder.embed_dim), int(h), int(w)


def export_encoder_onnx(sam: Any, path: Path, opset: int = OPSET) -> Path:
    """``sam.image_encoder`` to ONNX with a free batch axis (float32, CPU export); returns ``path``."""
    encoder = sam.image_encoder.eval().float().cpu()
    size = int(encoder.img_size)
    dummy = torch.zeros(1, 3, size, size)
    # Legacy exporter, as the coarse model: the dynamo one needs onnxscript
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            encoder,
            (dummy,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    return path


def encoder_spec(sam: Any, spec: TritonModelSpec) -> TritonModelSpec:
    """``spec`` with the encoder's tensor names and dims (input 3×1024×1024, output C×h×w)."""
    size = int(sam.image_encoder.img_size)
    return TritonModelSpec(
        **{
            **spec.__dict__,
            "input_size": size,
            "input_name": INPUT_NAME,
            "output_name": OUTPUT_NAME,
            "input_dims": (3, size, size),
            "output_dims": embedding_dims(sam),
        }
    )


def write_encoder_repository(sam: Any, out: Path, spec: TritonModelSpec) -> Path:
    """Write ``out/<spec.name>/`` for the SAM image encoder; returns that folder."""
    spec = encoder_spec(sam, spec)
    return write_model_dir(out, spec, lambda onnx: export_encoder_onnx(sam, onnx))
