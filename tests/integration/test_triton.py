"""deeplab.runtime: triton against a real tritonserver (nvidia-pytriton's, python backend, CPU only).

The session's one server (``triton_server.shared``) serves the repository
``kinect-occlusion export-triton --backend python`` wrote; tests that stop or break a server start their own.
Needs ``make triton-venv`` (tritonserver) and the ``triton`` extra (tritonclient) in the test venv.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
import triton_server
from conftest import free_port
from harness import cli, collect, start, stop, subscriber, write_config

from kinect_occlusion import messages as m
from kinect_occlusion.errors import UserError

# Skipped where the Triton pieces are missing — except on CI, where `make test` installs them
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


@pytest.fixture(scope="module")
def served(request, tmp_path_factory):
    """(checkpoint, repository, running TritonServer): the session's shared server."""
    one = triton_server.shared(request, tmp_path_factory)
    return one.checkpoint, one.repo, one.server


@pytest.fixture(scope="module")
def loaded(served):
    from kinect_occlusion.deeplab.model import load_checkpoint

    return load_checkpoint(served[0])


def frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (120 + 20 * i, 160 + 30 * i, 3), np.uint8) for i in range(n)]


def test_export_triton_writes_a_repository_triton_loads(served):
    _, repo, server = served
    text = (repo / "deeplab" / "config.pbtxt").read_text()
    assert 'backend: "python"' in text and (repo / "deeplab" / "1" / "model.py").is_file()
    client = grpcclient.InferenceServerClient(server.url)
    try:
        assert client.is_model_ready("deeplab")
        # What Triton itself parsed: batching, stale-request rejection, instances
        config = client.get_model_config("deeplab", as_json=True)["config"]
        policy = config["dynamic_batching"]["default_queue_policy"]
        assert config["max_batch_size"] == 8 and config["dynamic_batching"]["preferred_batch_size"] == [4, 8]
        # REJECT is the enum's zero value, which proto3 JSON leaves out: the text says it explicitly
        assert "timeout_action: REJECT" in text and policy.get("timeout_action", "REJECT") == "REJECT"
        assert int(policy["default_timeout_microseconds"]) == 200000
        assert config["instance_group"][0]["kind"] == "KIND_CPU"
    finally:
        client.close()


def test_export_triton_onnx_backend_has_a_free_batch_axis(loaded, tmp_path):
    from kinect_occlusion.deeplab.triton_repo import TritonModelSpec, write_repository

    spec = TritonModelSpec(input_size=64, backend="onnx", kind="KIND_GPU", instances=2)
    model_dir = write_repository(loaded, tmp_path / "repo", spec)
    text = (model_dir / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in text and "kind: KIND_GPU count: 2" in text
    assert not (model_dir / "1" / "model.py").exists()
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_dir / "1" / "model.onnx"))
    (prob,) = session.run(None, {"image": np.zeros((3, 3, 64, 64), np.float32)})
    assert prob.shape == (3, 64, 64)


def test_predictor_equals_in_process_onnx(served, loaded):
    from kinect_occlusion.deeplab.onnx_export import OnnxCoarsePredictor
    from kinect_occlusion.deeplab.triton import TritonCoarsePredictor

    remote, local = TritonCoarsePredictor(loaded, served[2].url), OnnxCoarsePredictor(loaded)
    try:
        for rgb, roi in zip(frames(3), [None, (10, 20, 100, 80), None], strict=True):
            got, want = remote.predict(rgb, roi), local.predict(rgb, roi)
            assert got.shape == rgb.shape[:2] and got.dtype == np.float32
            np.testing.assert_allclose(got, want, atol=1e-4)
    finally:
        remote.close()


def test_batch_of_four_is_one_request(served, loaded):
    from kinect_occlusion.deeplab.triton import TritonCoarsePredictor

    remote = TritonCoarsePredictor(loaded, served[2].url)
    try:
        stats = lambda: remote.client.get_inference_statistics("deeplab").model_stats[0]  # noqa: E731
        before = stats()
        batch = frames(4, seed=1)
        probs = remote.predict_batch([(f, None) for f in batch])
        after = triton_server.counted(stats, before, 4)
        assert after.inference_count - before.inference_count == 4
        assert after.execution_count - before.execution_count == 1
        for rgb, prob in zip(batch, probs, strict=True):
            np.testing.assert_allclose(prob, remote.predict(rgb, None), atol=1e-5)
    finally:
        remote.close()


def test_a_request_past_its_deadline_is_a_frame_error(served, loaded):
    from kinect_occlusion.deeplab.triton import TritonCoarsePredictor, TritonTimeout

    remote = TritonCoarsePredictor(loaded, served[2].url, timeout_ms=1)
    try:
        remote.predict(frames(1)[0], None)  # the first request may take longer (lazy start)
        with pytest.raises(TritonTimeout, match="Triton"):
            remote.predict_batch([(f, None) for f in frames(8, seed=2)])
    finally:
        remote.close()


def test_missing_model_is_one_clear_line(served, loaded):
    from kinect_occlusion.deeplab.triton import TritonCoarsePredictor

    with pytest.raises(UserError, match="deeplab.triton_model: model 'nope' is not ready") as err:
        TritonCoarsePredictor(loaded, served[2].url, model="nope")
    assert err.value.exit_code == 3 and "\n" not in str(err.value)


def deeplab_status(msgs, **want) -> m.Status | None:
    """The newest deeplab Status whose state / info fields match ``want`` (state=..., or info keys)."""
    for x in reversed(msgs):
        if isinstance(x, m.Status) and x.worker == "deeplab":
            fields = {"state": x.state, **x.info}
            if all(fields.get(k) == v for k, v in want.items()):
                return x
    return None


def fused_count(msgs) -> int:
    return sum(isinstance(x, m.OcclusionMask) and x.fused for x in msgs)


def test_wrong_model_on_a_reachable_server_stops_the_pipeline_with_one_line(served, tmp_path, ipc_dir):
    deeplab = {"runtime": "triton", "triton_url": served[2].url, "triton_model": "nope"}
    cfg = write_config(tmp_path, ipc_dir, served[0], deeplab=deeplab)
    proc = start(["run", "--config", str(cfg)])
    proc.wait(60)
    code, out = proc.returncode, proc.communicate()[0]
    assert code == 3, out  # a configuration error: not waited for
    assert "deeplab.triton_model: model 'nope' is not ready" in out and "Traceback" not in out


def load(url: str, model: str) -> None:
    """Ask the server to load ``model`` (``--model-control-mode=explicit``)."""
    client = grpcclient.InferenceServerClient(url)
    try:
        client.load_model(model)
    finally:
        client.close()


def collect_until_up(sub, proc, up: dict) -> list:
    """What the bus says until a fused mask came and deeplab's Status matches ``up`` (≤ 30 s)."""
    return collect(
        sub,
        30,
        until=lambda ms: proc.poll() is not None or (fused_count(ms) >= 1 and deeplab_status(ms, **up)),
    )


def test_a_model_that_failed_to_load_recovers_by_itself_then_unloaded_mid_run_is_reported_and_resumes(
    served, tmp_path, ipc_dir
):
    """One pipeline on its own explicit-mode server, two cases in turn (one start-up, not two):
    (1) the model fails to load: reported with Triton's reason, then recovers by itself once loaded;
    (2) the model is unloaded while the pipeline runs: a model lost after start-up used to fail
    requests as plain ``failing``, without Triton's reason; reported, then masks resume."""
    checkpoint, repo, _ = served
    weights, aside = triton_server.broken_repo(repo, tmp_path / "repo", "deeplab")
    log = tmp_path / "t.log"
    server = triton_server.TritonServer(tmp_path / "repo", log, extra=triton_server.EXPLICIT)
    server.start(until="live")
    deeplab = {"runtime": "triton", "triton_url": server.url, "triton_timeout_ms": 2000}
    cfg = write_config(tmp_path, ipc_dir, checkpoint, deeplab=deeplab, fuser={"wait_for_partition_ms": 80})
    unavailable = {"state": "waiting for inference server", "inference_server": "model-unavailable"}
    lost = {"inference_server": "model-unavailable"}
    with subscriber(ipc_dir, (m.TOPIC_OCCLUSION, m.TOPIC_STATUS)) as sub:
        proc = start(["run", "--config", str(cfg)])
        try:
            before = collect(
                sub, 30, until=lambda ms: proc.poll() is not None or deeplab_status(ms, **unavailable)
            )
            shown = cli("status", "--config", str(cfg))
            aside.rename(weights)  # the operator puts the weights back and loads the model again
            load(server.url, "deeplab")
            up = {"state": "ready", "inference_server": "up"}
            after = collect_until_up(sub, proc, up)
            recovered = proc.poll() is None
            client = grpcclient.InferenceServerClient(server.url)
            try:
                client.unload_model("deeplab")  # an operator unloads it while the pipeline runs
            finally:
                client.close()
            down = collect(sub, 30, until=lambda ms: proc.poll() is not None or deeplab_status(ms, **lost))
            load(server.url, "deeplab")
            back = collect_until_up(sub, proc, {"inference_server": "up"})
            alive = proc.poll() is None
        finally:
            server.stop()
            code, out = stop(proc)
    # (1) failed to load: Status says why nothing comes, with Triton's reason
    waiting = deeplab_status(before, **unavailable)
    assert waiting is not None, out
    assert "NO_SUCHFILE" in waiting.info["inference_reason"], waiting.info
    assert "inference server for deeplab: model-unavailable: UNAVAILABLE:" in shown.stdout, shown.stdout
    assert "inference server: deeplab model-unavailable" in out, out  # the supervisor's report line
    said = f"deeplab.triton_model: model 'deeplab' on the Triton server at {server.url} is not ready: "
    lines = [line for line in out.splitlines() if said + "UNAVAILABLE: Internal: NoSuchFile" in line]
    assert len(lines) == 1 and " ERROR " in lines[0], out  # one ERROR line, not one per try
    assert fused_count(after) >= 1 and recovered, out  # recovered by itself once the model loaded
    assert deeplab_status(after, **up) is not None, out
    # (2) unloaded mid-run: not plain "failing": the model is gone, and Triton's reason with it
    said_lost = deeplab_status(down, **lost)
    assert said_lost is not None, out
    reason = said_lost.info["inference_reason"]  # Triton's: "UNLOADING" or "UNAVAILABLE: unloaded"
    assert reason.startswith(("UNLOADING", "UNAVAILABLE")), said_lost.info
    assert f"model not ready: {reason}" in said_lost.info["last_error"], said_lost.info
    assert fused_count(back) >= 1 and alive, out  # masks resume once the model is loaded again
    assert "inference_reason" not in deeplab_status(back, inference_server="up").info, out
    # Both: waited in one process (no restart loop), no traceback
    pids = {x.pid for x in before + after + down + back if isinstance(x, m.Status) and x.worker == "deeplab"}
    assert len(pids) == 1, out
    assert "Traceback" not in out and "giving up" not in out and code == 0, out


def test_pipeline_started_while_triton_is_down_waits_produces_then_rides_out_an_outage(
    served, tmp_path, ipc_dir
):
    """One pipeline, two cases in turn (one start-up, not two): started while its Triton server is
    down, it waits and says why, then produces once the server comes up; then the server goes away
    for 4 s and comes back on the same port: frame errors counted, never restarted, masks resume."""
    checkpoint, repo, _ = served
    port = free_port()  # nothing listens there yet
    deeplab = {"runtime": "triton", "triton_url": f"127.0.0.1:{port}", "triton_timeout_ms": 2000}
    cfg = write_config(tmp_path, ipc_dir, checkpoint, deeplab=deeplab, fuser={"wait_for_partition_ms": 80})
    waiting = {"state": "waiting for inference server", "inference_server": "unreachable"}
    late = restarted = None
    with subscriber(ipc_dir, (m.TOPIC_OCCLUSION, m.TOPIC_STATUS)) as sub:
        proc = start(["run", "--config", str(cfg)])
        try:
            before = collect(
                sub, 30, until=lambda ms: proc.poll() is not None or deeplab_status(ms, **waiting)
            )
            late = triton_server.TritonServer(repo, tmp_path / "late.log", port=port).start()
            first = collect(sub, 30, until=lambda ms: proc.poll() is not None or fused_count(ms) >= 2)
            produced = proc.poll() is None
            late.stop()
            # Down for 4 s: 25 failed frames at 15 fps (1.7 s) + restart back-off would have restarted it
            down = collect(sub, 4.0, until=lambda ms: proc.poll() is not None)
            shown = cli("status", "--config", str(cfg), "--json")
            restarted = triton_server.TritonServer(repo, tmp_path / "b.log", port=port).start()
            back_at = time.monotonic()
            back = collect(sub, 10.0, until=lambda ms: proc.poll() is not None or fused_count(ms) >= 1)
            resumed_s = time.monotonic() - back_at
            alive = proc.poll() is None
        finally:
            for server in (late, restarted):
                if server is not None:
                    server.stop()
            code, out = stop(proc)
    # Started while down: status says why nothing comes, and it produces once Triton came up
    assert deeplab_status(before, **waiting) is not None, out
    assert fused_count(first) >= 2 and produced, out
    assert "deeplab: waiting for inference server: deeplab.triton_url: no Triton server" in out, out
    # The outage: counted frame errors, status says so, resumed within 10 s
    unreachable = deeplab_status(down, inference_server="unreachable")
    assert unreachable is not None and unreachable.info["errors"] >= 2, out
    assert json.loads(shown.stdout)["deeplab"]["inference_server"] == "unreachable", shown.stdout
    assert fused_count(back) >= 1 and alive and resumed_s < 10.0, out
    assert "deeplab: frame" in out and "RemoteError: Triton" in out, out  # one line per failure
    pids = {x.pid for x in before + first + down + back if isinstance(x, m.Status) and x.worker == "deeplab"}
    assert len(pids) == 1, out  # never restarted
    assert "Traceback" not in out and "giving up" not in out and code == 0, out


def test_pipeline_on_triton_publishes_fused_masks(served, tmp_path, ipc_dir):
    checkpoint, _, server = served
    cfg = write_config(
        tmp_path,
        ipc_dir,
        checkpoint,
        deeplab={"runtime": "triton", "triton_url": server.url, "triton_timeout_ms": 2000},
        fuser={"wait_for_partition_ms": 80},
    )
    with subscriber(ipc_dir, (m.TOPIC_OCCLUSION, m.TOPIC_COARSE)) as sub:
        proc = start(["run", "--config", str(cfg)])
        msgs = collect(
            sub, 60, until=lambda ms: sum(isinstance(x, m.OcclusionMask) and x.fused for x in ms) >= 3
        )
        code, out = stop(proc)
    fused = [x for x in msgs if isinstance(x, m.OcclusionMask) and x.fused]
    assert len(fused) >= 3, out
    assert all(x.mask.shape == (240, 320) for x in fused)
    assert any(isinstance(x, m.CoarseMask) for x in msgs) and code == 0, out


def test_pipeline_counts_triton_timeouts_as_frame_errors(served, tmp_path, ipc_dir):
    checkpoint, _, server = served
    cfg = write_config(
        tmp_path,
        ipc_dir,
        checkpoint,
        deeplab={"runtime": "triton", "triton_url": server.url, "triton_timeout_ms": 1},
    )

    def timed_out(msgs):
        return any(
            isinstance(x, m.Status)
            and x.worker == "deeplab"
            and "TritonTimeout" in x.info.get("last_error", "")
            for x in msgs
        )

    with subscriber(ipc_dir, (m.TOPIC_STATUS,)) as sub:
        proc = start(["run", "--config", str(cfg)])
        msgs = collect(sub, 60, until=timed_out)
        alive = proc.poll() is None
        code, out = stop(proc)
    assert timed_out(msgs) and alive, out  # counted, and the pipeline goes on
    assert "deeplab.triton_url" not in out and "deeplab.triton_model" not in out and code == 0, out
