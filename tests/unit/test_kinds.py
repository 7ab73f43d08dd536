"""A kind is one declaration; results carry their frame's identity through ``derived`` (issue #11 item 5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from kinect_occlusion import messages as m
from kinect_occlusion import wire
from kinect_occlusion.config import FuserConfig
from kinect_occlusion.deeplab.worker import coarse_message
from kinect_occlusion.fuser.worker import fuse
from kinect_occlusion.sam.partitioner import PartitionResult
from kinect_occlusion.sam.worker import partition_message

SRC = {
    "camera": "bed2",
    "epoch": 1_700_000_000_000_000,
    "frame_id": 17,
    "ts_us": 5_000_123,
    "origin_us": 1_700_000_001_234_567,
}


def provenance(msg: m.Message) -> dict:
    return {name: getattr(msg, name) for name in m.PROVENANCE}


def color(**over) -> m.ColorFrame:
    return m.ColorFrame(image=np.full((24, 32, 3), 100, np.uint8), **{**SRC, **over})


def test_derived_copies_the_source_frames_identity_and_provenance():
    src = color(sent_us=99)
    out = m.derived(src, m.CoarseMask, prob=np.zeros((24, 32), np.uint8), roi=(0, 0, 32, 24))
    assert isinstance(out, m.CoarseMask)
    assert provenance(out) == SRC
    assert out.sent_us == 0  # stamped when the result is sent, never copied


@pytest.mark.parametrize("name", m.PROVENANCE)
def test_derived_refuses_a_result_with_another_identity(name):
    with pytest.raises(TypeError, match=name):
        m.derived(color(), m.CoarseMask, prob=np.zeros((24, 32), np.uint8), roi=(0, 0, 32, 24), **{name: 1})


def test_every_stage_result_carries_its_frames_provenance():
    frame = color()
    cm = coarse_message(frame, np.zeros((24, 32), np.float32), (0, 0, 32, 24), "x", 1.0)
    assert provenance(cm) == SRC
    result = PartitionResult(labels=np.ones((24, 32), np.int32), name="fake")
    assert provenance(partition_message(frame, result)) == SRC
    # a reused partition keeps its own (older) frame and says which newer frame confirmed it
    newer = color(frame_id=18, ts_us=5_100_000, origin_us=1)
    reused = partition_message(newer, result, frame)
    assert provenance(reused) == SRC and reused.confirmed_ts_us == 5_100_000
    part = partition_message(frame, result)
    assert provenance(fuse(cm, part, FuserConfig())) == SRC
    assert provenance(fuse(cm, None, FuserConfig())) == SRC


@pytest.fixture
def scratch_kind():
    """A kind declared here, removed from the registry afterwards."""

    @dataclass(kw_only=True)
    class Heat(m.Message):
        temp: np.ndarray = wire.array_field("float32", ndim=2)
        level: np.ndarray = wire.array_field("uint8", ndim=2, encodings=(m.ENC_RAW, m.ENC_PACKBITS))
        unit: str = wire.header_field(str, default="C")
        box: tuple[int, int] = wire.header_field(list, tuple, parse=tuple)
        encoding: str = wire.encoding_field()

        KIND: ClassVar[str] = "Heat"
        TOPIC: ClassVar[str] = "heat"

        def check(self) -> None:
            wire.require(self.unit in ("C", "F"), "unit must be C or F")

    yield Heat
    del wire.KINDS["Heat"], wire.TOPICS["heat"]


def test_a_new_kind_is_one_declaration(scratch_kind):
    msg = m.derived(
        color(),
        scratch_kind,
        temp=np.arange(6, dtype=np.float32).reshape(2, 3),
        level=np.array([[0, 1, 1], [1, 0, 1]], np.uint8),
        box=(2, 3),
        encoding=m.ENC_PACKBITS,
    )
    frames = m.encode(msg)
    assert frames[0] == b"heat/bed2/"
    back = m.decode(frames)
    assert isinstance(back, scratch_kind) and provenance(back) == SRC
    assert back.box == (2, 3) and back.unit == "C" and back.encoding == m.ENC_PACKBITS  # type: ignore[attr-defined]
    np.testing.assert_array_equal(back.level, msg.level)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(back.temp, msg.temp)  # type: ignore[attr-defined]
    # its own check runs on receipt
    bad = m.encode(scratch_kind(**SRC, temp=msg.temp, level=msg.level, box=(1, 1), unit="K"))
    with pytest.raises(m.MessageError, match="unit must be C or F"):
        m.decode(bad)


def test_a_kind_cannot_reuse_a_kind_or_topic_name():
    with pytest.raises(TypeError, match="own KIND and TOPIC"):

        class Again(m.Message):
            KIND: ClassVar[str] = "Partition"
            TOPIC: ClassVar[str] = "partition.again"

    assert m.KINDS["Partition"] is m.Partition


def test_encoded_arrays_need_an_encoding_field():
    @dataclass(kw_only=True)
    class NoEncoding(m.Message):
        mask: np.ndarray = wire.array_field("uint8", ndim=2, encodings=(m.ENC_RAW, m.ENC_PACKBITS))

    with pytest.raises(TypeError, match="no encoding_field"):
        wire.layout(NoEncoding)
