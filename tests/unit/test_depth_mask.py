"""The occlusion mask in depth geometry: each depth pixel takes the colour mask's value where its point
lands, unknown (255) without depth or outside the colour image; tables built once per calibration;
the fuser's depth side pairs by capture identity and says why it cannot."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kinect_occlusion import messages as m
from kinect_occlusion.depth.calibration import CalibrationError, parse_calibration
from kinect_occlusion.depth.device_calibration import device_calibration, device_calibration_json
from kinect_occlusion.depth.mask import DepthMasker, depth_geometry_mask, modes_for
from kinect_occlusion.depth.projection import convert_2d_to_3d, convert_3d_to_2d
from kinect_occlusion.depth.transform import DepthToColor
from kinect_occlusion.fuser.depth import MAX_DEPTH_FRAMES, DepthFrames

UNKNOWN = m.DEPTH_MASK_UNKNOWN


@pytest.fixture(scope="module")
def cal():
    return parse_calibration(device_calibration_json(), "NFOV_2X2BINNED", "720P")


@pytest.fixture(scope="module")
def transform(cal):
    return DepthToColor.build(cal)


def scene() -> np.ndarray:
    """A tilted wall, a box 1.2 m nearer, and a patch without readings (288×320 mm)."""
    depth = (2400 + 3 * np.arange(320))[None, :].repeat(288, 0).astype(np.uint16)
    depth[100:180, 120:200] = 1200
    depth[20:60, 250:300] = 0
    return depth


def expected_by_points(cal, mask: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel through the 2D↔3D point functions: the mask value (255 unknown) and the colour (u, v)."""
    v, u = np.mgrid[0 : depth.shape[0], 0 : depth.shape[1]]
    uv = np.stack([u.ravel(), v.ravel()], 1).astype(np.float32)
    points, ok3 = convert_2d_to_3d(cal, uv, depth.ravel(), "depth", "color")
    pix, ok2 = convert_3d_to_2d(cal, points, "color", "color")
    col, row = np.floor(pix[:, 0] + 0.5), np.floor(pix[:, 1] + 0.5)
    inside = ok3 & ok2 & (col >= 0) & (col < mask.shape[1]) & (row >= 0) & (row < mask.shape[0])
    out = np.full(len(uv), UNKNOWN, np.uint8)
    out[inside] = mask[row[inside].astype(int), col[inside].astype(int)]
    return out.reshape(depth.shape), pix.reshape(*depth.shape, 2)


def test_each_depth_pixel_takes_the_mask_value_where_its_point_lands(cal, transform):
    depth = scene()
    mask = np.random.default_rng(1).integers(0, 2, (720, 1280), dtype=np.uint8)  # every pixel matters
    out = depth_geometry_mask(transform, mask, depth, UNKNOWN)
    assert out.shape == (288, 320) and out.dtype == np.uint8
    expected, pix = expected_by_points(cal, mask, depth)
    # a point within 1e-3 px of a pixel border may round either way between the two float paths
    frac = np.abs((pix - np.floor(pix)) - 0.5)
    ambiguous = (frac < 1e-3).any(axis=2)
    assert ambiguous.mean() < 0.01
    np.testing.assert_array_equal(out[~ambiguous], expected[~ambiguous])
    assert (out[20:60, 250:300] == UNKNOWN).all()  # no reading: unknown, not "not occluded"
    assert (out == 0).sum() > 20_000 and (out == 1).sum() > 20_000


def test_depth_pixels_outside_the_colour_view_are_unknown(transform):
    # NFOV sees ~65° vertically, 720p colour ~59°: the depth image's top and bottom rows see no colour pixel
    depth = np.full((288, 320), 2500, np.uint16)
    out = depth_geometry_mask(transform, np.ones((720, 1280), np.uint8), depth, UNKNOWN)
    assert set(np.unique(out)) == {1, UNKNOWN}
    assert (out[0] == UNKNOWN).all() and (out[-1] == UNKNOWN).all() and (out[144, 100:220] == 1).all()


def test_tables_are_built_once_per_calibration_and_size():
    text = device_calibration_json()
    masker, depth = DepthMasker(), scene()
    mask = np.zeros((720, 1280), np.uint8)
    first = masker(text, mask, depth, UNKNOWN)
    for _ in range(3):
        np.testing.assert_array_equal(masker(text, mask, depth, UNKNOWN), first)
    assert masker.builds == 1
    masker(text, np.zeros((1080, 1920), np.uint8), depth, UNKNOWN)  # another colour resolution
    doc = device_calibration()
    doc["CalibrationInformation"]["Cameras"][1]["Rt"]["Translation"][0] += 0.01  # another device
    masker(json.dumps(doc), mask, depth, UNKNOWN)
    assert masker.builds == 3


def test_an_unusable_calibration_or_size_is_one_line_and_parsed_once():
    masker = DepthMasker()
    for _ in range(2):
        with pytest.raises(CalibrationError, match="unusable calibration"):
            masker("{not json", np.zeros((720, 1280), np.uint8), scene(), UNKNOWN)
    assert masker.builds == 1
    with pytest.raises(CalibrationError, match="depth is 300×200, not the size of a depth mode"):
        modes_for((200, 300), (720, 1280))
    with pytest.raises(CalibrationError, match="colour is 320×240, not the size of a colour resolution"):
        modes_for((288, 320), (240, 320))
    assert modes_for((1024, 1024), (3072, 4096)) == ("WFOV_UNBINNED", "3072P")


# ----------------------------------------------------------------------------- the fuser's depth side


def depth_frame(frame_id: int, epoch: int = 5, calibration: str | None = None, aligned: bool = False):
    return m.DepthFrame(
        camera="bed1",
        epoch=epoch,
        frame_id=frame_id,
        ts_us=1000 * frame_id,
        origin_us=7,
        depth=scene(),
        calibration=calibration,
        aligned_to_color=aligned,
    )


def colour_mask(frame_id: int, epoch: int = 5) -> m.OcclusionMask:
    mask = np.zeros((720, 1280), np.uint8)
    mask[200:500, 300:900] = 1
    return m.OcclusionMask(camera="bed1", epoch=epoch, frame_id=frame_id, ts_us=1000 * frame_id, mask=mask)


def test_the_depth_mask_has_the_identity_of_its_colour_mask_and_depth_frame(transform):
    store = DepthFrames()
    store.add(depth_frame(3, calibration=device_calibration_json()))
    for i in (4, 5, 6):
        store.add(depth_frame(i))
    out = store.mask_for(colour_mask(5))
    assert isinstance(out, m.DepthMask)
    assert (out.camera, out.identity, out.ts_us, out.origin_us) == ("bed1", (5, 5), 5000, 0)
    np.testing.assert_array_equal(out.mask, depth_geometry_mask(transform, colour_mask(5).mask, scene(), 255))
    decoded = m.decode([bytes(f) for f in m.encode(out)])  # passes the receiver's checks
    assert isinstance(decoded, m.DepthMask) and np.array_equal(decoded.mask, out.mask)
    # frames up to the fused one are dropped (their coarse masks will not come any more)
    assert [f.frame_id for f in store.frames] == [6]


def test_the_depth_side_says_why_it_cannot():
    store = DepthFrames()
    store.add(depth_frame(1))
    assert store.mask_for(colour_mask(1)) == "no calibration received yet"
    assert store.mask_for(colour_mask(2)) == "no depth frame of the same capture"
    store.add(depth_frame(3, epoch=6, calibration=device_calibration_json()))
    assert store.mask_for(colour_mask(3, epoch=5)) == "no depth frame of the same capture"  # another run
    assert "align_depth_to_color" in (store.add(depth_frame(4, aligned=True)) or "")
    store.add(depth_frame(5, calibration="{garbled"))
    why = store.mask_for(colour_mask(5))
    assert isinstance(why, str) and why.startswith("cannot map into depth: calibration: unusable")


def test_depth_frames_kept_are_bounded():
    store = DepthFrames()
    for i in range(3 * MAX_DEPTH_FRAMES):
        store.add(depth_frame(i))
    assert len(store.frames) == MAX_DEPTH_FRAMES
    assert store.frames[0].frame_id == 2 * MAX_DEPTH_FRAMES


# ----------------------------------------------------------------------------- the config switch


@pytest.mark.parametrize(
    "camera, why",
    [
        ({"source": "mkv", "depth_mode": "OFF"}, "depth_mode is OFF"),
        ({"source": "synthetic"}, "synthetic source"),
        ({"source": "mkv", "align_depth_to_color": True}, "align_depth_to_color to false"),
    ],
)
def test_the_switch_is_refused_without_raw_depth(camera, why):
    from kinect_occlusion.config import validate
    from kinect_occlusion.errors import UserError

    assert validate({"camera": camera}, "c.yaml").fuser.depth_mask is False  # off by default: fine
    with pytest.raises(UserError, match=f"fuser.depth_mask needs raw depth from camera 'bed1': .*{why}"):
        validate({"camera": camera, "fuser": {"depth_mask": True}}, "c.yaml")
    ward = {"cameras": [{"id": "a", "source": "mkv"}, {"id": "b", **camera}], "fuser": {"depth_mask": True}}
    with pytest.raises(UserError, match="camera 'b'"):
        validate(ward, "c.yaml")
    assert validate({"camera": {"source": "mkv"}, "fuser": {"depth_mask": True}}, "c.yaml").fuser.depth_mask


# ----------------------------------------------------------------------------- the client side


def test_the_depth_mask_subscriber_drops_and_counts_lies(ipc_dir):
    import zmq
    from conftest import wait_for

    from kinect_occlusion.client import DepthMaskSubscriber

    endpoint = f"ipc://{ipc_dir}/out"
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.bind(endpoint)

    def good(frame_id: int) -> m.DepthMask:
        mask = np.zeros((288, 320), np.uint8)
        mask[:10] = UNKNOWN
        return m.DepthMask(camera="bed1", frame_id=frame_id, ts_us=frame_id, mask=mask, fused=True)

    lies = [good(1), good(2), good(3), good(4)]
    lies[0].mask = np.full((288, 320), 7, np.uint8)  # a value that is neither 0, 1 nor unknown
    lies[1].mask = np.zeros((300, 300), np.uint8)  # not a depth mode's size
    lies[2].map_ms = -1.0
    lies[3].mask = np.zeros((288, 320), np.uint16)  # not uint8
    try:
        with DepthMaskSubscriber(endpoint, camera="bed1", latest_only=False, rcvhwm=100) as sub:
            # the subscription reaches the publisher: a probe gets through
            assert wait_for(lambda: pub.send_multipart(m.encode(good(0))) or sub.receive(0.05), 10)
            while sub.receive(0.05) is not None:  # probes still queued
                pass
            for lie in lies:
                pub.send_multipart(m.encode(lie))
            pub.send_multipart(m.encode(good(5)))
            got = sub.receive(5.0)
            assert isinstance(got, m.DepthMask) and got.frame_id == 5 and (got.mask[:10] == UNKNOWN).all()
            assert sub.invalid == len(lies)
    finally:
        pub.close(linger=0)


def test_subscribe_save_writes_a_depth_mask_png_with_unknown_in_grey(tmp_path):
    import cv2

    from kinect_occlusion.commands.subscribe import save_message

    mask = np.zeros((288, 320), np.uint8)
    mask[:10], mask[100:120, 50:90] = UNKNOWN, 1
    save_message(m.DepthMask(camera="bed1", frame_id=3, ts_us=3, mask=mask), tmp_path)
    png = cv2.imread(str(tmp_path / "mask_depth_000003.png"), cv2.IMREAD_UNCHANGED)
    assert png.shape == (288, 320) and (png[:10] == 128).all() and (png[100:120, 50:90] == 255).all()
    assert (png[200:] == 0).all()
