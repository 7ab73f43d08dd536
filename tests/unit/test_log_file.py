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
