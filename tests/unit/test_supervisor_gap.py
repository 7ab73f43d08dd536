"""The supervisor's own pauses (SIGSTOP, a suspended VM) are not its workers' silence: heartbeat
deadlines move by the gap (``Heartbeats.forgive_gap``), and a worker silent after it is still hung."""

from __future__ import annotations

from kinect_occlusion import messages as m
from kinect_occlusion.config import RuntimeConfig
from kinect_occlusion.runtime.monitor import Heartbeats
from kinect_occlusion.runtime.supervisor import hang_reason

RT = RuntimeConfig(hang_timeout_s=3.0, startup_grace_s=10.0, compute_timeout_s=30.0)


def beat(hb: Heartbeats, at: float, state: str = "running") -> None:
    hb.beat(m.Status(camera="bed1", frame_id=0, ts_us=0, worker="sam", pid=42, state=state, info={}), at)


def test_a_gap_of_the_supervisor_is_forgiven_but_silence_after_it_is_still_a_hang():
    hb = Heartbeats(pid=42, started_at=0.0)
    for t in range(1, 11):
        beat(hb, float(t))
    # the supervisor was stopped from 10.1 s to 20 s: without forgiving, the worker looks hung
    assert hang_reason(hb, 20.0, RT) is not None
    hb.forgive_gap(9.9, 20.0)
    assert hang_reason(hb, 20.0, RT) is None
    assert hang_reason(hb, 22.5, RT) is None
    assert "no heartbeat for 3 s" in (hang_reason(hb, 23.2, RT) or "")  # nothing heard after the gap


def test_times_measured_after_the_gap_are_not_pushed_into_the_future():
    hb = Heartbeats(pid=42, started_at=0.0)
    beat(hb, 5.0, "computing")
    beat(hb, 20.0, "computing")  # heard just after the supervisor resumed at 20 s
    hb.forgive_gap(14.0, 20.0)
    assert hb.last_at == 20.0 and hb.loop_at == 20.0 and hb.started_at == 14.0
    assert hb.computing_since == 19.0  # the compute run's start, moved by the gap
    assert hang_reason(hb, 20.0 + 3.1, RT) is not None  # the deadline runs from 20 s, not later


def test_a_worker_still_starting_gets_its_grace_moved_by_the_gap():
    hb = Heartbeats(pid=42, started_at=0.0)
    assert hang_reason(hb, 12.0, RT) is not None  # no heartbeat 12 s after start (grace 10 s)
    hb.forgive_gap(8.0, 12.0)
    assert hang_reason(hb, 12.0, RT) is None
