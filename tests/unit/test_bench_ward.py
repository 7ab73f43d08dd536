"""tools/bench_ward.py's pure parts: the window statistics, CPU-time deltas, ratios, process trees."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "bench_ward.py"
spec = importlib.util.spec_from_file_location("bench_ward", TOOL)
assert spec is not None and spec.loader is not None
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_ward"] = bench  # dataclasses look their module up there
spec.loader.exec_module(bench)


def test_summary_counts_every_camera_and_a_silent_one_as_zero():
    win = bench.Window()
    for i in range(10):
        win.add_mask("bed1", 100.0 + i, fused=i % 2 == 0)
    for _ in range(6):
        win.add_mask("bed2", 300.0, fused=True)
    row = bench.summarise(win, ["bed1", "bed2", "bed3"], 2.0, cpu_s=1.6, mem={"rss": 900.4, "pss": 500.6})
    assert row["masks_per_s_per_camera"] == pytest.approx(16 / 2 / 3, abs=0.01)
    assert row["slowest_camera_per_s"] == 0.0  # bed3 sent nothing
    assert row["fused_share"] == pytest.approx(11 / 16, abs=0.01)
    assert row["p50_ms"] == 107.5  # over all 16 masks (100..109, 6 × 300), not per camera
    assert row["p95_ms"] == 300.0
    assert row["cpu_s_per_mask"] == pytest.approx(0.1)
    assert row["cpu_cores_busy"] == pytest.approx(0.8)
    assert (row["rss_peak_mb"], row["pss_peak_mb"]) == (900, 501)


def test_summary_of_an_empty_window_is_not_a_division_error():
    row = bench.summarise(bench.Window(), ["bed1"], 1.0, cpu_s=0.5, mem={})
    assert row["masks_per_s_per_camera"] == 0 and row["fused_share"] == 0
    assert math.isnan(row["p50_ms"]) and math.isnan(row["cpu_s_per_mask"])


def test_cpu_seconds_counts_new_processes_from_zero_and_ignores_reused_pids():
    tck = bench.CLK_TCK
    before = {1: 10 * tck, 2: 5 * tck}
    after = {1: 12 * tck, 3: 1 * tck, 2: 1 * tck}  # 3 started in between; pid 2 now is another process
    assert bench.cpu_seconds(before, after) == pytest.approx(3.0)


def test_ratios_are_shared_over_separate_and_nan_where_undefined():
    shared = {
        "masks_per_s_per_camera": 4.0,
        "p50_ms": 300.0,
        "rss_peak_mb": 1000,
        "cpu_s_per_mask": float("nan"),
    }
    separate = {"masks_per_s_per_camera": 5.0, "p50_ms": 200.0, "rss_peak_mb": 0}
    q = bench.ratios(shared, separate)
    assert q["masks_per_s_per_camera"] == 0.8 and q["p50_ms"] == 1.5
    assert math.isnan(q["rss_peak_mb"]) and math.isnan(q["cpu_s_per_mask"]) and math.isnan(q["p95_ms"])


def test_process_tree_walk():
    parent = {10: 1, 11: 10, 12: 11, 20: 1}
    assert bench._under(12, {10}, parent) and bench._under(10, {10}, parent)
    assert not bench._under(20, {10}, parent)
    assert not bench._under(5, {10}, {5: 6, 6: 5})  # a cycle in a racy snapshot ends


def test_this_process_is_found_by_its_session_and_has_cpu_and_memory():
    me = os.getpid()
    assert me in bench.session_pids({os.getsid(0)})
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # a root and its descendants (whatever started this test: make, a shell, or init)
        assert {me, child.pid} <= set(bench.session_pids(set(), (me,)))
        assert child.pid not in bench.session_pids(set(), (child.pid + 10**7,))
    finally:
        child.kill()
        child.wait()
    assert bench.cpu_ticks([me])[me] >= 0
    assert bench.memory_mb([me])["rss"] > 10
