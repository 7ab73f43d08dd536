"""The wire format is pinned: encode() of one message of every kind gives these exact bytes.

The digests were generated with the code before the codec was split from the kind table
(issue #11 item 5); a refactor that changes one byte on the wire fails here. JPEG bytes depend
on the OpenCV build, so for the JPEG case only the topic and the header (less ``nbytes``) are pinned.
"""

import hashlib

import msgpack
import numpy as np
import pytest

from kinect_occlusion import messages as m

SENT_US = 1_700_000_000_123_456
COMMON = {
    "camera": "bed7",
    "epoch": 1_699_999_000_000_000,
    "frame_id": 42,
    "ts_us": 987_654,
    "origin_us": 1_700_000_000_000_001,
}


def _grid(shape: tuple[int, ...], dtype: str, modulo: int) -> np.ndarray:
    """A fixed, non-trivial array (no random generator: the bytes must never change)."""
    return (np.arange(int(np.prod(shape))) * 7 % modulo).reshape(shape).astype(dtype)


def golden_messages() -> dict[str, m.Message]:
    """One message of every kind (and every encoding), built from fixed inputs."""
    scores = _grid((5, 2), "float32", 97) / np.float32(97)
    return {
        "color_raw": m.ColorFrame(image=_grid((6, 8, 3), "uint8", 256), **COMMON),
        "color_jpeg": m.ColorFrame(image=_grid((16, 16, 3), "uint8", 256), encoding=m.ENC_JPEG, **COMMON),
        "depth": m.DepthFrame(
            depth=_grid((4, 5), "uint16", 9000), aligned_to_color=True, calibration='{"k": 1}', **COMMON
        ),
        "depth_no_calibration": m.DepthFrame(depth=_grid((4, 5), "uint16", 9000), **COMMON),
        "coarse_uint8": m.CoarseMask(
            prob=_grid((6, 8), "uint8", 256),
            roi=(1, 2, 5, 3),
            model="deeplabv3plus-x",
            infer_ms=3.5,
            **COMMON,
        ),
        "coarse_float16": m.CoarseMask(
            prob=(_grid((6, 8), "float32", 11) / np.float32(10)).astype(np.float16),
            roi=(0, 0, 8, 6),
            **COMMON,
        ),
        "partition": m.Partition(
            labels=_grid((6, 8), "int32", 6),
            scores=scores,
            partitioner="sam/amg",
            compute_ms=12.25,
            decoder_calls=3,
            reused=True,
            confirmed_ts_us=999_999,
            **COMMON,
        ),
        "partition_uint16_empty": m.Partition(labels=np.zeros((3, 4), np.uint16), **COMMON),
        "occlusion_raw": m.OcclusionMask(mask=_grid((6, 8), "uint8", 2), **COMMON),
        "occlusion_packbits": m.OcclusionMask(
            mask=_grid((6, 8), "uint8", 2),
            votes=_grid((6, 2), "float32", 13),
            fused=True,
            partition_frame_id=40,
            partition_age_ms=33,
            partitioner="superpixel/seeds",
            encoding=m.ENC_PACKBITS,
            **COMMON,
        ),
        "depth_mask": m.DepthMask(
            mask=np.array([0, 1, m.DEPTH_MASK_UNKNOWN], np.uint8)[_grid((288, 320), "int64", 3)],
            fused=True,
            map_ms=4.25,
            **COMMON,
        ),
        "mask_saved": m.MaskSaved(**COMMON),
        "status": m.Status(
            worker="deeplab",
            pid=4242,
            state="running",
            info={"frames_in": 3, "rate_hz": 2.5, "nested": {"a": [1, "b", None]}},
            **COMMON,
        ),
    }


GOLDEN = {
    "coarse_float16": "330f98e2e75cace4a0688834db96bdafa10fa951248466ef9b45c67c3cf6f667",
    "coarse_uint8": "8228aace70566902862346e690fd238186bb6d3062f36c4d803999d426d80549",
    "color_jpeg": "c45e5904cd8aa3bac05056d8fd88c2ffb1b31c4f668dce2e17f5129179542574",
    "color_raw": "63933e27691142e2a88ce33d10f3f0667dd7a345072f929728ef3e714b96eca7",
    "depth": "391c848594821cef47899d0feb684892917db74e648ec79980e7ac2f32e1f614",
    "depth_mask": "831182435161527db82961aa7f4bd4278b74eb2b0c704cabf97f967c6ed19505",
    "depth_no_calibration": "4e2a0b80218b98d73362706722a3da8b36bb35122800be5031c451f354cd81fd",
    "mask_saved": "f91dcc0aa80b5bf978bb4e189bb287dcf5113459acebf0f4e468dd185cbc42d8",
    "occlusion_packbits": "effa2f2b027e0d17718b41ae20613179d30c4fdcd099c8e6ee04dc7d449f0a0d",
    "occlusion_raw": "7357f5d945078647b453f8e19da95736f7ed613dcb860e132b1ab220b6bf4236",
    "partition": "35976b01ce659cf2bdf9e2e09ae651b4cb79d578b01633145571ab9016329321",
    "partition_uint16_empty": "657016155b1b2fab70ac06faf8a4a368a927a359825afeba87238b9b3faffeda",
    "status": "9df88b6a89a7b870cab783214e33cb4b35882801a662f3f22216bf5da6d24f43",
}


def digest(frames: list) -> str:
    """sha256 over every part, each length-prefixed (a moved byte between parts changes it too)."""
    h = hashlib.sha256()
    for part in frames:
        data = bytes(part)
        h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


def pinned_frames(name: str, msg: m.Message) -> list:
    frames = m.encode(msg, sent_us=SENT_US)
    if name != "color_jpeg":
        return frames
    header = msgpack.unpackb(frames[1], raw=False)
    for desc in header["arrays"]:
        assert desc.pop("nbytes") == len(bytes(frames[2]))
    return [frames[0], msgpack.packb(header, use_bin_type=True)]


def test_every_kind_is_pinned():
    kinds = {type(msg) for msg in golden_messages().values()}
    assert kinds == set(m.KINDS.values())
    assert set(GOLDEN) == set(golden_messages())


@pytest.mark.parametrize("name", sorted(golden_messages()))
def test_encoded_bytes_are_unchanged(name):
    msg = golden_messages()[name]
    assert digest(pinned_frames(name, msg)) == GOLDEN[name]
    # and the pinned bytes still decode to the same message
    back = m.decode(m.encode(msg, sent_us=SENT_US))
    assert type(back) is type(msg) and back.identity == msg.identity and back.sent_us == SENT_US
