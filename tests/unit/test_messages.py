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
        m.DepthMask(
            camera="bed1",
            frame_id=9,
            ts_us=125,
            mask=RNG.choice(np.array([0, 1, m.DEPTH_MASK_UNKNOWN], np.uint8), (288, 320)),
            fused=True,
            map_ms=4.5,
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
    assert frames[0] == f"{msg.TOPIC}/bed1/".encode()
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
    frames = [b"mask.coarse/bed1/", msgpack.packb(header), b"\x00" * 16]
    try:
        m.decode(frames)
    except m.MessageError:
        return


# ----------------------------------------------------------------------------- JPEG header first


def _jpeg_frames(img: np.ndarray, **params) -> list[bytes]:
    return [bytes(f) for f in m.encode(m.ColorFrame(camera="bed1", frame_id=1, ts_us=1, image=img, **params))]


def _patched_sof(jpeg: bytes, offset: int, value: bytes) -> bytes:
    """``jpeg`` with ``value`` written ``offset`` bytes into its baseline frame header (SOF0)."""
    out = bytearray(jpeg)
    i = out.index(b"\xff\xc0")
    out[i + offset : i + offset + len(value)] = value
    return bytes(out)


def test_jpeg_bomb_is_rejected_before_decoding():
    """Regression (issue #10, defect 6): a 12×16 header over a JPEG claiming 16000×16000.

    Before the fix the whole 16000² image was decoded first: +768 MB (traced) and ~5 s.
    """
    import tracemalloc

    topic, header, jpeg = _jpeg_frames(np.zeros((12, 16, 3), np.uint8), encoding="jpeg")
    bomb = _patched_sof(jpeg, 5, (16000).to_bytes(2, "big") * 2)
    assert len(bomb) < 1000
    tracemalloc.start()
    try:
        with pytest.raises(m.MessageError, match=r"JPEG is \(16000, 16000, 3\)"):
            m.decode([topic, header, bomb])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def test_jpeg_frame_size_reads_the_sof_marker():
    img = RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    jpeg = _jpeg_frames(img, encoding="jpeg")[2]
    assert m.jpeg_frame_size(memoryview(jpeg)) == (37, 53, 3)
    # an application segment and fill bytes before the frame header are walked over
    extra = b"\xff\xfe\x00\x07hello" + b"\xff\xff"
    assert m.jpeg_frame_size(memoryview(jpeg[:2] + extra + jpeg[2:])) == (37, 53, 3)


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda j: b"\x00" + j, "start-of-image"),
        (lambda j: j[:40], "broken|truncated"),
        (lambda j: j[:2] + b"\xff\xfe\x00\x04ab" * 100 + j[2:], "not within the first"),
        (lambda j: _patched_sof(j, 9, b"\x04"), "4 components"),  # CMYK
        (lambda j: _patched_sof(j, 4, b"\x0c"), "12-bit"),
        (lambda j: _patched_sof(j, 1, b"\xc2"), "SOF2 not accepted"),  # progressive
        (lambda j: _patched_sof(j, 1, b"\xc3"), "SOF3 not accepted"),  # lossless
        (lambda j: _patched_sof(j, 1, b"\xc9"), "SOF9 not accepted"),  # arithmetic
        (lambda j: j[:2] + b"\xff\xda\x00\x02" + j[2:], "no frame header"),
    ],
)
def test_jpegs_that_would_not_decode_to_the_declared_shape_are_refused(make, reason):
    topic, header, jpeg = _jpeg_frames(np.zeros((24, 32, 3), np.uint8), encoding="jpeg")
    with pytest.raises(m.MessageError, match=reason):
        m.decode([topic, header, make(jpeg)])


def test_real_progressive_and_greyscale_jpegs_are_refused():
    import cv2

    topic, header, _ = _jpeg_frames(np.zeros((24, 32, 3), np.uint8), encoding="jpeg")
    progressive = cv2.imencode(".jpg", np.zeros((24, 32, 3), np.uint8), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1]
    grey = cv2.imencode(".jpg", np.zeros((24, 32), np.uint8))[1]
    with pytest.raises(m.MessageError, match="SOF2"):
        m.decode([topic, header, progressive.tobytes()])
    with pytest.raises(m.MessageError, match="1 components"):
        m.decode([topic, header, grey.tobytes()])


# ----------------------------------------------------------------------------- messages that lie


def _lie(msg: m.Message, **kwargs) -> list[bytes]:
    """``msg`` encoded after setting ``kwargs`` (the encoder sends what it is given)."""
    for name, value in kwargs.items():
        setattr(msg, name, value)
    return [bytes(f) for f in m.encode(msg, sent_us=kwargs.pop("sent_us", None))]


def _msg(kind: str) -> m.Message:
    return next(x for x in sample_messages() if x.KIND == kind)


F32 = np.float32
LIES = {
    # common fields: ids and timestamps are non-negative int64
    "frame_id<0": (lambda: _lie(_msg("ColorFrame"), frame_id=-1), "frame_id"),
    "frame_id>=2**63": (lambda: _lie(_msg("ColorFrame"), frame_id=2**63), "frame_id"),
    "ts_us<0": (lambda: _lie(_msg("DepthFrame"), ts_us=-5), "ts_us"),
    "sent_us<0": (lambda: _lie(_msg("Status"), sent_us=-1), "sent_us"),
    "origin_us<0": (lambda: _lie(_msg("OcclusionMask"), origin_us=-1), "origin_us"),
    "camera with a space": (lambda: _lie(_msg("ColorFrame"), camera="bed 1"), "camera id"),
    "camera too long": (lambda: _lie(_msg("ColorFrame"), camera="b" * 33), "camera id"),
    # DepthFrame
    "calibration 40 KB": (lambda: _lie(_msg("DepthFrame"), calibration="x" * 40_000), "calibration"),
    # CoarseMask: roi inside the image with a positive size, probabilities in [0, 1]
    "roi past the right edge": (lambda: _lie(_msg("CoarseMask"), roi=(40, 0, 30, 10)), "outside"),
    "roi past the bottom": (lambda: _lie(_msg("CoarseMask"), roi=(0, 30, 10, 7)), "outside"),
    "roi negative x": (lambda: _lie(_msg("CoarseMask"), roi=(-1, 0, 10, 10)), "roi needs"),
    "roi zero width": (lambda: _lie(_msg("CoarseMask"), roi=(0, 0, 0, 10)), "roi needs"),
    "prob 1.5": (lambda: _lie(_msg("CoarseMask"), prob=np.full((36, 64), 1.5, np.float16)), "probab"),
    "prob NaN": (lambda: _lie(_msg("CoarseMask"), prob=np.full((36, 64), np.nan, F32)), "probab"),
    "prob -inf": (lambda: _lie(_msg("CoarseMask"), prob=np.full((36, 64), -np.inf, np.float16)), "probab"),
    "infer_ms NaN": (lambda: _lie(_msg("CoarseMask"), infer_ms=float("nan")), "infer_ms"),
    "model name 1000 chars": (lambda: _lie(_msg("CoarseMask"), model="m" * 1000), "model name"),
    # Partition: labels within [0, rows of scores]
    "label 50,000,000": (
        lambda: _lie(
            _msg("Partition"), labels=np.full((2, 2), 50_000_000, np.int32), scores=np.zeros((2, 2), F32)
        ),
        r"labels must be in \[0, 2\]",
    ),
    "label -1": (lambda: _lie(_msg("Partition"), labels=np.full((2, 2), -1, np.int32)), "labels must be in"),
    "label n+1": (
        lambda: _lie(_msg("Partition"), labels=np.full((2, 2), 3, np.uint16), scores=np.zeros((2, 2), F32)),
        "labels must be in",
    ),
    "labels with no scores": (
        lambda: _lie(_msg("Partition"), labels=np.ones((2, 2), np.int32), scores=np.zeros((0, 2), F32)),
        r"labels must be in \[0, 0\]",
    ),
    "scores (n, 3)": (lambda: _lie(_msg("Partition"), scores=np.zeros((50, 3), F32)), r"shape \(n, 2\)"),
    "scores NaN": (lambda: _lie(_msg("Partition"), scores=np.full((50, 2), np.nan, F32)), "finite"),
    "compute_ms -1": (lambda: _lie(_msg("Partition"), compute_ms=-1.0), "compute_ms"),
    "decoder_calls -1": (lambda: _lie(_msg("Partition"), decoder_calls=-1), "decoder_calls"),
    "confirmed_ts_us -1": (lambda: _lie(_msg("Partition"), confirmed_ts_us=-1), "confirmed_ts_us"),
    # OcclusionMask: 0/1 mask, finite non-negative votes of shape (n + 1, 2)
    "mask value 255": (lambda: _lie(_msg("OcclusionMask"), mask=np.full((36, 64), 255, np.uint8)), "0 or 1"),
    "votes NaN": (lambda: _lie(_msg("OcclusionMask"), votes=np.full((51, 2), np.nan, F32)), "votes"),
    "votes negative": (lambda: _lie(_msg("OcclusionMask"), votes=np.full((51, 2), -1, F32)), "votes"),
    "votes inf": (lambda: _lie(_msg("OcclusionMask"), votes=np.full((51, 2), np.inf, F32)), "votes"),
    "votes (n, 3)": (lambda: _lie(_msg("OcclusionMask"), votes=np.zeros((5, 3), F32)), r"shape \(n, 2\)"),
    "partition_frame_id -2": (
        lambda: _lie(_msg("OcclusionMask"), partition_frame_id=-2),
        "partition_frame_id",
    ),
    "fused without votes": (lambda: _lie(_msg("OcclusionMask"), votes=np.zeros((0, 2), F32)), "fused mask"),
    "fused without partition": (lambda: _lie(_msg("OcclusionMask"), partition_frame_id=-1), "fused mask"),
    "partition_age_ms NaN": (lambda: _lie(_msg("OcclusionMask"), partition_age_ms=float("nan")), "age"),
    # DepthMask: a depth mode's size, values 0, 1 or 255 (unknown)
    "depth mask value 2": (
        lambda: _lie(_msg("DepthMask"), mask=np.full((288, 320), 2, np.uint8)),
        "0, 1 or 255",
    ),
    "depth mask value 254": (
        lambda: _lie(_msg("DepthMask"), mask=np.full((576, 640), 254, np.uint8)),
        "0, 1 or 255",
    ),
    "depth mask 4000×4000": (
        lambda: _lie(_msg("DepthMask"), mask=np.zeros((4000, 4000), np.uint8)),
        "depth mode's size",
    ),
    "depth mask colour-sized": (
        lambda: _lie(_msg("DepthMask"), mask=np.zeros((720, 1280), np.uint8)),
        "depth mode's size",
    ),
    "depth mask 3-D": (lambda: _lie(_msg("DepthMask"), mask=np.zeros((288, 320, 1), np.uint8)), "dimensions"),
    "depth mask uint16": (lambda: _lie(_msg("DepthMask"), mask=np.zeros((288, 320), np.uint16)), "dtype"),
    "depth mask map_ms NaN": (lambda: _lie(_msg("DepthMask"), map_ms=float("nan")), "map_ms"),
    "depth mask fused 'yes'": (lambda: _lie(_msg("DepthMask"), fused="yes"), "fused"),
    # Status: what the supervisor and `status` read
    "loop_age_s 'x'": (lambda: _lie(_msg("Status"), info={"loop_age_s": "x"}), "info.loop_age_s"),
    "rate_hz NaN": (lambda: _lie(_msg("Status"), info={"rate_hz": float("nan")}), "rate_hz|non-finite"),
    "errors -1": (lambda: _lie(_msg("Status"), info={"errors": -1}), "info.errors"),
    "nested inf": (lambda: _lie(_msg("Status"), info={"workers": {"x": {"t": float("inf")}}}), "non-finite"),
    "info 6 deep": (lambda: _lie(_msg("Status"), info={"a": {"b": {"c": {"d": {"e": {}}}}}}), "deeper"),
    "pid 0": (lambda: _lie(_msg("Status"), pid=0), "pid"),
    "pid 2**40": (lambda: _lie(_msg("Status"), pid=2**40), "pid"),
    "worker name 1000 chars": (lambda: _lie(_msg("Status"), worker="w" * 1000), "too long"),
}


@pytest.mark.parametrize("lie", list(LIES))
def test_messages_that_pass_the_schema_but_lie_are_refused(lie):
    """Regression (issue #10, defect 7): values a receiver relies on are checked on decode."""
    make, reason = LIES[lie]
    with pytest.raises(m.MessageError, match=reason):
        m.decode(make())


def test_honest_edge_values_still_decode():
    ok = [
        _lie(_msg("Partition"), labels=np.full((2, 2), 2, np.int32), scores=np.zeros((2, 2), F32)),
        _lie(_msg("Partition"), labels=np.zeros((2, 2), np.uint16), scores=np.zeros((0, 2), F32)),
        _lie(_msg("CoarseMask"), roi=(0, 0, 64, 36), prob=np.ones((36, 64), np.float16)),
        _lie(
            _msg("OcclusionMask"),
            fused=False,
            votes=np.zeros((0, 2), F32),
            partition_frame_id=-1,
            partition_age_ms=-1.0,
        ),
        _lie(_msg("ColorFrame"), frame_id=2**63 - 1, camera="Bed_3-a"),
        _lie(_msg("DepthMask"), mask=np.full((1024, 1024), m.DEPTH_MASK_UNKNOWN, np.uint8)),
        _lie(_msg("DepthMask"), mask=np.ones((512, 512), np.uint8), fused=False, map_ms=0),
        _lie(_msg("Status"), info={"workers": {"sam": {"restarts": 0, "alive": True}}, "loop_age_s": 1e9}),
    ]
    for frames in ok:
        assert isinstance(m.decode(frames), m.Message)


def test_superpixel_partitions_from_the_sam_worker_carry_one_score_row_per_segment():
    from kinect_occlusion.sam.partitioner import PartitionResult
    from kinect_occlusion.sam.worker import partition_message

    frame = m.ColorFrame(camera="bed1", frame_id=3, ts_us=9, image=np.zeros((4, 6, 3), np.uint8))
    labels = np.arange(24, dtype=np.int32).reshape(4, 6)  # superpixels: no scores
    out = m.decode(
        m.encode(partition_message(frame, PartitionResult(labels=labels, name="superpixel/seeds")))
    )
    assert out.scores.shape == (23, 2) and int(out.labels.max()) == 23
