"""A real tritonserver (the nvidia-pytriton wheel's, CPU only) for tests and tools/bench_triton.py.

``make triton-venv`` builds ``.venv-triton`` (numpy<2, onnxruntime, nvidia-pytriton) and copies the
python-backend stub for its Python next to the backend. The stub embeds the system libpython3.11
and finds the venv's packages because the venv's ``bin`` comes first on PATH (its getpath resolves
``python3`` through PATH to the venv and reads ``pyvenv.cfg``; PYTHONPATH is not passed on).

``shared`` is the one repository and server that tests/integration/test_triton.py and
test_triton_sam.py share: the coarse model and the
tiny SAM's encoder, exported once, served once.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("KINECT_OCCLUSION_TRITON_VENV", ROOT / ".venv-triton"))
PYVER = "python3.11"


def site_packages(venv: Path = VENV) -> Path:
    return venv / "lib" / PYVER / "site-packages"


def server_binary(venv: Path = VENV) -> Path:
    return site_packages(venv) / "pytriton" / "tritonserver" / "bin" / "tritonserver"


def available(venv: Path = VENV) -> bool:
    """The tritonserver binary and its python-backend stub are installed."""
    backend = site_packages(venv) / "pytriton" / "tritonserver" / "backends" / "python"
    return server_binary(venv).is_file() and (backend / "triton_python_backend_stub").is_file()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(venv: Path = VENV) -> dict[str, str]:
    """Environment for tritonserver: bundled libraries, and the venv's Python for the stub."""
    sp = site_packages(venv)
    path = f"{venv.resolve() / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**env, "PATH": path, "LD_LIBRARY_PATH": str(sp.resolve() / "nvidia_pytriton.libs")}


class TritonServer:
    """``tritonserver`` on a free 127.0.0.1 gRPC port for one model repository; a context manager."""

    def __init__(
        self,
        repository: Path,
        log_path: Path,
        venv: Path = VENV,
        port: int | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.repository, self.log_path, self.venv = repository, log_path, venv
        self.port = port or _free_port()  # a given port: a restarted server where clients expect it
        self.url = f"127.0.0.1:{self.port}"
        self.extra = extra  # more tritonserver flags (a later one overrides an earlier one)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0, until: str = "ready") -> TritonServer:
        """Start and wait until every model in the repository is ready (``until="live"``: until the
        server answers, whatever its models' state); RuntimeError with the log."""
        backends = site_packages(self.venv) / "pytriton" / "tritonserver" / "backends"
        args = [
            str(server_binary(self.venv)),
            f"--model-repository={self.repository}",
            f"--backend-directory={backends}",
            "--allow-http=false",
            "--allow-metrics=false",
            "--grpc-address=127.0.0.1",
            f"--grpc-port={self.port}",
            "--exit-on-error=true",
            "--exit-timeout-secs=3",
            *self.extra,
        ]
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(args, env=server_env(self.venv), stdout=self._log, stderr=self._log)
        self._wait_ready(timeout, until)
        return self

    def _wait_ready(self, timeout: float, until: str) -> None:
        import tritonclient.grpc as grpcclient

        client = grpcclient.InferenceServerClient(self.url)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    break
                try:
                    ask = client.is_server_live if until == "live" else client.is_server_ready
                    if ask(client_timeout=1.0):
                        return
                except Exception:  # not listening yet: retry until the deadline
                    time.sleep(0.1)
        finally:
            client.close()
        self.stop()
        raise RuntimeError(f"tritonserver did not become ready:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# A server that keeps running with a model that failed to load; EXPLICIT: and loads one when asked
# (poll mode would retry the failed model every poll, a python-backend stub each time: CPU-heavy)
KEEP_GOING = ("--exit-on-error=false",)
EXPLICIT = (*KEEP_GOING, "--model-control-mode=explicit", "--load-model=*")


def broken_repo(repo: Path, dest: Path, broken: str, others: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """A copy of ``repo``'s ``broken`` model (and ``others``) whose ``broken`` fails to load at
    initialize: its ``model.onnx`` is moved aside. Returns (where the weights belong, where they are)."""
    import shutil

    for name in (broken, *others):
        shutil.copytree(repo / name, dest / name)
    weights = dest / broken / "1" / "model.onnx"
    aside = dest.parent / f"{broken}.onnx.aside"
    weights.rename(aside)
    return weights, aside


def counted(stats, before, n: int):
    """The model's statistics once ``n`` more inferences show (Triton counts a request just after
    answering it, so a read right after the reply may miss it), or the last read after 5 s."""
    from conftest import wait_for

    done = lambda: (s := stats()).inference_count - before.inference_count >= n and s  # noqa: E731
    return wait_for(done, timeout=5.0) or stats()


def export_triton(checkpoint: Path | None, out: Path, *extra: str) -> subprocess.CompletedProcess:
    """``kinect-occlusion export-triton`` as a real process."""
    args = ["export-triton", *(["--checkpoint", str(checkpoint)] if checkpoint else []), "--out", str(out)]
    return subprocess.run(
        [sys.executable, "-m", "kinect_occlusion", *args, *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def tiny_sam_checkpoint(path: Path, seed: int = 3) -> Path:
    """A tiny random SAM's state dict, as a SAM checkpoint file (``sam.model_type: tiny``)."""
    import torch

    from kinect_occlusion.sam.partition import build_tiny_sam

    torch.save(build_tiny_sam(seed).state_dict(), path)
    return path


class Served(NamedTuple):
    """The shared repository and its running server."""

    checkpoint: Path  # the tiny DeepLab checkpoint the ``deeplab`` model was exported from
    sam_checkpoint: Path  # the tiny SAM whose encoder is ``sam_encoder``
    repo: Path
    server: TritonServer


SERVED = pytest.StashKey[Served]()


# The mark of a test module whose tests may use the shared server (its fixture calls ``shared``):
# ``pytestmark = [pytest.mark.shared_triton, ...]``; ``shared`` refuses a caller without it
MARK = "shared_triton"


class _StopAfterLastUser:
    """A pytest plugin: stops the shared server once the session's last test that may use it (one
    marked ``shared_triton``) is torn down, rather than idling to the session's end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config, self.last = config, None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item, nextitem: pytest.Item | None):
        result = yield
        if self.last is None:  # the run order is fixed once the first test runs
            users = [i for i in item.session.items if i.get_closest_marker(MARK)]
            self.last = users[-1] if users else item
        if item is self.last and SERVED in self.config.stash:
            self.config.stash[SERVED].server.stop()
            del self.config.stash[SERVED]  # a later caller would start a new one
            self.config.pluginmanager.unregister(self)
        return result


def shared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Served:
    """One ``export-triton --backend python`` repository (``deeplab`` and ``sam_encoder``), served
    until the session's last test marked ``shared_triton`` is done; tests that stop or break a
    server start their own from ``repo``.

    The test modules' fixtures call this with their ``request``; the server lives in the session's
    stash (a fixture imported into two modules would be two fixtures, and start two servers). A
    caller outside a marked module is refused: the server could be stopped before its tests ran.
    """
    if not request.node.get_closest_marker(MARK):
        pytest.fail(f"{request.node.nodeid}: mark it pytest.mark.{MARK} to use the shared server", False)
    config = request.config
    if SERVED in config.stash:
        return config.stash[SERVED]
    from harness import tiny_checkpoint

    tmp = tmp_path_factory.mktemp("triton")
    checkpoint, sam = tiny_checkpoint(tmp / "model.pt"), tiny_sam_checkpoint(tmp / "sam_tiny.pth")
    extra = ["--sam-checkpoint", str(sam), "--sam-model", "tiny", "--backend", "python", "--threads", "1"]
    done = export_triton(checkpoint, tmp / "repo", *extra)
    assert done.returncode == 0, done.stderr
    server = TritonServer(tmp / "repo", tmp / "tritonserver.log").start()
    config.add_cleanup(server.stop)  # an interrupted session: stop() twice is harmless
    config.pluginmanager.register(_StopAfterLastUser(config))
    config.stash[SERVED] = Served(checkpoint, sam, tmp / "repo", server)
    return config.stash[SERVED]


if __name__ == "__main__":  # python tests/integration/triton_server.py REPO: serve it until Ctrl-C
    with TritonServer(Path(sys.argv[1]), Path("tritonserver.log")) as srv:
        print(f"serving {sys.argv[1]} on {srv.url}", flush=True)
        while True:
            time.sleep(1)
