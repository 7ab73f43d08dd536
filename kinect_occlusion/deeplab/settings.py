"""A checkpoint's input size and normalisation, checked (torch-free: the ONNX cache's card too).

A checkpoint file and a cached card (``onnx_cache``) may claim anything: one rule for both.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import CheckpointError
from ..geometry import IMAGENET_MEAN, IMAGENET_STD, MAX_INPUT_SIZE, MIN_INPUT_SIZE

DEFAULT_INPUT_SIZE = 512


def checked_settings(payload: dict[str, Any], where: str) -> dict[str, Any]:
    """input_size, mean, std and meta of a checkpoint, checked (a file may claim anything)."""
    size = payload.get("input_size", DEFAULT_INPUT_SIZE)
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_INPUT_SIZE <= size <= MAX_INPUT_SIZE:
        raise CheckpointError(
            f"{where} has input_size {size!r}: expected an integer {MIN_INPUT_SIZE}…{MAX_INPUT_SIZE}"
        )
    meta = payload.get("meta", {})
    if not isinstance(meta, dict):
        raise CheckpointError(f"{where} has meta of type {type(meta).__name__}, expected a mapping")
    mean = finite_triple(payload.get("mean", IMAGENET_MEAN), f"{where} mean")
    std = finite_triple(payload.get("std", IMAGENET_STD), f"{where} std")
    if min(std) <= 0:
        raise CheckpointError(f"{where} std {list(std)} must be positive")
    return {"input_size": size, "mean": mean, "std": std, "meta": dict(meta)}


def finite_triple(values: Any, what: str = "checkpoint mean/std") -> tuple[float, float, float]:
    """Three finite numbers; CheckpointError naming ``what`` otherwise."""
    ok = isinstance(values, list | tuple) and len(values) == 3
    ok = ok and all(
        isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in values
    )
    if not ok:
        raise CheckpointError(f"{what} must be 3 finite numbers, got {str(values)[:80]}")
    return float(values[0]), float(values[1]), float(values[2])
