"""The stage graph is declared once; everything that lists stages derives from it."""

from __future__ import annotations

from conftest import ROOT

from kinect_occlusion import messages as m
from kinect_occlusion.runtime import stages
from kinect_occlusion.runtime.monitor import BusMonitor


def test_start_order_starts_every_consumer_before_its_producer():
    order = stages.start_order()
    for producer, _topic, consumer in stages.edges():
        if producer != consumer:
            assert order.index(consumer) < order.index(producer), (producer, consumer)


def test_stop_order_stops_every_producer_before_its_consumer():
    order = stages.stop_order()
    for producer, _topic, consumer in stages.edges():
        assert order.index(producer) < order.index(consumer), (producer, consumer)


def test_the_fine_branch_runs_after_the_coarse_one():
    assert ("deeplab", m.TOPIC_COARSE, "sam") in stages.edges()
    assert ("sam", m.TOPIC_PARTITION, "fuser") in stages.edges()


def test_the_monitor_times_every_result_topic_and_only_those():
    results = {m.TOPIC_COARSE, m.TOPIC_PARTITION, m.TOPIC_OCCLUSION, m.TOPIC_DEPTH_MASK}
    assert set(BusMonitor.TOPICS) == {m.TOPIC_STATUS, *results}
    assert stages.SOURCE == "capture" and "sam" not in stages.ESSENTIAL


def test_every_stage_module_has_a_run_function_and_its_sections_exist():
    import importlib

    from kinect_occlusion.config import Config

    for stage in stages.STAGES:
        assert callable(importlib.import_module(stage.module).run), stage.name
        assert all(section in Config.model_fields for section in stage.sections), stage.name


def test_readme_shows_the_declared_graph():
    assert stages.diagram() in (ROOT / "README.md").read_text()


def test_a_worker_sees_only_the_sections_its_stage_declares():
    import threading

    import pytest

    from kinect_occlusion.config import Config
    from kinect_occlusion.runtime.worker import WorkerRuntime

    cfg = Config()
    rt = WorkerRuntime("deeplab", cfg, threading.Event(), parent_pid=1)
    assert rt.section("deeplab") is cfg.deeplab and rt.section("roi") is cfg.roi
    with pytest.raises(KeyError, match="does not declare config section 'sam'"):
        rt.section("sam")
    assert not hasattr(rt, "cfg")
