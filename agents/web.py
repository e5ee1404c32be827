"""The worker's web port: the status page and its snapshot, the thumbnails and reports of the
alerts on the page (read from the store by keys the ledger derives, never by a path a client
names), health, readiness and Prometheus metrics.

Who gets what:

- `/healthz`, `/ready` and `/metrics` answer anyone who reaches the port, whatever the Host
  (probes and scrapers name a pod by its address).
- The rest (`/`, `/status.json`, the stored objects) answers only a request whose Host is in
  `WEB_ALLOWED_HOSTS` (anything else is 421: a DNS name rebound to this port is not one of
  them), and only a client that presents `WEB_TOKEN`: `Authorization: Bearer <token>`, or HTTP
  Basic with the token as the password, as a browser sends it after the 401's challenge. Until a
  token is configured, those routes answer clients on loopback only, and not through a proxy
  that says it forwarded the request (403 says so).
- Every answer, errors included, carries `X-Content-Type-Options: nosniff` and a
  Content-Security-Policy with `frame-ancestors 'none'`.

Where it runs: an aiohttp server of its own on a thread and event loop of its own (`WebPort`,
registered with Faust's `app.web_server`; Faust's own aiohttp stack and its pages are never
built), so a flood of viewers never holds up the loop that polls Kafka. The routes touch nothing
of that loop but through `Routes.on_board`: the status board is copied there (`freeze`, a few
list copies) at most once a second, and drawn from the copy on the page threads; `/ready` and
`/healthz` ask that loop too, so they answer only while it runs. The page and `/status.json`
are drawn at most once per `PAGE_TTL_S`; stored objects come from a bounded LRU of their bytes
with strong ETags (their SHA-256) and `If-None-Match`, and at most `STORE_READS` store reads run
at a time: one more is 503 with `Retry-After` at once, never a queue.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import copy
import dataclasses
import hashlib
import hmac
import ipaddress
import json
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import hdrs, web
from faust import Service

from alertanim.pipeline.library import entries
from alertanim.schemas.errors import ArtifactMissing

from .status import Board, render_status

log = logging.getLogger("alertanim")

PAGE_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
OTHER_CSP = "default-src 'none'"  # JSON, text, metrics and errors: nothing to load
NO_FRAMES = "frame-ancestors 'none'"
PUBLIC = frozenset({"/healthz", "/ready", "/metrics"})  # for anyone who reaches the port

PAGE_TTL_S = 1.0  # the page and /status.json are drawn at most this often
STORE_READS = 4  # store reads in flight at once; one more is refused with 503
OBJECT_CACHE_BYTES = 32 * 2**20  # the stored objects kept in memory, at most
OBJECT_CACHE_ONE = OBJECT_CACHE_BYTES // 8  # a larger object is served, not kept
BOARD_TIMEOUT_S = 5.0  # how long a route waits for the stream's event loop
RETRY_AFTER_S = 1
IMMUTABLE = "private, max-age=86400, immutable"  # a run's objects never change under their keys

NO_TOKEN = ("This worker has no ALERTANIM_WEB_TOKEN: its status page, /status.json and stored "
            "objects answer clients on loopback only (127.0.0.1, ::1, not through a proxy). "
            "Set ALERTANIM_WEB_TOKEN and send Authorization: Bearer <token>.\n")
ASK_TOKEN = "Send the worker's ALERTANIM_WEB_TOKEN: Authorization: Bearer <token>.\n"
FORWARDED = (hdrs.FORWARDED, hdrs.X_FORWARDED_FOR, hdrs.X_FORWARDED_HOST, "X-Real-IP")


# -- who may ask --------------------------------------------------------------------------------
def _host_name(header: str) -> str:
    """The name in a Host header, without its port; IPv6 addresses keep their brackets."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[:header.find("]") + 1] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def allowed_hosts(names) -> frozenset[str]:
    out = set()
    for name in names:
        name = name.strip().lower()
        if ":" in name and not name.startswith("["):  # an IPv6 address written bare
            name = f"[{name}]"
        out.add(name)
    return frozenset(out)


def host_allowed(header: str | None, allowed: frozenset[str]) -> bool:
    if "*" in allowed:
        return True
    return header is not None and _host_name(header) in allowed


def is_loopback(remote: str | None) -> bool:
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def presented(authorization: str | None) -> str | None:
    """The credential in an Authorization header: a Bearer token, or a Basic password."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "bearer":
        return value or None
    if scheme == "basic":
        try:
            return base64.b64decode(value, validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return None
    return None


def credential_ok(authorization: str | None, token: str) -> bool:
    given = presented(authorization)
    return given is not None and hmac.compare_digest(given.encode("utf-8"),
                                                     token.encode("utf-8"))


def merged_csp(csp: str | None) -> str:
    """A response's policy with framing forbidden."""
    csp = (csp or OTHER_CSP).strip().rstrip(";")
    return csp if "frame-ancestors" in csp else f"{csp}; {NO_FRAMES}"


def _plain(status: int, text: str, headers=None) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain", headers=headers)


def _busy(text: str) -> web.Response:
    return _plain(503, text, {hdrs.RETRY_AFTER: str(RETRY_AFTER_S)})


def harden(response: web.StreamResponse) -> web.StreamResponse:
    h = response.headers
    h["X-Content-Type-Options"] = "nosniff"
    h["Content-Security-Policy"] = merged_csp(h.get("Content-Security-Policy"))
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Referrer-Policy", "no-referrer")
    h.setdefault(hdrs.CACHE_CONTROL, "no-store")
    return response


# -- the board, seen from the web thread ------------------------------------------------------
def freeze(board: Board) -> Board:
    """A copy of `board` that later records never change: its rows copied, its queues and maps
    copied (the entries in them are never changed in place). Run it where the board is fed."""
    twin = copy.copy(board)
    for name, value in vars(board).items():
        if isinstance(value, OrderedDict):
            setattr(twin, name, OrderedDict(
                (k, dataclasses.replace(v) if dataclasses.is_dataclass(v) else v)
                for k, v in value.items()))
        elif isinstance(value, (deque, dict, list, set)):
            setattr(twin, name, value.copy())
    return twin


@dataclass(frozen=True)
class Cached:
    data: bytes
    etag: str  # strong: the bytes' SHA-256


def cached(data: bytes) -> Cached:
    return Cached(data, f'"{hashlib.sha256(data).hexdigest()}"')


class ObjectCache:
    """The last stored objects served, by key, bounded by their total bytes (LRU). Used from the
    web loop only."""

    def __init__(self, max_bytes: int = OBJECT_CACHE_BYTES, max_one: int = OBJECT_CACHE_ONE):
        self.max_bytes, self.max_one = max_bytes, max_one
        self._items: OrderedDict[str, Cached] = OrderedDict()
        self.bytes = 0

    def get(self, key: str) -> Cached | None:
        hit = self._items.get(key)
        if hit is not None:
            self._items.move_to_end(key)
        return hit

    def put(self, key: str, item: Cached) -> None:
        if len(item.data) > self.max_one or key in self._items:
            return
        self._items[key] = item
        self.bytes += len(item.data)
        while self.bytes > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self.bytes -= len(old.data)

    def __len__(self) -> int:
        return len(self._items)


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = [t.strip() for t in if_none_match.split(",")]
    return "*" in tags or any(t.removeprefix("W/") == etag for t in tags)


class Routes:
    """What the web port serves, and the state it keeps for that. The aiohttp application is
    `make_app(routes)`; `board_loop` is the loop the board is fed on (None: the web loop's own,
    as in tests)."""

    def __init__(self, *, settings, stages: tuple[str, ...], board: Board, ledger, store,
                 metrics, page_threads, library, ready_now: Callable[[], tuple[bool, str]],
                 board_loop: asyncio.AbstractEventLoop | None = None):
        self.settings, self.stages, self.board = settings, stages, board
        self.ledger, self.store, self.metrics = ledger, store, metrics
        self.page_threads, self.library, self.ready_now = page_threads, library, ready_now
        self.board_loop = board_loop
        self.allowed = allowed_hosts(settings.web_allowed_hosts)
        self.token = settings.web_token.get_secret_value() if settings.web_token else None
        self.known = {e.name for e in entries()}
        self.cache = ObjectCache()
        self.draws = 0  # pages and snapshots drawn (each at most once per PAGE_TTL_S)
        self._frozen: tuple[float, Board] | None = None
        self._drawn: dict[str, tuple[Board, bytes]] = {}
        self._locks: dict[str, asyncio.Lock] | None = None
        self._reads: asyncio.Semaphore | None = None

    def on_startup(self) -> None:
        """Make the locks on the loop that will serve (called by the application's startup)."""
        self._locks = {"freeze": asyncio.Lock(), "draw": asyncio.Lock()}
        self._reads = asyncio.Semaphore(STORE_READS)

    # -- who may ask ---------------------------------------------------------------------------
    def refusal(self, request: web.Request) -> web.Response | None:
        """Why `request` may not have a route that is not for anyone; None when it may."""
        host = request.headers.get(hdrs.HOST)
        if host is None:
            return _plain(400, "A Host header is required.\n")
        if not host_allowed(host, self.allowed):
            return _plain(421, "This worker does not answer to that Host name "
                               "(ALERTANIM_WEB_ALLOWED_HOSTS).\n")
        if self.token is None:
            if is_loopback(request.remote) and not any(h in request.headers for h in FORWARDED):
                return None
            return _plain(403, NO_TOKEN)
        if credential_ok(request.headers.get(hdrs.AUTHORIZATION), self.token):
            return None
        refused = _plain(401, ASK_TOKEN)
        refused.headers.add(hdrs.WWW_AUTHENTICATE, 'Bearer realm="alertanim"')
        refused.headers.add(hdrs.WWW_AUTHENTICATE, 'Basic realm="alertanim", charset="UTF-8"')
        return refused

    # -- the stream's loop ---------------------------------------------------------------------
    async def on_board(self, fn: Callable[[], object]):
        """`fn()` run on the loop the board is fed on, its result here."""
        loop = self.board_loop
        if loop is None or loop is asyncio.get_running_loop():
            return fn()
        done: concurrent.futures.Future = concurrent.futures.Future()

        def call() -> None:
            if done.set_running_or_notify_cancel():
                try:
                    done.set_result(fn())
                except BaseException as exc:  # noqa: BLE001 - handed to the waiting route
                    done.set_exception(exc)

        loop.call_soon_threadsafe(call)
        return await asyncio.wait_for(asyncio.wrap_future(done), BOARD_TIMEOUT_S)

    async def frozen(self) -> Board:
        """The board as it was at most PAGE_TTL_S ago."""
        async with self._locks["freeze"]:
            now = time.monotonic()
            if self._frozen is None or now - self._frozen[0] >= PAGE_TTL_S:
                self._frozen = (now, await self.on_board(lambda: freeze(self.board)))
            return self._frozen[1]

    async def drawn(self, kind: str) -> bytes:
        """The page ("page") or the snapshot ("json") of the current frozen board, drawn on a
        page thread once per frozen board."""
        board = await self.frozen()
        async with self._locks["draw"]:
            hit = self._drawn.get(kind)
            if hit is not None and hit[0] is board:
                return hit[1]
            body = await asyncio.get_running_loop().run_in_executor(
                self.page_threads, self._draw, kind, board)
            self._drawn[kind] = (board, body)
            self.draws += 1
            return body

    def _draw(self, kind: str, board: Board) -> bytes:
        if kind == "json":
            return json.dumps(board.snapshot()).encode("utf-8")
        try:
            shelf = self.library.listing()
        except Exception:  # noqa: BLE001 - the store is away: the page goes on without it
            shelf = None
        return render_status(board, worker=f"{self.settings.app_id} · {', '.join(self.stages)}",
                             library=shelf).encode("utf-8")

    # -- the store -----------------------------------------------------------------------------
    def _fetch(self, key: str) -> Cached:
        return cached(self.store.get(key))

    async def stored(self, request: web.Request, key: str, content_type: str) -> web.Response:
        hit = self.cache.get(key)
        if hit is None:
            if self._reads.locked():
                return _busy("Too many objects being read from the store; try again.\n")
            async with self._reads:
                try:
                    hit = await asyncio.get_running_loop().run_in_executor(
                        self.page_threads, self._fetch, key)
                except ArtifactMissing:
                    return _plain(404, "Not in the store.\n")
                except Exception as exc:  # noqa: BLE001 - unreachable: the page goes on
                    return _busy(f"Store unavailable: {type(exc).__name__}.\n")
            self.cache.put(key, hit)
        headers = {hdrs.CACHE_CONTROL: IMMUTABLE, hdrs.ETAG: hit.etag}
        if content_type == "text/html":  # the report: inline images and style, nothing else
            headers["Content-Security-Policy"] = REPORT_CSP
        if _matches(request.headers.get(hdrs.IF_NONE_MATCH), hit.etag):
            return web.Response(status=304, headers=headers)
        return web.Response(body=hit.data, content_type=content_type,
                            charset="utf-8" if content_type == "text/html" else None,
                            headers=headers)

    # -- the routes ----------------------------------------------------------------------------
    async def status_page(self, request: web.Request) -> web.Response:
        return web.Response(body=await self.drawn("page"), content_type="text/html",
                            charset="utf-8", headers={"Content-Security-Policy": PAGE_CSP})

    async def status_json(self, request: web.Request) -> web.Response:
        return web.Response(body=await self.drawn("json"), content_type="application/json")

    async def thumbnail(self, request: web.Request) -> web.Response:
        alert_id = request.match_info["alert_id"]
        row = (await self.frozen()).ready_run(alert_id)  # only alerts on the page
        if row is None or "image/gif" not in row.media:
            return _plain(404, "No such animation.\n")
        return await self.stored(request, self.ledger.rendition_key(alert_id, row.run,
                                                                    "image/gif"), "image/gif")

    async def report(self, request: web.Request) -> web.Response:
        alert_id = request.match_info["alert_id"]
        row = (await self.frozen()).ready_run(alert_id)
        if row is None or not row.report:
            return _plain(404, "No such report.\n")
        return await self.stored(request, self.ledger.report_key(alert_id, row.run),
                                 "text/html")

    async def library_thumbnail(self, request: web.Request) -> web.Response:
        entry = request.match_info["entry"]
        if entry not in self.known:  # only entries the library can hold; keys from the ledger
            return _plain(404, "No such entry.\n")
        return await self.stored(request, self.ledger.library_rendition_key(
            self.library.run, entry, "image/gif"), "image/gif")

    async def library_report(self, request: web.Request) -> web.Response:
        entry = request.match_info["entry"]
        if entry not in self.known:
            return _plain(404, "No such entry.\n")
        return await self.stored(request, self.ledger.library_report_key(self.library.run,
                                                                         entry), "text/html")

    async def healthz(self, request: web.Request) -> web.Response:
        try:  # alive: the loop that polls Kafka still runs
            await self.on_board(lambda: None)
        except (asyncio.TimeoutError, RuntimeError):
            return web.json_response({"ok": False, "detail": "the stream's event loop did not "
                                      f"answer within {BOARD_TIMEOUT_S:g} s"}, status=503)
        return web.json_response({"ok": True})

    async def readiness(self, request: web.Request) -> web.Response:
        try:
            ok, why = await self.on_board(self.ready_now)
        except (asyncio.TimeoutError, RuntimeError):
            ok, why = False, "the stream's event loop did not answer"
        return web.json_response({"ready": ok, "detail": why, "stages": list(self.stages)},
                                 status=200 if ok else 503)

    async def prometheus(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(),
                            headers={hdrs.CONTENT_TYPE: "text/plain; version=0.0.4"})


def make_app(routes: Routes) -> web.Application:
    """The aiohttp application of the web port."""

    @web.middleware
    async def guard(request: web.Request, handler) -> web.StreamResponse:
        try:
            refused = None if request.path in PUBLIC else routes.refusal(request)
            response = refused if refused is not None else await handler(request)
        except web.HTTPException as exc:  # the router's 404 and 405 among them
            extra = {k: v for k, v in exc.headers.items()
                     if k not in (hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH)}
            response = _plain(exc.status, f"{exc.reason}\n", extra)
        except asyncio.TimeoutError:  # the stream's loop did not answer in time
            response = _busy("The worker is busy; try again.\n")
        except Exception:  # noqa: BLE001 - one bad request never takes the port down
            log.exception("web port: %s %s failed", request.method, request.path)
            response = _plain(500, "Internal error.\n")
        return harden(response)

    async def startup(app: web.Application) -> None:
        routes.on_startup()

    app = web.Application(middlewares=[guard])
    app.on_startup.append(startup)
    add = app.router.add_get
    add("/", routes.status_page)
    add("/status.json", routes.status_json)
    add("/alerts/{alert_id}/animation.gif", routes.thumbnail)
    add("/alerts/{alert_id}/report.html", routes.report)
    add("/library/{entry}/animation.gif", routes.library_thumbnail)
    add("/library/{entry}/report.html", routes.library_report)
    add("/healthz", routes.healthz)
    add("/ready", routes.readiness)
    add("/metrics", routes.prometheus)
    return app


class WebPort(Service):
    """The web port's aiohttp server on a thread and event loop of its own, started and stopped
    with the Faust app (`app.web_server(WebPort(...))`); the loop it starts on is the board's."""

    def __init__(self, routes: Routes, host: str, port: int, **kwargs):
        super().__init__(**kwargs)
        self.routes, self.host, self.port = routes, host, port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def on_start(self) -> None:
        self.routes.board_loop = asyncio.get_running_loop()
        started: concurrent.futures.Future = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._serve, args=(started,),
                                        name="alertanim-web", daemon=True)
        self._thread.start()
        await asyncio.wrap_future(started)  # the port is bound, or why not
        log.info("web port on %s:%s", self.host, self.port)

    def _serve(self, started: concurrent.futures.Future) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(make_app(self.routes), access_log=None, shutdown_timeout=5.0)
        try:
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, self.host, self.port).start())
        except BaseException as exc:  # noqa: BLE001 - a port in use, say: the worker stops
            loop.run_until_complete(runner.cleanup())
            loop.close()
            started.set_exception(exc)
            return
        self._loop = loop
        started.set_result(None)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    async def on_stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 10)
