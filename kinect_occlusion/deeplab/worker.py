"""DeepLab worker: newest ``frame.color`` → ``mask.coarse`` (occlusion probability, uint8)."""

from __future__ import annotations

import logging
import time

import numpy as np

from .. import messages as m
from ..config import DeepLabConfig
from ..runtime.worker import WorkerRuntime, injected_fault

log = logging.getLogger(__name__)


def choose_runtime(runtime: str, device: str) -> str:
    """``auto``: onnxruntime on a CPU-only host (fastest there), torch when CUDA is used."""
    if runtime != "auto":
        return runtime
    import importlib.util

    import torch

    on_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    chosen = "torch" if on_cuda or importlib.util.find_spec("onnxruntime") is None else "onnx"
    log.info("deeplab runtime: %s (deeplab.runtime=auto, %s)", chosen, "CUDA" if on_cuda else "CPU only")
    return chosen


def build_predictor(dl: DeepLabConfig):
    """Load the coarse model the ``deeplab`` section names, once (CheckpointError: one clear line)."""
    from pathlib import Path

    from .model import build_deeplab

    have_checkpoint = dl.checkpoint is not None and Path(dl.checkpoint).is_file()
    backbone = dl.backbone if have_checkpoint else (dl.backbone or dl.untrained_backbone)
    loaded = build_deeplab(dl.checkpoint, backbone, allow_untrained=dl.allow_untrained)
    if dl.threads:
        import torch

        torch.set_num_threads(dl.threads)
    if dl.runtime == "triton":
        from .triton import TritonCoarsePredictor

        return TritonCoarsePredictor(loaded, dl.triton_url, dl.triton_model, dl.triton_timeout_ms), loaded
    if choose_runtime(dl.runtime, dl.device) == "onnx":
        from .onnx_export import OnnxCoarsePredictor

        return OnnxCoarsePredictor(loaded, threads=dl.threads), loaded
    from .predict import CoarsePredictor

    return CoarsePredictor(
        loaded, device=dl.device, half=dl.half, channels_last=dl.channels_last, compile=dl.compile
    ), loaded


def to_uint8(prob: np.ndarray) -> np.ndarray:
    """Quantise a [0, 1] probability map to uint8 0–255 for the wire."""
    return np.clip(prob * 255.0 + 0.5, 0, 255).astype(np.uint8)


def coarse_message(
    frame: m.ColorFrame, prob: np.ndarray, roi: tuple[int, int, int, int], model: str, ms: float
) -> m.CoarseMask:
    """The CoarseMask for ``frame``, carrying its epoch, frame_id, ts_us and origin_us."""
    return m.derived(frame, m.CoarseMask, prob=to_uint8(prob), roi=roi, model=model, infer_ms=ms)


def run(rt: WorkerRuntime) -> int:
    """Predict on the newest colour frame, publish, repeat until stopped."""
    dl, roi_cfg = rt.section("deeplab"), rt.section("roi")
    predictor, loaded = build_predictor(dl)
    trained = loaded.meta.get("trained", True) is not False
    model_name = f"deeplabv3plus-{loaded.backbone}" + ("" if trained else "-untrained")
    rt.info.update(model=model_name, trained=trained)
    fault = injected_fault(rt.name)
    sub, pub = rt.subscriber([m.TOPIC_COLOR]), rt.publisher()
    # One warm-up pass so the first real frame does not pay for lazy initialisation
    size = loaded.input_size
    predictor.predict(np.zeros((size, size, 3), np.uint8), None)
    rt.tick("ready")
    while not rt.stop.is_set():
        frame = sub.recv_latest(100).get(m.TOPIC_COLOR)
        rt.tick()
        if not isinstance(frame, m.ColorFrame):
            continue
        rt.counters.frames_in += 1
        h, w = frame.image.shape[:2]
        try:
            if fault == "raise":
                raise RuntimeError("injected fault")
            roi = roi_cfg.resolve(w, h)  # ValueError when the box lies outside this frame
            t0 = time.perf_counter()
            prob = predictor.predict(frame.image, roi)
            ms = (time.perf_counter() - t0) * 1000
        except Exception as exc:  # per-frame: log with the frame id, count, go on
            rt.frame_error(frame.frame_id, exc)
            continue
        pub.publish(coarse_message(frame, prob, roi, model_name, ms))
        rt.counters.out()
        rt.info.update(dropped=sub.stats.stale, invalid=sub.stats.invalid, infer_ms=round(ms, 1))
    return 0
