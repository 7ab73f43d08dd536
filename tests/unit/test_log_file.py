"""``logging.file`` on a full disk (/dev/full: every write fails with ENOSPC): one line, not a flood."""

from __future__ import annotations

import logging
import os

import pytest

from kinect_occlusion.config import LoggingConfig
from kinect_occlusion.runtime import logs

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")


def test_a_full_disk_is_one_line_then_at_most_one_per_period(capsys):
    handler = logs.handlers(LoggingConfig(file="/dev/full"))[1]
    handler.setFormatter(logging.Formatter(logs.FORMAT))
    record = logging.makeLogRecord({"name": "t", "msg": "x" * 100, "levelno": 20, "levelname": "INFO"})
    for _ in range(200):
        handler.handle(record)
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err[:2000]
    assert err.startswith("logging.file: cannot write /dev/full (") and "No space left on device" in err
    assert "Traceback" not in err
    assert handler.failed == 200
    # a period later: one more line, with the count so far
    handler._reported_at -= logs.REPORT_EVERY_S
    handler.handle(record)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "201 record(s) lost" in err
    # closing cannot flush its buffer either: one line, no exception
    handler.close()
    err = capsys.readouterr().err
    assert err.startswith("logging.file: closing /dev/full:") and err.count("\n") == 1


def test_a_flapping_disk_is_at_most_two_lines_a_period(tmp_path, capsys):
    path = tmp_path / "pipeline.log"
    handler = logs.handlers(LoggingConfig(file=str(path)))[1]
    record = logging.makeLogRecord({"name": "t", "msg": "beat", "levelno": 20, "levelname": "INFO"})

    def flap(times: int) -> str:
        """The path on /dev/full then on a new file, ``times`` over (the handler reopens each); stderr."""
        for _ in range(times):
            path.unlink()
            path.symlink_to("/dev/full")
            handler.handle(record)
            path.unlink()
            handler.handle(record)
        return capsys.readouterr().err

    handler.handle(record)
    err = flap(5)
    assert err.count("\n") == 2 and err.count("cannot write") == 1, err  # the failure, then "again"
    assert "writing " + str(path) + " again (1 record(s) lost so far)" in err
    handler._reported_at -= logs.REPORT_EVERY_S  # a period later: said again
    err = flap(1)
    assert err.count("\n") == 2 and "; 6 record(s) lost" in err and "again (6 record(s) lost" in err, err
    assert path.read_text().count("beat") == 1  # the last file has the last record
    handler.close()
