"""Restart policy: exponential back-off and giving up after N restarts in a window."""

from kinect_occlusion.runtime.restart import RestartPolicy


def test_backoff_doubles_up_to_the_cap_then_gives_up():
    p = RestartPolicy(first_s=0.5, max_s=2.0, max_restarts=4, window_s=60)
    assert [p.on_failure(t) for t in range(4)] == [0.5, 1.0, 2.0, 2.0]
    assert p.on_failure(4) is None


def test_failures_outside_the_window_are_forgotten():
    p = RestartPolicy(first_s=1, max_s=8, max_restarts=2, window_s=10)
    assert p.on_failure(0) == 1 and p.on_failure(1) == 2
    assert p.on_failure(100) == 1  # the earlier two are out of the window
    assert p.restarts == 1
