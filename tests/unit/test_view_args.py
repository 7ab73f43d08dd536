"""``view``'s overriding options are checked by ViewerConfig's own rules, one line naming the option."""

from __future__ import annotations

import math

import pytest

from kinect_occlusion.commands.view import viewer_config
from kinect_occlusion.config import ViewerConfig
from kinect_occlusion.errors import UserError

BASE = ViewerConfig(port=9000, max_fps=5.0, max_width=320)


@pytest.mark.parametrize(
    ("given", "line"),
    [
        ({"max_fps": 30.5}, "--max-fps 30.5: Input should be less than or equal to 30"),
        ({"max_fps": 0.0}, "--max-fps 0.0: Input should be greater than 0"),
        ({"max_fps": -1.0}, "--max-fps -1.0: Input should be greater than 0"),
        ({"max_fps": math.nan}, "--max-fps nan: "),
        ({"max_fps": math.inf}, "--max-fps inf: "),
        ({"port": 65536}, "--port 65536: Input should be less than or equal to 65535"),
        ({"port": -1}, "--port -1: Input should be greater than or equal to 0"),
        ({"max_width": 63}, "--max-width 63: Input should be greater than or equal to 64"),
        ({"max_width": 3841}, "--max-width 3841: Input should be less than or equal to 3840"),
        ({"bind": "0.0.0.0"}, "viewer: refusing to serve patient video on 0.0.0.0"),
        ({"bind": "::", "token": "short"}, "viewer: the viewer token must have at least 16"),
    ],
)
def test_a_value_out_of_the_config_bounds_is_one_line_naming_the_option(given, line):
    with pytest.raises(UserError) as err:
        viewer_config(BASE, **given)
    assert str(err.value).startswith(line), str(err.value)
    assert "\n" not in str(err.value)


def test_values_in_bounds_override_and_none_keeps_the_config():
    token = "a-token-of-20-chars!"
    v = viewer_config(BASE, bind="0.0.0.0", port=0, token=token, max_fps=30.0, max_width=None)
    assert (v.bind, v.port, v.token, v.max_fps, v.max_width) == ("0.0.0.0", 0, token, 30.0, 320)
    assert viewer_config(BASE, port=None, max_fps=None) == BASE
