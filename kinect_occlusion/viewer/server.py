"""HTTP + WebSocket side of the viewer (aiohttp): pages, token checks, one WebSocket per page.

Routes: ``/`` ward page (every bed as a tile), ``/bed/<camera>`` one bed, ``/static/<file>``, and
``/ws?camera=<id>|*`` which sends binary pictures (see :mod:`.render`) and a JSON status message a
second. Every route needs the token when one is set (query ``token`` once: it is moved to an
HttpOnly cookie and the address is cleaned; or ``Authorization: Bearer``). Nothing is written to disk
and responses are marked ``no-store``.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import threading
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import cast
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from ..errors import UserError
from ..wire import CAMERA_RE
from .hub import ViewerHub
from .security import is_loopback, token_matches

log = logging.getLogger(__name__)

COOKIE = "ko_viewer_token"
STATIC = {"viewer.js": "text/javascript", "viewer.css": "text/css"}
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}
SEND_TIMEOUT_S = 5.0
STATS_PERIOD_S = 1.0
MAX_CONNECTIONS = 128  # HTTP connections at once (pages, static files, WebSockets): bounds sockets and memory
REQUEST_TIMEOUT_S = 10.0  # a connection without a whole request this long (or idle after one) is closed

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _static_text(name: str) -> str:
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


class ViewerServer:
    """Serves the pages of ``hub``'s cameras.

    Args:
        hub: the running :class:`ViewerHub`.
        token: required on every request when set (constant-time compare).
        max_clients: WebSockets served at once (more are refused with 503).
        max_connections: TCP connections at once; more are closed as they arrive (``dropped``).
        request_timeout_s: a connection that has not sent a whole request this long is closed.
    """

    def __init__(
        self,
        hub: ViewerHub,
        token: str | None,
        max_clients: int = 16,
        max_connections: int = MAX_CONNECTIONS,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.hub, self.token, self.max_clients = hub, token or None, max_clients
        self.max_connections, self.request_timeout_s = max_connections, request_timeout_s
        self.sockets: set[web.WebSocketResponse] = set()
        self.refused = 0
        self.dropped = 0  # connections closed on arrival: max_connections were open
        self._handlers: web.Server | None = None
        self._page = _static_text("page.html")
        self._static = {name: _static_text(name) for name in STATIC}

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application(middlewares=[self._guard], client_max_size=4096)
        app.router.add_get("/", self.ward_page)
        app.router.add_get("/bed/{camera}", self.bed_page)
        app.router.add_get("/static/{name}", self.static)
        app.router.add_get("/ws", self.websocket)
        app.on_shutdown.append(self._close_sockets)
        return app

    # ------------------------------------------------------------------ access control

    def _given_token(self, request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[len("Bearer ") :]
        return request.query.get("token") or request.cookies.get(COOKIE)

    def _refuse(self, status: int, reason: str) -> web.Response:
        self.refused += 1
        return web.Response(
            status=status, text=f"kinect-occlusion viewer: {reason}\n", headers=SECURITY_HEADERS
        )

    def _host_allowed(self, request: web.Request) -> bool:
        # Without a token only loopback names: a rebound DNS name must not reach patient video
        if self.token:
            return True
        host = urlsplit(f"//{request.host}").hostname or ""
        return is_loopback(host)

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self._host_allowed(request):
            return self._refuse(403, "this viewer answers loopback names only (set a token to serve others)")
        if not token_matches(self._given_token(request), self.token):
            return self._refuse(401, "a valid token is required: open the address with ?token=…")
        if self.token and "token" in request.query and request.path != "/ws":
            # Move the token into a cookie and out of the address bar and history
            query = {k: v for k, v in request.query.items() if k != "token"}
            raise web.HTTPSeeOther(
                request.rel_url.with_query(query),
                headers={
                    "Set-Cookie": f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/",
                    **SECURITY_HEADERS,
                },
            )
        response = await handler(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    # ------------------------------------------------------------------ pages

    def _render_page(self, kind: str, camera: str) -> web.Response:
        body = self._page.replace("{{kind}}", kind).replace("{{camera}}", html.escape(camera))
        return web.Response(text=body, content_type="text/html")

    async def ward_page(self, request: web.Request) -> web.StreamResponse:
        return self._render_page("ward", "*")

    async def bed_page(self, request: web.Request) -> web.StreamResponse:
        camera = request.match_info["camera"]
        if not CAMERA_RE.fullmatch(camera):
            raise web.HTTPNotFound(text="no such camera id\n")
        return self._render_page("bed", camera)

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        return web.Response(text=self._static[name], content_type=STATIC[name])

    # ------------------------------------------------------------------ websocket

    def _origin_ok(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        return origin is None or urlsplit(origin).netloc == request.host

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        camera = request.query.get("camera", "*")
        if camera != "*" and not CAMERA_RE.fullmatch(camera):
            return self._refuse(400, "camera must be an id or *")
        if not self._origin_ok(request):
            return self._refuse(403, "cross-origin WebSocket refused")
        if len(self.sockets) >= self.max_clients:
            return self._refuse(503, f"{self.max_clients} viewers already connected")
        ws = web.WebSocketResponse(heartbeat=10.0, max_msg_size=4096)
        await ws.prepare(request)
        self.sockets.add(ws)
        self.hub.watch(camera)
        reader = asyncio.create_task(self._read(ws))
        try:
            await self._send_loop(ws, camera, reader)
        except (ConnectionError, asyncio.TimeoutError) as exc:
            log.info("viewer: a page went away (%s)", type(exc).__name__)
        finally:
            self.hub.unwatch(camera)
            self.sockets.discard(ws)
            reader.cancel()
            await ws.close()
        return ws

    async def _read(self, ws: web.WebSocketResponse) -> None:
        # Pages send nothing; reading keeps close frames and pings flowing
        async for msg in ws:
            if msg.type == WSMsgType.ERROR:
                return

    async def _send_loop(self, ws: web.WebSocketResponse, camera: str, reader: asyncio.Task) -> None:
        loop = asyncio.get_running_loop()
        sent: dict[str, int] = {}
        next_stats = 0.0
        period = min(0.05, 0.5 / self.hub.options.max_fps)
        while not ws.closed and not reader.done():
            for cam, seq, packet in self.hub.packets(camera):
                if sent.get(cam) != seq:
                    await asyncio.wait_for(ws.send_bytes(packet), SEND_TIMEOUT_S)
                    sent[cam] = seq
            if loop.time() >= next_stats:
                stats = {"type": "stats", "cameras": self.hub.summaries(camera)}
                await asyncio.wait_for(ws.send_str(json.dumps(stats)), SEND_TIMEOUT_S)
                next_stats = loop.time() + STATS_PERIOD_S
            await asyncio.sleep(period)

    async def _close_sockets(self, app: web.Application) -> None:
        for ws in list(self.sockets):
            await ws.close(code=1001, message=b"viewer stopping")

    @property
    def connections(self) -> int:
        """HTTP connections open now (0 before serving)."""
        return 0 if self._handlers is None else len(self._handlers.connections)

    def protocol_factory(self, handlers: web.Server) -> Callable[[], asyncio.BaseProtocol]:
        """``handlers``' protocol per connection while fewer than ``max_connections`` are open."""
        self._handlers = handlers

        def make() -> asyncio.BaseProtocol:
            if len(handlers.connections) >= self.max_connections:
                self.dropped += 1
                return _Dropped()
            return handlers()

        return make


class _Dropped(asyncio.Protocol):
    """A connection over the limit: closed as soon as it is made (a reset, nothing read)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.Transport, transport).abort()


# ----------------------------------------------------------------------------- running


async def serve(
    server: ViewerServer,
    bind: str,
    port: int,
    stop: threading.Event,
    on_ready: Callable[[int], None] | None = None,
) -> None:
    """Listen on ``bind:port`` until ``stop`` is set; ``on_ready(port)`` once listening."""
    # keepalive_timeout also runs from the connection's start: a request never finished is closed
    runner = web.AppRunner(
        server.app(), access_log=None, shutdown_timeout=1.0, keepalive_timeout=server.request_timeout_s
    )
    await runner.setup()
    listener = None
    try:
        assert runner.server is not None  # made by setup()
        factory = server.protocol_factory(runner.server)
        try:
            listener = await asyncio.get_running_loop().create_server(factory, bind, port)
        except OSError as exc:
            raise UserError(f"viewer: cannot listen on {bind}:{port} ({exc.strerror or exc})") from None
        if on_ready is not None:
            on_ready(listener.sockets[0].getsockname()[1])
        while not stop.is_set():
            await asyncio.sleep(0.1)
    finally:
        if listener is not None:
            listener.close()
        await runner.cleanup()
