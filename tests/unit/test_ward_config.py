"""A ward config: a cameras list (ids unique and topic-safe), roles and what each one runs."""

from __future__ import annotations

import pytest

from kinect_occlusion.commands.run import role_config
from kinect_occlusion.config import validate
from kinect_occlusion.errors import UserError
from kinect_occlusion.runtime import stages


def ward(*ids: str) -> dict:
    return {"cameras": [{"id": i, "source": "synthetic"} for i in ids]}


def test_single_camera_section_is_a_one_camera_list():
    cfg = validate({"camera": {"id": "bed7", "source": "synthetic"}})
    assert [c.id for c in cfg.camera_list()] == ["bed7"]
    assert not cfg.ward and cfg.bus_name == "bed7"
    assert role_config(cfg, "all", None) == cfg.for_camera("bed7")


def test_cameras_list_serves_every_bed_and_a_bedside_gets_its_own():
    cfg = validate(ward("bed1", "bed2", "bed3"))
    assert cfg.ward and cfg.bus_name == "ward"
    bedside = role_config(cfg, "bedside", "bed2")
    assert bedside.camera.id == "bed2" and bedside.cameras is None and not bedside.ward
    assert role_config(cfg, "server", None) is cfg


def test_one_camera_list_is_a_ward_for_its_server_and_runs_all_in_one():
    # A server of one bed names itself 'ward': its Status must not claim the bedside's camera id
    cfg = validate(ward("bed1"))
    assert cfg.ward and cfg.bus_name == "ward"
    assert role_config(cfg, "server", None) is cfg
    one_box = role_config(cfg, "all", None)
    assert one_box.camera.id == "bed1" and not one_box.ward and one_box.bus_name == "bed1"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (ward("bed1", "bed2", "bed1"), "'bed1' is used twice"),
        ({**ward("bed1"), "camera": {"id": "bed9"}}, "either 'camera'"),
        (ward("bed/1"), "cameras.0.id"),
        (ward("mask.coarse"), "cameras.0.id"),
        (ward("partition"), "is a message topic"),
        (ward("status"), "is a message topic"),
        ({"cameras": []}, "cameras"),
    ],
)
def test_bad_camera_lists_are_config_errors(data, words):
    with pytest.raises(UserError, match="config") as exc:
        validate(data)
    assert words in str(exc.value)


@pytest.mark.parametrize(
    ("role", "camera", "words"),
    [
        ("bedside", None, "needs --camera"),
        ("bedside", "bed9", "no such camera"),
        ("server", "bed1", "--camera is for --role bedside"),
        ("all", None, "several cameras"),
    ],
)
def test_role_and_camera_mistakes_are_one_line(role, camera, words):
    with pytest.raises(UserError, match=words) as exc:
        role_config(validate(ward("bed1", "bed2")), role, camera)
    assert "\n" not in str(exc.value)


def test_stage_graph_decides_what_each_role_runs():
    assert stages.for_role("all") == stages.NAMES
    assert stages.for_role("bedside") == (stages.SOURCE,)
    assert set(stages.for_role("server")) == set(stages.NAMES) - {stages.SOURCE}
    with pytest.raises(KeyError):
        stages.for_role("nurse")


def test_bedside_status_endpoint_is_local_only():
    with pytest.raises(UserError, match="bus.bedside_status: must be an ipc:// endpoint"):
        validate({"bus": {"bedside_status": "tcp://0.0.0.0:5599"}})
