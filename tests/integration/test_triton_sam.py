"""sam.encoder: triton against a real tritonserver (nvidia-pytriton's, python backend, CPU only).

A tiny random SAM (``sam.model_type: tiny``); the session's one server
(``triton_server.shared``) serves the repository that one ``export-triton --checkpoint …
--sam-checkpoint …`` wrote (coarse model and SAM image encoder).
Needs ``make triton-venv`` (tritonserver) and the ``triton`` extra (tritonclient) in the test venv.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import triton_server
from harness import collect, start, stop, subscriber, tiny_checkpoint, write_config

from kinect_occlusion import messages as m
from kinect_occlusion.errors import UserError

ON_CI = bool(os.environ.get("CI"))
if ON_CI:
    import tritonclient.grpc as grpcclient
else:
    grpcclient = pytest.importorskip("tritonclient.grpc", reason="pip install 'kinect-occlusion[triton]'")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.shared_triton,  # its tests may use the session's shared server (triton_server.shared)
    pytest.mark.skipif(
        not ON_CI and not triton_server.available(), reason="no tritonserver: run 'make triton-venv'"
    ),
]

LOW = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "box_nms_thresh": 0.95}


def scene(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A small RGB image with two flat shapes over noise."""
    img = (np.random.default_rng(seed).random((h, w, 3)) * 60).astype(np.uint8)
    img[h // 5 : h // 2, w // 5 : w // 2] = (200, 180, 40)
    img[h // 2 : 4 * h // 5, w // 2 : 9 * w // 10, 2] = 250
    return img


@pytest.fixture(scope="module")
def served(request, tmp_path_factory):
    """(sam checkpoint, repository, running TritonServer): the session's shared server."""
    one = triton_server.shared(request, tmp_path_factory)
    return one.sam_checkpoint, one.repo, one.server


def sam_on_triton(sam_checkpoint, url: str, **more) -> dict:
    """The ``sam`` config section of a pipeline whose tiny SAM encodes on the Triton server at ``url``
    (a 4×4 prompt grid, no score filters); ``more`` adds keys."""
    grid = {k: v for k, v in LOW.items() if k != "box_nms_thresh"}
    base = {"partitioner": "sam", "checkpoint": str(sam_checkpoint), "model_type": "tiny"}
    return {**base, "encoder": "triton", "triton_url": url, **grid, **more}


def local_and_remote(served, timeout_ms: int = 5000):
    """The same tiny SAM twice: its own encoder, and its encoder replaced by Triton's."""
    from kinect_occlusion.sam.partition import build_sam
    from kinect_occlusion.sam.triton_encoder import use_triton_encoder

    local = build_sam("tiny", str(served[0]))
    remote = use_triton_encoder(
        build_sam("tiny", str(served[0])), served[2].url, "sam_encoder", timeout_ms, "tiny"
    )
    return local, remote


def test_export_writes_the_encoder_next_to_the_coarse_model(served):
    _, repo, server = served
    text = (repo / "sam_encoder" / "config.pbtxt").read_text()
    assert (repo / "deeplab" / "1" / "model.onnx").is_file() and (
        repo / "sam_encoder" / "1" / "model.py"
    ).is_file()
    client = grpcclient.InferenceServerClient(server.url)
    try:
        assert client.is_model_ready("sam_encoder") and client.is_model_ready("deeplab")
        config = client.get_model_config("sam_encoder", as_json=True)["config"]
        assert [int(d) for d in config["input"][0]["dims"]] == [3, 1024, 1024]
        assert [int(d) for d in config["output"][0]["dims"]] == [32, 16, 16]  # the tiny SAM's embedding
        policy = config["dynamic_batching"]["default_queue_policy"]
        assert config["max_batch_size"] == 8 and int(policy["default_timeout_microseconds"]) == 200000
        assert "timeout_action: REJECT" in text
    finally:
        client.close()


def test_embedding_equals_the_in_process_encoder(served):
    from segment_anything import SamPredictor

    local, remote = local_and_remote(served)
    try:
        want, got = SamPredictor(local), SamPredictor(remote)
        for img in (scene(), scene(300, 200, seed=1)):  # landscape and portrait: padded differently
            want.set_image(img)
            got.set_image(img)
            assert got.features.shape == want.features.shape == (1, 32, 16, 16)
            np.testing.assert_allclose(got.features.numpy(), want.features.numpy(), rtol=1e-4, atol=1e-4)
    finally:
        remote.image_encoder.close()


@pytest.mark.parametrize("amg", ["fast", "reference"])
def test_partition_through_triton_equals_the_in_process_one(served, amg):
    from kinect_occlusion.sam.partitioner import SamPartitioner

    local, remote = local_and_remote(served)
    try:
        want = SamPartitioner(local, LOW, amg_impl=amg)(scene(), roi=(8, 4, 112, 88))
        got = SamPartitioner(remote, LOW, amg_impl=amg)(scene(), roi=(8, 4, 112, 88))
        assert got.name == "sam/tiny/triton" and want.labels.max() >= 1
        np.testing.assert_array_equal(got.labels, want.labels)
        np.testing.assert_allclose(got.scores, want.scores, atol=1e-4)
    finally:
        remote.image_encoder.close()


def test_a_batch_is_one_request(served):
    from kinect_occlusion.sam.triton_encoder import TritonImageEncoder

    enc = TritonImageEncoder(served[2].url, "sam_encoder", 5000, 1024, (32, 16, 16), "tiny")
    try:
        stats = lambda: enc.client.get_inference_statistics("sam_encoder").model_stats[0]  # noqa: E731
        x = np.random.default_rng(0).standard_normal((3, 3, 1024, 1024)).astype(np.float32)
        before = stats()
        batch = enc.encode(x)
        after = triton_server.counted(stats, before, 3)
        assert after.inference_count - before.inference_count == 3
        assert after.execution_count - before.execution_count == 1
        np.testing.assert_allclose(batch[1:2], enc.encode(x[1:2]), atol=1e-5)
    finally:
        enc.close()


def test_a_model_of_other_dims_is_one_clear_line(served):
    from kinect_occlusion.sam.triton_encoder import TritonImageEncoder

    with pytest.raises(
        UserError, match=r"sam.triton_model: 'deeplab' maps \[3, 64, 64\] to \[64, 64\]"
    ) as err:
        TritonImageEncoder(served[2].url, "deeplab", 5000, 1024, (32, 16, 16), "tiny")
    assert err.value.exit_code == 3 and "\n" not in str(err.value)
    with pytest.raises(UserError, match="sam.triton_model: model 'nope' is not ready"):
        TritonImageEncoder(served[2].url, "nope", 5000, 1024, (32, 16, 16), "tiny")


def test_no_server_at_start_is_one_clear_line():
    from conftest import free_port

    from kinect_occlusion.sam.triton_encoder import TritonImageEncoder

    url = f"127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(UserError, match=f"sam.triton_url: no Triton server at {url}") as err:
        TritonImageEncoder(url, "sam_encoder", 5000, 1024, (32, 16, 16), "tiny")
    assert err.value.exit_code == 3 and "\n" not in str(err.value)


def test_a_request_past_its_deadline_is_a_retryable_error(served):
    from kinect_occlusion.sam.triton_encoder import TritonEncoderError, TritonImageEncoder

    enc = TritonImageEncoder(served[2].url, "sam_encoder", 1, 1024, (32, 16, 16), "tiny")
    try:
        x = np.zeros((4, 3, 1024, 1024), np.float32)
        enc.encode(x[:1])  # the first request may take longer (the instance's lazy start)
        with pytest.raises(TritonEncoderError, match="Deadline Exceeded") as err:
            enc.encode(x)
        assert err.value.retry_after_s == 0.5
    finally:
        enc.close()


def test_server_down_then_back_resumes_with_a_fresh_channel(served, tmp_path):
    from kinect_occlusion.sam.triton_encoder import TritonEncoderError, TritonImageEncoder

    x = np.zeros((1, 3, 1024, 1024), np.float32)
    first = triton_server.TritonServer(served[1], tmp_path / "a.log").start()
    enc = TritonImageEncoder(first.url, "sam_encoder", 5000, 1024, (32, 16, 16), "tiny")
    try:
        want = enc.encode(x)
        first.stop()
        retries = []
        for _ in range(3):
            with pytest.raises(TritonEncoderError, match=f"Triton {first.url} sam_encoder") as err:
                enc.encode(x)
            retries.append(err.value.retry_after_s)
        assert retries == [0.5, 1.0, 2.0]  # the caller's back-off doubles while the server is away
        with triton_server.TritonServer(served[1], tmp_path / "b.log", port=first.port):
            np.testing.assert_allclose(enc.encode(x), want, atol=1e-6)
        assert enc.failures == 0
    finally:
        enc.close()
        first.stop()


def test_pipeline_started_while_the_encoder_server_is_down_waits_fuses_then_rides_out_an_outage(
    served, tmp_path, ipc_dir
):
    """One pipeline, two cases in turn (one start-up, not two): started while the encoder's server
    is down, the sam worker waits (not exit 3) and says so, then partitions and fuses once it is up;
    then the server goes away and comes back on the same port: a counted frame error, partitions
    resume."""
    from conftest import free_port

    sam_ckpt, repo, _ = served
    port = free_port()  # nothing listens there yet
    sam = sam_on_triton(
        sam_ckpt, f"127.0.0.1:{port}", occlusion_threshold=0.01
    )  # random weights: all occluded
    checkpoint = tiny_checkpoint(tmp_path / "model.pt")
    cfg = write_config(tmp_path, ipc_dir, checkpoint, sam=sam, fuser={"wait_for_partition_ms": 80})

    def partitions(msgs):
        return [x for x in msgs if isinstance(x, m.Partition) and x.partitioner == "sam/tiny/triton"]

    def waiting(msgs):
        return any(
            isinstance(x, m.Status)
            and x.worker == "sam"
            and x.state == "waiting for inference server"
            and x.info.get("inference_server") == "unreachable"
            for x in msgs
        )

    def failed(msgs):
        return any(
            isinstance(x, m.Status)
            and x.worker == "sam"
            and "TritonEncoderError" in x.info.get("last_error", "")
            for x in msgs
        )

    def fused(x):
        return isinstance(x, m.OcclusionMask) and x.fused

    def ended():
        return proc.poll() is not None

    late = restarted = None
    topics = (m.TOPIC_OCCLUSION, m.TOPIC_PARTITION, m.TOPIC_STATUS)
    with subscriber(ipc_dir, topics) as sub:
        proc = start(["run", "--config", str(cfg)])
        try:
            before = collect(sub, 30, until=lambda ms: ended() or waiting(ms))
            late = triton_server.TritonServer(repo, tmp_path / "late.log", port=port).start()
            msgs = collect(sub, 30, until=lambda ms: ended() or sum(fused(x) for x in ms) >= 2)
            partitioned = proc.poll() is None
            late.stop()
            down = collect(sub, 30, until=lambda ms: ended() or failed(ms))
            restarted = triton_server.TritonServer(repo, tmp_path / "b.log", port=port).start()
            back = collect(sub, 30, until=lambda ms: ended() or len(partitions(ms)) >= 2)
            restarted.stop()
            alive = proc.poll() is None
        finally:
            for server in (late, restarted):
                if server is not None:
                    server.stop()
            code, out = stop(proc)
    # Started while down: not exit 3, the worker waits and says so; partitions once the server is up
    assert waiting(before), out
    assert len(partitions(msgs)) >= 1 and any(fused(x) for x in msgs) and partitioned, out
    assert "sam: waiting for inference server: sam.triton_url: no Triton server" in out, out
    # The outage: counted as a frame error, the pipeline went on, partitions resumed
    assert failed(down) and alive, out
    assert len(partitions(back)) >= 2, out
    assert "sam: frame" in out and "TritonEncoderError: Triton" in out, out  # one line per failure
    assert "Traceback" not in out and "giving up" not in out and code == 0, out


def test_an_encoder_that_failed_to_load_is_reported_while_the_other_model_serves(served, tmp_path, ipc_dir):
    sam_ckpt, repo, _ = served
    triton_server.broken_repo(repo, tmp_path / "repo", "sam_encoder", others=("deeplab",))
    log = tmp_path / "t.log"
    server = triton_server.TritonServer(tmp_path / "repo", log, extra=triton_server.KEEP_GOING)
    server.start(until="live")
    sam = sam_on_triton(sam_ckpt, server.url)
    deeplab = {"runtime": "triton", "triton_url": server.url, "triton_timeout_ms": 2000}
    cfg = write_config(tmp_path, ipc_dir, tiny_checkpoint(tmp_path / "model.pt"), sam=sam, deeplab=deeplab)

    def unavailable(msgs):
        return [
            x
            for x in msgs
            if isinstance(x, m.Status)
            and x.worker == "sam"
            and x.info.get("inference_server") == "model-unavailable"
        ]

    def coarse(msgs):
        return sum(isinstance(x, m.CoarseMask) for x in msgs)

    with subscriber(ipc_dir, (m.TOPIC_COARSE, m.TOPIC_STATUS)) as sub:
        proc = start(["run", "--config", str(cfg)])
        try:
            msgs = collect(
                sub, 30, until=lambda ms: proc.poll() is not None or (unavailable(ms) and coarse(ms) >= 2)
            )
            alive = proc.poll() is None
            t0 = time.monotonic()
            code, out = stop(proc)  # SIGTERM while the sam worker waits for its model
            stop_s = time.monotonic() - t0
        finally:
            server.stop()
            if proc.poll() is None:
                stop(proc)
    waiting = unavailable(msgs)
    assert waiting and alive, out  # Status says why no partitions come
    assert waiting[-1].state == "waiting for inference server", waiting[-1]
    assert "NO_SUCHFILE" in waiting[-1].info["inference_reason"], waiting[-1].info
    # Only this model counts: the server is "not ready" (strict readiness), yet deeplab is served
    assert coarse(msgs) >= 2, out
    said = f"sam.triton_model: model 'sam_encoder' on the Triton server at {server.url} is not ready: "
    said += "UNAVAILABLE:"
    lines = [line for line in out.splitlines() if said in line]
    assert len(lines) == 1 and " ERROR " in lines[0], out  # one ERROR line, not one per try
    assert len({x.pid for x in waiting}) == 1, out  # no restart loop
    assert code == 0 and stop_s < 10.0, (stop_s, out)  # SIGTERM ends the wait at once
    assert "Traceback" not in out and "giving up" not in out, out
