"""The compiled (numba) depth→colour gives exactly the numpy path's output, bit for bit, on recordings,
every depth mode and synthetic scenes with edges, holes, zero depth and occluding surfaces; it is
compiled when a transform is built (at worker start) and cached on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kinect_occlusion.depth import compiled as kernels
from kinect_occlusion.depth.calibration import parse_calibration
from kinect_occlusion.depth.device_calibration import device_calibration_json
from kinect_occlusion.depth.transform import DepthToColor
from kinect_occlusion.sources.k4a_formats import DEPTH_MODES
from kinect_occlusion.sources.mkv import MkvSource

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "k4a"))
from scenes import ward_scene  # noqa: E402

pytestmark = pytest.mark.skipif(not kernels.available(), reason="numba is not installed (the depth extra)")


def _pair(depth_mode: str, color_res: str, text: str | None = None) -> tuple[DepthToColor, DepthToColor]:
    cal = parse_calibration(text or device_calibration_json(), depth_mode, color_res)
    return DepthToColor.build(cal, compiled=False), DepthToColor.build(cal, compiled=True)


@pytest.fixture(scope="module")
def binned():
    """numpy and compiled transforms, NFOV 2×2 binned → 720P (the sample recording's modes)."""
    return _pair("NFOV_2X2BINNED", "720P")


def _assert_same(pair: tuple[DepthToColor, DepthToColor], depth: np.ndarray) -> np.ndarray:
    """Both paths give the same correspondences and the same uint16 image; returns the image."""
    ref, fast = pair
    for a, b in zip(ref.correspondences(depth), fast.correspondences(depth), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    expected, got = ref(depth), fast(depth)
    assert got.dtype == np.uint16 and got.shape == ref.color_shape
    assert np.array_equal(got, expected), f"{(got != expected).sum()} pixels differ"
    return got


@pytest.mark.parametrize(
    "depth_mode, color_res",
    [
        ("NFOV_UNBINNED", "720P"),
        ("NFOV_2X2BINNED", "1080P"),
        ("WFOV_2X2BINNED", "720P"),
        ("WFOV_UNBINNED", "1536P"),
        ("NFOV_UNBINNED", "3072P"),
    ],
)
def test_every_mode_gives_the_numpy_paths_image(depth_mode, color_res):
    out = _assert_same(
        _pair(depth_mode, color_res), ward_scene(*DEPTH_MODES[depth_mode], seed=len(color_res))
    )
    assert (out > 0).mean() > 0.3  # the scene is in view: not an empty comparison


def test_the_recordings_frames_give_the_numpy_paths_image(binned, tmp_path):
    source = MkvSource(ROOT / "recordings" / "sample.mkv")
    frames = [f.depth for f in source.frames() if f.depth is not None]
    assert len(frames) == 15
    for depth in frames[::4]:
        assert (_assert_same(binned, depth) > 0).mean() > 0.3


def test_edges_holes_and_occluders_give_the_numpy_paths_image(binned):
    depth = np.full((288, 320), 2500, np.uint16)
    depth[60:200, 80:240] = 900  # a near box over the wall: depth edges, occlusion
    depth[100:140, 120:160] = 400  # nearer still
    depth[:, 300:] = np.linspace(1000, 5000, 20, dtype=np.uint16)  # a slanted surface along the edge
    depth[150, 50] = depth[10, 10] = 0  # single holes: quads with one interpolated corner
    depth[200:230, 20:60] = 0  # a missing area
    depth[0, :] = 0  # the border row
    depth[::7, 260:280] = 0  # a comb of holes
    out = _assert_same(binned, depth)
    assert ((out > 0) & (out < 1000)).sum() > 10_000 and (out > 2000).sum() > 100_000


def test_no_depth_and_the_extremes_give_the_numpy_paths_image(binned):
    assert not _assert_same(binned, np.zeros((288, 320), np.uint16)).any()
    near = _assert_same(binned, np.full((288, 320), 1, np.uint16))  # 1 mm: mostly outside the colour view
    assert near.max() <= 2
    far = _assert_same(binned, np.full((288, 320), 65535, np.uint16))
    # the colour camera's z reaches ~71.8 m here: what does not fit uint16 is not drawn (before, the
    # float → uint16 cast wrapped it to a few metres)
    assert far.max() == 65534 and far[far > 0].min() > 60_000


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**32 - 1),
    block=st.sampled_from([1, 2, 5, 16]),
    zero_share=st.floats(0, 0.6),
)
def test_random_depth_gives_the_numpy_paths_image(binned, seed, block, zero_share):
    rng = np.random.default_rng(seed)
    coarse = rng.integers(250, 9000, (288 // block + 1, 320 // block + 1)).astype(np.uint16)
    depth = np.repeat(np.repeat(coarse, block, 0), block, 1)[:288, :320].copy()
    depth[rng.random(depth.shape) < zero_share] = 0
    _assert_same(binned, depth)


@pytest.mark.parametrize("step", [1.0, 2.0, 0.5, 1.5, 3.0])
@pytest.mark.parametrize("offset", [0.0, 0.5, 0.25])
def test_pixel_centres_on_triangle_edges_are_decided_as_the_numpy_path_does(step, offset):
    """Correspondences on an exact grid put pixel centres on quad edges and diagonals (the tie rules)."""
    rng = np.random.default_rng(int(step * 8 + offset * 4))
    i, j = np.mgrid[0:40, 0:60].astype(np.float32)
    shear = np.float32(0.5) * i if step == 1.5 else np.float32(0)  # slanted edges through pixel centres
    u, v = j * np.float32(step) + np.float32(offset) + shear, i * np.float32(step) + np.float32(offset)
    z = rng.integers(950, 960, u.shape).astype(np.float32)
    z[10:20, 10:30] += 2000  # a step: edge quads dropped
    valid = rng.random(u.shape) > 0.05  # holes: quads with one interpolated corner
    _assert_same_raster(u, v, z, valid, (100, 150))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), jitter=st.sampled_from([0.0, 0.3, 2.0]))
def test_irregular_and_folded_meshes_give_the_numpy_paths_image(seed, jitter):
    """Jittered, overlapping and folded quads (both windings), near and far surfaces in one image."""
    rng = np.random.default_rng(seed)
    i, j = np.mgrid[0:30, 0:40].astype(np.float32)
    u = j * np.float32(2.5) + rng.normal(0, jitter, j.shape).astype(np.float32) - 5
    v = i * np.float32(2.5) + rng.normal(0, jitter, i.shape).astype(np.float32) - 5
    z = rng.choice(np.array([500, 1500, 1520], np.float32), u.shape) + rng.random(u.shape).astype(np.float32)
    valid = rng.random(u.shape) > 0.1
    _assert_same_raster(u, v, z, valid, (64, 96))


def test_a_quad_exactly_at_the_edge_threshold_is_drawn_as_the_numpy_path_does():
    from kinect_occlusion.depth.transform import SKIP_INTERPOLATION_RATIO as SKIP

    # depths whose spread is exactly the threshold in float32 (a tie of the edge test)
    lo = next(d for d in np.arange(1024, 2048, dtype=np.float32) if d + SKIP * d - d == SKIP * d)
    i, j = np.mgrid[0:3, 0:3].astype(np.float32)
    z = np.full(i.shape, lo, np.float32)
    z[1, 1] = lo + SKIP * lo
    _assert_same_raster(j * 8 + 2, i * 8 + 2, z, np.ones(i.shape, bool), (24, 24), min_drawn=200)


def _assert_same_raster(u, v, z, valid, shape, min_drawn: int = 300) -> None:
    from kinect_occlusion.depth.transform import rasterize

    expected = rasterize(u, v, z, valid, shape)
    got = np.empty(shape, np.uint16)
    kernels.rasterize(u, v, z, valid, got)
    assert np.array_equal(got, expected), f"{(got != expected).sum()} pixels differ"
    assert (expected > 0).sum() > min_drawn  # not an empty comparison


def test_build_without_numba_is_a_clear_error_and_none_falls_back(monkeypatch):
    cal = parse_calibration(device_calibration_json(), "NFOV_2X2BINNED", "720P")
    assert DepthToColor.build(cal).compiled  # numba installed: compiled by default
    monkeypatch.setattr(kernels, "numba", None)
    with pytest.raises(ValueError, match=r"needs numba: pip install -e '\.\[depth\]'"):
        DepthToColor.build(cal, compiled=True)
    assert not DepthToColor.build(cal).compiled


def test_replay_aligns_compiled_and_without_numba_on_the_numpy_path_saying_so(monkeypatch, caplog):
    def first_aligned(source: MkvSource) -> np.ndarray:
        with source:
            assert source.depth_aligned
            frame = next(iter(source.frames()))
        assert frame.depth is not None and frame.depth.shape == (720, 1280)
        return frame.depth

    sample = ROOT / "recordings" / "sample.mkv"
    fast = first_aligned(MkvSource(sample, align_depth=True, max_frames=1))
    assert "numpy path" not in caplog.text
    monkeypatch.setattr(kernels, "numba", None)
    with caplog.at_level("INFO"):
        slow = first_aligned(MkvSource(sample, align_depth=True, max_frames=1))
    assert "sample.mkv: depth→colour on the numpy path (~8× slower): pip install -e '.[depth]'" in caplog.text
    assert np.array_equal(fast, slow) and (fast > 0).mean() > 0.3


_CHILD = """
import json, time
import numpy as np
from kinect_occlusion.depth import compiled as kernels
from kinect_occlusion.depth.calibration import parse_calibration
from kinect_occlusion.depth.device_calibration import device_calibration_json
from kinect_occlusion.depth.transform import DepthToColor
cal = parse_calibration(device_calibration_json(), "NFOV_2X2BINNED", "720P")
before = len(kernels.rasterize.signatures)
t0 = time.perf_counter()
transform = DepthToColor.build(cal)
print(json.dumps({"before": before, "after": len(kernels.rasterize.signatures),
                  "hits": sum(kernels.rasterize.stats.cache_hits.values()),
                  "misses": sum(kernels.rasterize.stats.cache_misses.values()),
                  "build_s": time.perf_counter() - t0}))
"""


def _child(cache: Path) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_kernels_compile_when_built_and_load_from_the_disk_cache_after(tmp_path):
    cold, warm = _child(tmp_path), _child(tmp_path)
    print(f"build with a cold numba cache {cold['build_s']:.2f} s, warm {warm['build_s']:.2f} s")
    # built = compiled: the first frame does not pay for it
    assert cold["before"] == 0 and cold["after"] == 1 and cold["misses"] == 1 and cold["hits"] == 0
    assert warm["after"] == 1 and warm["hits"] == 1 and warm["misses"] == 0  # from the cache
    assert any(tmp_path.rglob("*.nbc"))
