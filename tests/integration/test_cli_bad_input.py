"""Every sub-command on bad input: exit 2, one clear line naming the problem, never a traceback.

Real subprocesses (``python -m kinect_occlusion ...``) on real files; none of these cases starts a
pipeline (bad input is caught before the supervisor runs). Two run at a time to keep this fast.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = str(ROOT / "recordings" / "sample.mkv")
DEMO = str(ROOT / "recordings" / "demo_model.pt")
BAD_LABEL_STUDIO = '[{"data": 5, "annotations": "x"}, 3, null]'
BAD_COCO = '{"images": 5, "annotations": 7}'


def write_inputs(tmp: Path) -> dict[str, str]:
    """The bad files the cases below name, by key."""
    runnable = {"camera": {"source": "synthetic"}, "deeplab": {"allow_untrained": True}}
    (tmp / "folder").mkdir()
    (tmp / "a_file").write_text("x")
    (tmp / "open").mkdir(mode=0o777)
    os.chmod(tmp / "open", 0o777)  # mkdir's mode is filtered by the umask
    files = {
        "random.yaml": os.urandom(3000) + b"\xff",
        "camera5.yaml": b"camera: 5\n",
        "camera_list.yaml": b"camera: [1, 2]\n",
        "log_folder.yaml": yaml.safe_dump({**runnable, "logging": {"file": str(tmp / "folder")}}).encode(),
        "log_nowhere.yaml": yaml.safe_dump({**runnable, "logging": {"file": str(tmp / "no/x.log")}}).encode(),
        "deep.yaml": b"[" * 5000 + b"]" * 5000,
        "open_ipc.yaml": yaml.safe_dump(
            {**runnable, "bus": {"frontend": f"ipc://{tmp}/open/in", "backend": f"ipc://{tmp}/open/out"}}
        ).encode(),
        "cannot_run.yaml": yaml.safe_dump(
            {
                "camera": {"source": "mkv", "mkv_path": "missing.mkv"},
                "deeplab": {"checkpoint": "missing.pt"},
                "sam": {"checkpoint": "missing_sam.pth"},
                "bus": {"curve": {"enabled": True, "keys_dir": "no_keys"}},
            }
        ).encode(),
        "schema.yaml": b"fuser: {max_partition_age_ms: -1}\n",
        "ls.json": BAD_LABEL_STUDIO.encode(),
        "coco.json": BAD_COCO.encode(),
        "split.json": b'{"train": 5}',
    }
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    return {k: str(tmp / k) for k in [*files, "folder", "a_file"]}


def cases(f: dict[str, str], tmp: Path) -> list[tuple[list[str], str]]:
    """(arguments, text the error must contain)."""
    cfg = ["--config", f["log_folder.yaml"]]  # only for commands that never start a pipeline
    return [
        # Config files
        (["validate-config", f["random.yaml"]], "not a text file"),
        (["validate-config", f["deep.yaml"]], "nested too deeply"),
        (["validate-config", f["schema.yaml"]], "fuser.max_partition_age_ms"),
        (["validate-config", f["log_folder.yaml"]], "logging.file: " + f["folder"] + " is a folder"),
        (["validate-config", f["log_nowhere.yaml"]], "logging.file: folder " + str(tmp / "no") + " does not"),
        (["validate-config", f["cannot_run.yaml"]], "cannot run: 4 problem(s)"),
        (["replay", SAMPLE, "-c", f["camera5.yaml"]], "camera: Input should be a valid dictionary"),
        (["replay", SAMPLE, "-c", f["camera_list.yaml"]], "camera: Input should be a valid dictionary"),
        (["run", "-c", f["camera_list.yaml"]], "camera: Input should be a valid dictionary"),
        (["run", "-c", f["log_folder.yaml"]], "logging.file: " + f["folder"] + " is a folder"),
        (["run", "-c", f["log_nowhere.yaml"]], "does not exist"),
        (["run", "-c", f["open_ipc.yaml"]], "group/world-writable (mode 0777)"),
        # Outputs
        (["replay", SAMPLE, "--save-video", f["folder"]], "--save-video " + f["folder"] + ": is a folder"),
        (["replay", SAMPLE, "--save-video", "/dev/null/x.mp4"], "cannot write there"),
        (["replay", SAMPLE, "--save-video", str(tmp / "x.txt")], "not a video file name"),
        (["subscribe", *cfg, "--save", f["a_file"]], "--save " + f["a_file"] + ": is a file"),
        (["record", str(tmp / "no" / "x.mkv"), "--seconds", "0.2"], "does not exist"),
        (["record", f["folder"], "--seconds", "0.2"], "is a folder"),
        (["record", str(tmp / "x.mkv"), "--seconds", "inf"], "--seconds inf: must be a positive"),
        (["keys", "generate", f["a_file"]], "is a file, not a folder"),
        (["train", "--data", f["ls.json"], "--out", f["a_file"]], "--out " + f["a_file"] + ": is a file"),
        (["evaluate", "--data", f["ls.json"], "--checkpoint", DEMO, "--out", f["a_file"]], "is a file"),
        (["export-onnx", DEMO, "--out", "/dev/null/x.onnx"], "--out /dev/null: is a file"),
        # Endpoints and numbers
        (["status", *cfg, "--endpoint", "foo://bar"], "--endpoint foo://bar: endpoint must start"),
        (["subscribe", *cfg, "--endpoint", "foo://bar"], "--endpoint foo://bar: endpoint must start"),
        (["status", *cfg, "--wait", "-1"], "--wait -1.0: must be a positive"),
        (["subscribe", *cfg, "--camera", "bad id!"], "--camera 'bad id!': a camera id is"),
        (["train", "--data", f["ls.json"], "--out", str(tmp / "r3"), "--device", "foo"], "--device foo: use"),
        (["train", "--data", f["ls.json"], "--out", str(tmp / "r4"), "--workers", "-1"], "--workers must be"),
        (
            ["train", "--data", f["ls.json"], "--out", str(tmp / "r5"), "--input-size", "8192"],
            "--input-size must be 32…4096",
        ),
        (["evaluate", "--data", f["ls.json"], "--checkpoint", DEMO, "--device", "cuda:x"], "--device cuda:x"),
        # Annotation files
        (["train", "--data", f["ls.json"], "--out", str(tmp / "run")], "0 training images"),
        # (the import itself of hostile JSON shapes: tests/unit/test_training_data_bad_input.py)
        (["augment-preview", f["coco.json"], "--out", str(tmp / "ap")], "must be lists"),
        (
            ["train", "--data", f["ls.json"], "--out", str(tmp / "r2"), "--split-file", f["split.json"]],
            "--split",
        ),
        (
            ["evaluate", "--data", f["ls.json"], "--checkpoint", DEMO, "--split-file", f["split.json"]],
            "--split-file " + f["split.json"] + ": must be",
        ),
    ]


def run_cli(args: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "kinect_occlusion", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)


def problem(args: list[str], expected: str, done: subprocess.CompletedProcess) -> str | None:
    """Why a case's outcome is wrong, or None."""
    lines = [ln for ln in done.stderr.splitlines() if not ln.startswith(("INFO ", "WARNING "))]
    errors = [ln for ln in lines if ln.startswith("kinect-occlusion ") and ": error: " in ln]
    if done.returncode != 2 or "Traceback" in done.stderr or len(errors) != 1 or len(lines) > 6:
        return f"{args}: exit {done.returncode}, stderr:\n{done.stderr[-1500:]}"
    if expected not in done.stderr:
        return f"{args}: {expected!r} not in:\n{done.stderr[-800:]}"
    return None


def test_every_command_on_bad_input_says_what_is_wrong_in_one_line(tmp_path):
    table = cases(write_inputs(tmp_path), tmp_path)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda case: run_cli(case[0]), table))
    failures = [
        p for (args, exp), done in zip(table, results, strict=True) if (p := problem(args, exp, done))
    ]
    assert not failures, "\n\n".join(failures)
    # Nothing was left behind by a refused command
    assert not (tmp_path / "x.mkv").exists() and not (tmp_path / "x.txt").exists()


def test_validate_config_lists_every_reason_a_valid_config_cannot_run(tmp_path):
    f = write_inputs(tmp_path)
    done = run_cli(["validate-config", f["cannot_run.yaml"]])
    assert done.returncode == 2 and "OK" not in done.stdout
    for key in ("camera.mkv_path:", "deeplab.checkpoint:", "sam.checkpoint:", "bus.curve:"):
        assert sum(key in line for line in done.stderr.splitlines()) == 1, done.stderr
    assert str(tmp_path / "missing.mkv") in done.stderr  # relative to the config file's folder


def test_an_unexpected_exception_is_one_line_with_its_own_exit_code(monkeypatch, capsys):
    # The last-resort guard (a bug, not bad input): a command that raises what nobody expected
    from kinect_occlusion import cli
    from kinect_occlusion.commands import info

    def broken(args):
        raise RuntimeError("something\nnobody expected")

    monkeypatch.setattr(info, "run", broken)
    monkeypatch.delenv("KINECT_OCCLUSION_TRACEBACK", raising=False)
    assert cli.main(["info", "x.mkv"]) == cli.INTERNAL_ERROR == 70
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: RuntimeError: something nobody expected" in err
