"""Who may watch: loopback by default, a token for anything else (patient video is sensitive)."""

from __future__ import annotations

import hmac
import ipaddress

from ..errors import UserError

MIN_TOKEN_CHARS = 16
TOKEN_ENV = "KINECT_OCCLUSION_VIEWER_TOKEN"
TOKEN_HINT = "e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))'"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and addresses in 127.0.0.0/8 or ``::1``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_problem(bind: str, token: str | None) -> str | None:
    """Why serving on ``bind`` with ``token`` is refused (one line), or None when it is allowed.

    An empty token counts as none.
    """
    if token and len(token) < MIN_TOKEN_CHARS:
        return f"the viewer token must have at least {MIN_TOKEN_CHARS} characters ({TOKEN_HINT})"
    if not is_loopback(bind) and not token:
        return (
            f"refusing to serve patient video on {bind} (not loopback) without a token: set "
            f"viewer.token, --token or ${TOKEN_ENV} ({TOKEN_HINT}), or bind 127.0.0.1"
        )
    return None


def check_bind(bind: str, token: str | None) -> None:
    """Raise UserError with :func:`bind_problem`'s line when the bind is refused."""
    problem = bind_problem(bind, token)
    if problem:
        raise UserError(f"viewer: {problem}")


def token_matches(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; no token configured lets everyone in (loopback only)."""
    if not expected:
        return True
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))
