"""A real tritonserver (the nvidia-pytriton wheel's, CPU only) for tests and tools/bench_triton.py.

``make triton-venv`` builds ``.venv-triton`` (numpy<2, onnxruntime, nvidia-pytriton) and copies the
python-backend stub for its Python next to the backend. The stub embeds the system libpython3.11
and finds the venv's packages because the venv's ``bin`` comes first on PATH (its getpath resolves
``python3`` through PATH to the venv and reads ``pyvenv.cfg``; PYTHONPATH is not passed on).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

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

    def __init__(self, repository: Path, log_path: Path, venv: Path = VENV, port: int | None = None) -> None:
        self.repository, self.log_path, self.venv = repository, log_path, venv
        self.port = port or _free_port()  # a given port: a restarted server where clients expect it
        self.url = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> TritonServer:
        """Start and wait until every model in the repository is ready (RuntimeError with the log)."""
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
        ]
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(args, env=server_env(self.venv), stdout=self._log, stderr=self._log)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        import tritonclient.grpc as grpcclient

        client = grpcclient.InferenceServerClient(self.url)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    break
                try:
                    if client.is_server_ready(client_timeout=1.0):
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


if __name__ == "__main__":  # python tests/integration/triton_server.py REPO: serve it until Ctrl-C
    with TritonServer(Path(sys.argv[1]), Path("tritonserver.log")) as srv:
        print(f"serving {sys.argv[1]} on {srv.url}", flush=True)
        while True:
            time.sleep(1)
