"""Wire protocol: exact round trips, zero copy, and nothing but MessageError on bad input."""

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kinect_occlusion import messages as m

RNG = np.random.default_rng(0)


def sample_messages():
    img = RNG.integers(0, 256, (36, 64, 3), dtype=np.uint8)
    return [
        m.ColorFrame(camera="bed1", frame_id=7, ts_us=123, origin_us=5, image=img),
        m.DepthFrame(
            camera="bed1",
            frame_id=7,
            ts_us=123,
            depth=RNG.integers(0, 9000, (24, 32), dtype=np.uint16),
            calibration='{"k": 1}',
        ),
        m.CoarseMask(
            camera="bed1",
            frame_id=8,
            ts_us=124,
            prob=RNG.integers(0, 256, (36, 64), dtype=np.uint8),
            roi=(1, 2, 30, 20),
            model="x",
            infer_ms=3.5,
        ),
        m.Partition(
            camera="bed1",
            frame_id=9,
            ts_us=125,
            labels=RNG.integers(0, 50, (36, 64), dtype=np.int32),
            scores=RNG.random((50, 2), dtype=np.float32),
            partitioner="superpixel/seeds",
        ),
        m.OcclusionMask(
            camera="bed1",
            frame_id=9,
            ts_us=125,
            mask=RNG.integers(0, 2, (36, 64), dtype=np.uint8),
            votes=RNG.random((51, 2), dtype=np.float32),
            fused=True,
            partition_frame_id=4,
            partition_age_ms=12.0,
        ),
        m.Status(
            camera="bed1",
            frame_id=1,
            ts_us=1,
            worker="deeplab",
            pid=42,
            state="running",
            info={"frames_in": 3, "rate_hz": 2.5},
        ),
    ]


def assert_same(a: m.Message, b: m.Message) -> None:
    assert type(a) is type(b)
    for name, value in vars(a).items():
        if name == "sent_us":
            continue
        other = getattr(b, name)
        if isinstance(value, np.ndarray):
            assert other.dtype == value.dtype and other.shape == value.shape
            np.testing.assert_array_equal(other, value)
        else:
            assert other == value, name


@pytest.mark.parametrize("msg", sample_messages(), ids=lambda x: type(x).__name__)
def test_round_trip_is_exact(msg):
    frames = m.encode(msg)
    assert frames[0] == f"bed1/{msg.TOPIC}".encode()
    assert_same(msg, m.decode([bytes(f) for f in frames]))


def test_raw_arrays_are_zero_copy_both_ways():
    msg = sample_messages()[0]
    frames = m.encode(msg)
    assert np.shares_memory(np.frombuffer(frames[2], np.uint8), msg.image)
    buf = bytearray(bytes(frames[2]))
    out = m.decode([frames[0], frames[1], buf])
    assert np.shares_memory(out.image, np.frombuffer(buf, np.uint8))


def test_header_carries_the_documented_fields():
    header = msgpack.unpackb(m.encode(sample_messages()[2])[1])
    for key in ("schema", "kind", "camera", "frame_id", "ts_us", "sent_us", "origin_us", "arrays", "roi"):
        assert key in header
    assert header["arrays"][0] == {
        "name": "prob",
        "dtype": "uint8",
        "shape": [36, 64],
        "encoding": "raw",
        "nbytes": 36 * 64,
    }


def test_jpeg_and_packbits_encodings():
    img = np.zeros((32, 48, 3), np.uint8)
    img[8:24, 8:40] = (200, 30, 90)
    out = m.decode(m.encode(m.ColorFrame(camera="c", frame_id=0, ts_us=0, image=img, encoding="jpeg")))
    assert out.encoding == "jpeg" and np.abs(out.image.astype(int) - img).mean() < 4
    mask = (RNG.random((33, 17)) > 0.5).astype(np.uint8)
    frames = m.encode(m.OcclusionMask(camera="c", frame_id=0, ts_us=0, mask=mask, encoding="packbits"))
    assert len(frames[2]) == (33 * 17 + 7) // 8
    np.testing.assert_array_equal(m.decode(frames).mask, mask)


def _mutated(frames, header_update=None, buffers=None):
    header = msgpack.unpackb(frames[1])
    header.update(header_update or {})
    return [frames[0], msgpack.packb(header), *(buffers if buffers is not None else frames[2:])]


@pytest.mark.parametrize(
    "update, reason",
    [
        ({"schema": 99}, "schema version"),
        ({"kind": "Nope"}, "unknown message kind"),
        ({"camera": "bed2"}, "topic does not match"),
        ({"frame_id": "x"}, "wrong type"),
        (
            {"arrays": [{"name": "prob", "dtype": "float64", "shape": [36, 64], "encoding": "raw"}]},
            "not allowed",
        ),
        (
            {"arrays": [{"name": "prob", "dtype": "uint8", "shape": [36, 65], "encoding": "raw"}]},
            "bytes for shape",
        ),
        (
            {"arrays": [{"name": "prob", "dtype": "uint8", "shape": [100000, 100000], "encoding": "raw"}]},
            "bad dim",
        ),
        ({"roi": [1, 2, 3]}, "roi"),
    ],
)
def test_bad_headers_raise_message_error(update, reason):
    frames = [bytes(f) for f in m.encode(sample_messages()[2])]
    with pytest.raises(m.MessageError, match=reason):
        m.decode(_mutated(frames, update))


def test_missing_and_extra_buffers_rejected():
    frames = [bytes(f) for f in m.encode(sample_messages()[3])]
    with pytest.raises(m.MessageError):
        m.decode(frames[:3])
    with pytest.raises(m.MessageError):
        m.decode(frames + [b"x"])


@pytest.mark.parametrize("channels", [1, 2, 4])
def test_colour_frame_without_three_channels_is_rejected(channels):
    """A BGRA (4-channel) or grey image is not a ColorFrame: MessageError, nothing reaches a worker."""
    img = RNG.integers(0, 256, (6, 8, channels), dtype=np.uint8)
    frames = [bytes(f) for f in m.encode(m.ColorFrame(camera="bed1", frame_id=1, ts_us=1, image=img))]
    with pytest.raises(m.MessageError, match="3 channels"):
        m.decode(frames)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=256), min_size=0, max_size=5))
def test_random_bytes_only_raise_message_error(parts):
    with pytest.raises(m.MessageError):
        m.decode(parts)


VALID = [[bytes(f) for f in m.encode(msg)] for msg in sample_messages()]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(VALID))), st.integers(0, 10), st.data())
def test_mutated_messages_decode_or_raise_message_error(which, part, data):
    frames = list(VALID[which])
    part = part % len(frames)
    raw = bytearray(frames[part])
    for _ in range(data.draw(st.integers(1, 4))):
        if not raw:
            break
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    frames[part] = bytes(raw)
    try:
        msg = m.decode(frames)
    except m.MessageError:
        return
    assert isinstance(msg, m.Message)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "schema",
                "kind",
                "camera",
                "frame_id",
                "ts_us",
                "sent_us",
                "origin_us",
                "arrays",
                "roi",
                "model",
                "infer_ms",
            ]
        ),
        st.one_of(
            st.none(),
            st.integers(-(2**63), 2**63 - 1),
            st.text(max_size=5),
            st.floats(),
            st.booleans(),
            st.lists(st.integers(-(2**31), 2**31), max_size=4),
            st.lists(st.dictionaries(st.text(max_size=6), st.integers(0, 2**31)), max_size=2),
        ),
    )
)
def test_random_headers_only_raise_message_error(header):
    frames = [b"bed1/mask.coarse", msgpack.packb(header), b"\x00" * 16]
    try:
        m.decode(frames)
    except m.MessageError:
        return
