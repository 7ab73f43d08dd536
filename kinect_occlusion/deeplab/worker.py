"""DeepLab worker: newest ``frame.color`` → ``mask.coarse`` (occlusion probability, uint8)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import messages as m
from ..config import DeepLabConfig
from ..geometry import Box
from ..runtime.remote import WAITING, report_failure, report_served, wait_until_reachable
from ..runtime.worker import WorkerRuntime, deterministic_kernels
from .batching import BatchAssembler
from .onnx_cache import cache_key, lookup, store
from .onnx_runtime import ModelCard, OnnxRunner

log = logging.getLogger(__name__)


def cuda_possible() -> bool:
    """Whether this host has an NVIDIA device node at all (without one, CUDA cannot be used: torch
    need not be imported to ask)."""
    return any(Path("/dev").glob("nvidia[0-9]*"))


def choose_runtime(runtime: str, device: str) -> str:
    """``auto``: onnxruntime on a CPU-only host (fastest there), torch when CUDA is used."""
    if runtime != "auto":
        return runtime
    import importlib.util

    on_cuda = device == "cuda"
    if device == "auto" and cuda_possible():
        import torch

        on_cuda = torch.cuda.is_available()
    chosen = "torch" if on_cuda or importlib.util.find_spec("onnxruntime") is None else "onnx"
    log.info("deeplab runtime: %s (deeplab.runtime=auto, %s)", chosen, "CUDA" if on_cuda else "CPU only")
    return chosen


def load_model(dl: DeepLabConfig):
    """Load the checkpoint the ``deeplab`` section names, once (CheckpointError: one clear line)."""
    from .model import build_deeplab

    have_checkpoint = dl.checkpoint is not None and Path(dl.checkpoint).is_file()
    backbone = dl.backbone if have_checkpoint else (dl.backbone or dl.untrained_backbone)
    loaded = build_deeplab(dl.checkpoint, backbone, allow_untrained=dl.allow_untrained)
    if dl.threads:
        import torch

        torch.set_num_threads(dl.threads)
    return loaded


def triton_predictor(dl: DeepLabConfig, loaded):
    """A ``TritonCoarsePredictor`` that has answered one warm-up request (RemoteError: not yet)."""
    from .triton import TritonCoarsePredictor

    predictor = TritonCoarsePredictor(loaded, dl.triton_url, dl.triton_model, dl.triton_timeout_ms)
    try:
        warm_up(predictor, loaded.input_size)
    except Exception:
        predictor.close()
        raise
    return predictor


def warm_up(predictor, size: int) -> None:
    """One pass so the first real frame does not pay for lazy initialisation."""
    predictor.predict(np.zeros((size, size, 3), np.uint8), None)


def build_predictor(dl: DeepLabConfig) -> tuple[Any, ModelCard]:
    """The coarse predictor the ``deeplab`` section names, warmed-up on Triton, and its checkpoint's
    card (the worker itself waits for a Triton server with ``triton_predictor``)."""
    if dl.runtime == "triton":
        loaded = load_model(dl)
        return triton_predictor(dl, loaded), ModelCard.of(loaded)
    if choose_runtime(dl.runtime, dl.device) == "onnx":
        return onnx_predictor(dl)
    from .predict import CoarsePredictor

    loaded = load_model(dl)
    predictor = CoarsePredictor(
        loaded, device=dl.device, half=dl.half, channels_last=dl.channels_last, compile=dl.compile
    )
    return predictor, ModelCard.of(loaded)


def onnx_predictor(dl: DeepLabConfig) -> tuple[OnnxRunner, ModelCard]:
    """The checkpoint on onnxruntime: its export from ``deeplab.onnx_cache`` when kept there (no
    torch at all), else exported now (torch) and kept for the next start."""
    folder, key = cache_entry(dl)
    hit = lookup(folder, key) if folder is not None and key is not None else None
    if hit is not None and key is not None and dl.backbone in (None, hit[1].backbone):
        try:
            runner = OnnxRunner(hit[0], hit[1], dl.threads)
            log.info("deeplab: ONNX export of %s from %s", dl.checkpoint, folder)
            return runner, hit[1]
        except Exception as exc:  # a graph onnxruntime refuses is a miss: exported again below
            log.warning("deeplab.onnx_cache: entry %s unusable (%s): exporting again", key[:12], exc)
    from .onnx_export import export_bytes

    loaded = load_model(dl)
    graph, card = export_bytes(loaded), ModelCard.of(loaded)
    if folder is not None and key is not None:
        store(folder, key, graph, card)
    return OnnxRunner(graph, card, dl.threads), card


def cache_entry(dl: DeepLabConfig) -> tuple[Path | None, str | None]:
    """(folder, key) of the checkpoint's export in ``deeplab.onnx_cache``; Nones when off or when
    there is no checkpoint file (untrained weights are not kept)."""
    if not dl.onnx_cache or dl.checkpoint is None or not Path(dl.checkpoint).is_file():
        return None, None
    if dl.onnx_cache == "auto":
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        folder = Path(base) / "kinect-occlusion" / "onnx"
    else:
        folder = Path(dl.onnx_cache).expanduser()
    try:
        return folder, cache_key(Path(dl.checkpoint))
    except OSError:  # unreadable now: load_model says why in one line
        return None, None


def to_uint8(prob: np.ndarray) -> np.ndarray:
    """Quantise a [0, 1] probability map to uint8 0–255 for the wire."""
    return np.clip(prob * 255.0 + 0.5, 0, 255).astype(np.uint8)


def coarse_message(
    frame: m.ColorFrame, prob: np.ndarray, roi: tuple[int, int, int, int], model: str, ms: float
) -> m.CoarseMask:
    """The CoarseMask for ``frame``, carrying its epoch, frame_id, ts_us and origin_us."""
    return m.derived(frame, m.CoarseMask, prob=to_uint8(prob), roi=roi, model=model, infer_ms=ms)


def batch_inputs(rt: WorkerRuntime, frames: list[m.ColorFrame], roi_cfg) -> list[tuple[m.ColorFrame, Box]]:
    """(frame, ROI) for each frame whose ROI resolves; a frame whose box lies outside is a frame error."""
    out = []
    for frame in frames:
        h, w = frame.image.shape[:2]
        try:
            out.append((frame, roi_cfg.resolve(w, h)))
        except ValueError as exc:
            rt.frame_error(frame.frame_id, exc)
    return out


def run_batch(
    rt: WorkerRuntime, predictor, pub, frames: list[m.ColorFrame], model_name: str, dropped: dict[str, int]
) -> float | None:
    """Predict the batch (one forward pass) and publish one CoarseMask per frame, each with its identity.

    Returns the back-off (seconds) when the inference server failed the request, else None.
    """
    rt.counters.frames_in += len(frames)
    inputs = batch_inputs(rt, frames, rt.section("roi"))
    if not inputs:
        return None
    try:
        if rt.fault == "raise":
            raise RuntimeError("injected fault")
        t0 = time.perf_counter()
        probs = predictor.predict_batch([(f.image, roi) for f, roi in inputs])
        ms = (time.perf_counter() - t0) * 1000
    except Exception as exc:  # per-batch: log with each frame id, count, go on
        return batch_failed(rt, [f for f, _ in inputs], exc)
    for (frame, roi), prob in zip(inputs, probs, strict=True):
        pub.publish(coarse_message(frame, prob, roi, model_name, ms))
        rt.counters.out()
        rt.camera_out(frame.camera, frame.origin_us, dropped=dropped.get(frame.camera, 0))
    rt.info.update(infer_ms=round(ms, 1), batch=len(inputs))
    report_served(rt.info)
    return None


def batch_failed(rt: WorkerRuntime, frames: list[m.ColorFrame], exc: Exception) -> float | None:
    """Count a failed batch as frame errors; a remote failure (``retry_after_s``: the inference
    server) says so in Status, is not counted toward a restart, and returns its back-off."""
    retry = getattr(exc, "retry_after_s", None)
    if retry is not None:
        report_failure(rt.info, exc)
    for frame in frames:
        rt.frame_error(frame.frame_id, exc, remote=retry is not None)
    return None if retry is None else float(retry)


def run_every_frame(rt: WorkerRuntime, predictor, sub, pub, model_name: str) -> None:
    """``runtime.every_frame``: every colour frame in arrival order, one per forward pass (a batch's
    size would change the arithmetic, so the masks would depend on timing)."""
    deterministic_kernels()
    while not rt.stop.is_set():
        for frame in sub.drain(100):
            if isinstance(frame, m.ColorFrame):
                run_batch(rt, predictor, pub, [frame], model_name, {})
        rt.tick()
        rt.info.update(dropped=pub.dropped, invalid=sub.stats.invalid)


def start_predictor(rt: WorkerRuntime, dl: DeepLabConfig):
    """(predictor, checkpoint), warmed up; with ``runtime: triton`` waiting for the server while it
    cannot be reached (None when stopped meanwhile). A wrong model on a reachable server: UserError."""
    if dl.runtime != "triton":
        predictor, card = build_predictor(dl)
        warm_up(predictor, card.input_size)
        return predictor, card
    loaded = load_model(dl)
    predictor = wait_until_reachable(rt, lambda: triton_predictor(dl, loaded), f"Triton {dl.triton_url}")
    return (predictor, ModelCard.of(loaded)) if predictor is not None else None


def run(rt: WorkerRuntime) -> int:
    """Batch the newest colour frame of each camera (deadline-bounded), predict, publish, repeat."""
    dl = rt.section("deeplab")
    started = start_predictor(rt, dl)
    if started is None:
        return 0
    predictor, card = started
    model_name = f"deeplabv3plus-{card.backbone}" + ("" if card.trained else "-untrained")
    rt.info.update(model=model_name, trained=card.trained)
    sub, pub = rt.subscriber([m.TOPIC_COLOR]), rt.publisher()
    batcher: BatchAssembler[m.ColorFrame] = BatchAssembler(dl.max_batch, dl.batch_deadline_ms / 1000.0)
    rt.tick("ready")
    if rt.runtime.every_frame:
        run_every_frame(rt, predictor, sub, pub, model_name)
        return 0
    paused_until, skipped = 0.0, 0  # back-off while the inference server fails; frames meanwhile
    while not rt.stop.is_set():
        wait_ms = int(batcher.wait_s(time.monotonic()) * 1000) if batcher.pending else 100
        for frame in sub.recv_latest(max(1, wait_ms)).values():
            if isinstance(frame, m.ColorFrame):
                batcher.add(frame.camera, frame, time.monotonic())
        rt.tick(WAITING if time.monotonic() < paused_until else "ready")
        if batcher.due(time.monotonic()):
            batch = [f for _, f in batcher.take()]
            if time.monotonic() < paused_until:
                skipped += len(batch)  # not sent while backing off
            else:
                retry = run_batch(rt, predictor, pub, batch, model_name, batcher.dropped)
                paused_until = time.monotonic() + retry if retry is not None else 0.0
        rt.info.update(
            dropped=sub.stats.stale + batcher.superseded + skipped,
            invalid=sub.stats.invalid + batcher.refused,
        )
    return 0
