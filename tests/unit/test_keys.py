"""``keys generate`` roles and the proxy's view of them (issue #10, defect 8)."""

from __future__ import annotations

import os
import stat

import pytest

from kinect_occlusion.bus import load_curve
from kinect_occlusion.cli import main
from kinect_occlusion.errors import UserError


def _server(keys):
    return load_curve(str(keys), "server.key_secret", "client.key_secret", "authorized", server=True)


def _public(keys, name: str) -> bytes:
    return load_curve(
        str(keys), "server.key_secret", f"{name}.key_secret", "authorized", server=False
    ).client_public


def test_generate_puts_each_public_key_under_its_role(tmp_path, capsys):
    keys = tmp_path / "keys"
    assert (
        main(
            ["keys", "generate", str(keys), "--publishers", "client", "bedside1", "--subscribers", "monitor1"]
        )
        == 0
    )
    auth = keys / "authorized"
    assert sorted(p.name for p in (auth / "publishers").iterdir()) == ["bedside1.key", "client.key"]
    assert sorted(p.name for p in (auth / "subscribers").iterdir()) == ["monitor1.key"]
    assert stat.S_IMODE(os.stat(keys / "monitor1.key_secret").st_mode) == 0o600
    allowed = _server(keys).authorized
    bedside, monitor = _public(keys, "bedside1"), _public(keys, "monitor1")
    assert allowed.callback("publishers", bedside) and allowed.callback("subscribers", bedside)
    assert allowed.callback("subscribers", monitor) and not allowed.callback("publishers", monitor)
    assert not allowed.callback("*", bedside) and not allowed.callback("", monitor)
    assert "subscribers (subscribe only): monitor1" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, publishers", [([], ["client.key"]), (["--clients", "a", "b"], ["a.key", "b.key"])]
)
def test_default_and_old_clients_option_make_publishers(tmp_path, args, publishers):
    keys = tmp_path / "keys"
    assert main(["keys", "generate", str(keys), *args]) == 0
    assert sorted(p.name for p in (keys / "authorized" / "publishers").iterdir()) == publishers


@pytest.mark.parametrize(
    "args, message",
    [
        (["--publishers", "a", "--subscribers", "a"], "given twice"),
        (["--publishers", "../x"], "bad key name"),
        (["--subscribers", "server"], "bad key name"),
        (["--publishers", "a", "--clients", "b"], "not both"),
    ],
)
def test_bad_key_names_are_one_line(tmp_path, capsys, args, message):
    assert main(["keys", "generate", str(tmp_path / "keys"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_the_old_flat_layout_says_how_to_migrate(tmp_path):
    keys = tmp_path / "keys"
    assert main(["keys", "generate", str(keys), "--publishers", "client", "monitor"]) == 0
    auth = keys / "authorized"
    for key in (auth / "publishers").iterdir():  # the layout before roles
        key.rename(auth / key.name)
    (auth / "publishers").rmdir()
    with pytest.raises(UserError, match=r"without a role \(client.key, monitor.key\): move .*publishers/"):
        _server(keys)
    (auth / "client.key").unlink()
    (auth / "monitor.key").unlink()
    with pytest.raises(UserError, match="publishers is missing; run 'kinect-occlusion keys generate"):
        _server(keys)
