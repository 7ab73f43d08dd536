"""``logging.file`` under a running pipeline: rotated by logrotate (rename, copytruncate), then full.

One daemon for every case (a start-up is the cost): the log file is renamed, copied and truncated,
then replaced by /dev/full (every write fails with ENOSPC), then removed; records must follow the
configured path, a failing write must be one line on stderr (no traceback per record) and the
pipeline must keep running throughout.
"""

from __future__ import annotations

import os
import shutil
import signal

import pytest
from conftest import wait_for
from harness import Daemons, stop, worker_pids

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")


def records(path) -> list[str]:
    """The log lines in ``path`` (none when it does not exist)."""
    try:
        return path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []


def test_log_file_follows_logrotate_and_survives_a_full_disk(tmp_path, ipc_dir):
    log, out = tmp_path / "pipeline.log", tmp_path / "daemon.out"
    daemons = Daemons(tmp_path, ipc_dir)
    proc = daemons.launch(log=out, logging={"file": str(log)}, runtime={"report_interval_s": 0.2})
    try:
        pids = worker_pids(ipc_dir)
        assert wait_for(lambda: len(records(log)) >= 2, 30), out.read_text()[-2000:]

        # logrotate's default: rename; the daemon must write to a new file at the configured path
        os.rename(log, tmp_path / "pipeline.log.1")
        assert wait_for(lambda: len(records(log)) >= 2, 10), "records kept going to the renamed file"
        # a child's records too: a restarted worker's first lines come through the log sink
        os.kill(pids["sam"], signal.SIGKILL)
        assert wait_for(lambda: any(r.split()[2:3] == ["sam"] for r in records(log)), 20), records(log)
        assert "sam exited" in log.read_text()
        assert "sam exited" not in (tmp_path / "pipeline.log.1").read_text()

        # copytruncate: the file is copied, then emptied in place; appends start again at 0
        shutil.copyfile(log, tmp_path / "pipeline.log.2")
        os.truncate(log, 0)
        assert wait_for(lambda: len(records(log)) >= 2, 10)
        assert not log.read_bytes().startswith(b"\0"), "writing went on at the old offset"

        # a full disk: the path now names /dev/full (every write fails with ENOSPC)
        os.remove(log)
        os.symlink("/dev/full", log)
        said = "logging.file: cannot write"
        assert wait_for(lambda: said in out.read_text(), 10), out.read_text()[-2000:]
        reports = out.read_text().count(" INFO ")
        assert wait_for(lambda: out.read_text().count(" INFO ") >= reports + 5, 10)  # records still on stderr
        text = out.read_text()
        assert text.count(said) == 1, text[-3000:]
        assert "No space left on device" in text
        assert "--- Logging error ---" not in text and "Traceback" not in text, text[-3000:]

        # space again (the link removed): a new file at the path, and one line saying so
        os.remove(log)
        assert wait_for(lambda: len(records(log)) >= 2, 10)
        assert "logging.file: writing" in out.read_text()
        assert proc.poll() is None
    finally:
        if log.is_symlink():
            log.unlink()
        code, _ = stop(proc)
    assert code == 0, out.read_text()[-3000:]
    assert "Traceback" not in out.read_text()
