"""The web port as a client sees it, served by aiohttp on loopback from fakes of the store and
the library: who is answered, with which headers, from which cache, and how many store reads at
once. The same port on a real worker: tests/stream/test_web_port.py."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import pytest
from aiohttp import web as aioweb
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from alertanim.agents import web
from alertanim.agents.ledger import Ledger
from alertanim.agents.metrics import Metrics
from alertanim.agents.settings import Settings
from alertanim.agents.status import Board
from alertanim.schemas import (Alert, AnimationReady, CapRef, FailureRecord, StageMessage,
                               parse_cap)
from alertanim.schemas.errors import ArtifactMissing

TOKEN = "t0ken-for-the-web-port-tests"
RUN = "0123456789ab"
GIF = b"GIF89a" + bytes(range(200))
CAP_REF = CapRef(sender="w@example.org", identifier="X1", sent="2024-05-01T10:00:00+00:00")


class Store:
    """Objects by key; `gate` (an Event) holds every read until it is set."""

    def __init__(self, objects: dict[str, bytes], gate: threading.Event | None = None):
        self.objects, self.gate, self.reads = objects, gate, 0
        self.lock = threading.Lock()

    def get(self, key: str) -> bytes:
        with self.lock:
            self.reads += 1
        if self.gate is not None:
            assert self.gate.wait(10)
        if key not in self.objects:
            raise ArtifactMissing(key)
        return self.objects[key]


class Library:
    run = "lib0"

    def listing(self):
        return []


def stage_msg(alert_id: str, scope: str | None = None, cap: CapRef | None = None,
              text: str = "Wildfire near the school") -> bytes:
    return StageMessage(alert=Alert(id=alert_id, text=text, scope=scope, cap=cap),
                        stage="animate", run=RUN, seed=1, received_at=time.time()).to_bytes()


def ready(alert_id: str, cap: CapRef | None = None) -> bytes:
    return AnimationReady(
        alert_id=alert_id, run=RUN, renditions=[{
            "media_type": "image/gif", "s3_uri": "s3://b/k", "url": "http://x/k",
            "url_expires_at": 0, "bytes": 10, "width": 8, "height": 8, "frame_count": 2,
            "duration_ms": 100}], subject="fire", prompt="fire", clip_score=20.0,
        stage_seconds={"generate": 1.0}, latency_seconds=2.0, model_ids={},
        pipeline_version="0", report={"s3_uri": "s3://b/r", "url": "http://x/r",
                                      "url_expires_at": 0}, cap=cap).to_bytes()


def failed(alert_id: str | None, payload: str, reason: str = "invalid_cap") -> bytes:
    return FailureRecord(alert_id=alert_id, stage="ingest", reason=reason, error_class="x",
                         message="m", attempts=1, transient=False, payload=payload,
                         payload_bytes=len(payload), payload_sha256="ab" * 32,
                         failed_at=0).to_bytes()


def routes(tmp_path, store: Store | None = None, ready_ids=("a",), threads: int = 2,
           **settings) -> web.Routes:
    s = Settings(store="local", local_dir=str(tmp_path), **settings)
    board = Board(s)
    for alert_id in ready_ids:
        board.observe(s.stage_topic("animate"), stage_msg(alert_id), 1)
        board.observe(s.topic_ready, ready(alert_id), 2)
    ledger = Ledger(None, 60)
    if store is None:
        store = Store({ledger.rendition_key(i, RUN, "image/gif"): GIF + i.encode()
                       for i in ready_ids}
                      | {ledger.report_key(i, RUN): b"<!DOCTYPE html><p>report</p>"
                         for i in ready_ids})
    return web.Routes(settings=s, stages=("ingest",), board=board, ledger=ledger, store=store,
                      metrics=Metrics(), page_threads=ThreadPoolExecutor(threads),
                      library=Library(), ready_now=lambda: (True, "1 partitions assigned"))


def serve(r: web.Routes, scenario):
    """`scenario(client)` against the port, served on loopback in a loop of its own."""
    async def main():
        async with TestClient(TestServer(web.make_app(r))) as client:
            return await scenario(client)
    return asyncio.run(main())


BEARER = {"Authorization": f"Bearer {TOKEN}"}
GUARDED = ("/", "/status.json", "/alerts/a/animation.gif", "/alerts/a/report.html",
           "/library/fire/animation.gif", "/library/fire/report.html")
OPEN = ("/healthz", "/ready", "/metrics")


def statuses(r, paths, headers=None) -> dict[str, int]:
    async def go(client):
        out = {}
        for p in paths:
            async with client.get(p, headers=headers or {}) as resp:
                await resp.read()
                out[p] = resp.status
        return out
    return serve(r, go)


# -- who is answered ----------------------------------------------------------------------------
def test_health_ready_and_metrics_answer_anyone_the_rest_only_the_token(tmp_path):
    r = routes(tmp_path, web_token=TOKEN)
    assert statuses(r, OPEN) == {p: 200 for p in OPEN}
    assert set(statuses(r, GUARDED).values()) == {401}
    wrong = statuses(r, GUARDED, {"Authorization": "Bearer not-the-token-at-all"})
    assert set(wrong.values()) == {401}
    right = statuses(r, GUARDED, BEARER)
    # the library entries were never built: the store says so
    assert right == {**{p: 200 for p in GUARDED[:4]}, **{p: 404 for p in GUARDED[4:]}}


def test_a_browser_gets_a_challenge_and_may_answer_it_with_basic(tmp_path):
    r = routes(tmp_path, web_token=TOKEN)

    async def go(client):
        async with client.get("/") as refused:
            challenges = refused.headers.getall("WWW-Authenticate")
            body = await refused.text()
        basic = base64.b64encode(f"operator:{TOKEN}".encode()).decode()
        async with client.get("/", headers={"Authorization": f"Basic {basic}"}) as ok:
            return challenges, body, ok.status
    challenges, body, status = serve(r, go)
    assert any(c.startswith("Basic") for c in challenges)
    assert any(c.startswith("Bearer") for c in challenges)
    assert "ALERTANIM_WEB_TOKEN" in body and TOKEN not in body
    assert status == 200


def test_the_token_is_compared_in_constant_time():
    with mock.patch.object(web.hmac, "compare_digest", wraps=web.hmac.compare_digest) as cmp:
        assert web.credential_ok(f"Bearer {TOKEN}", TOKEN)
        assert not web.credential_ok("Bearer nope", TOKEN)
    assert cmp.call_count == 2
    assert not web.credential_ok(None, TOKEN) and not web.credential_ok("Basic !!", TOKEN)


def request(path: str, remote: str, headers: dict | None = None):
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (remote, 40000) if name == "peername" else default)
    return make_mocked_request("GET", path, headers={"Host": "127.0.0.1:6066", **(headers or {})},
                               transport=transport)


def test_without_a_token_only_loopback_clients_are_answered_and_told_why(tmp_path):
    r = routes(tmp_path)
    assert r.refusal(request("/", "127.0.0.1")) is None
    assert r.refusal(request("/", "::1")) is None
    assert r.refusal(request("/", "::ffff:127.0.0.1")) is None
    far = r.refusal(request("/", "10.1.2.3"))
    assert far.status == 403 and "ALERTANIM_WEB_TOKEN" in far.text
    # a proxy on the same machine makes everyone local: what it forwards is not answered
    proxied = r.refusal(request("/", "127.0.0.1", {"X-Forwarded-For": "203.0.113.9"}))
    assert proxied.status == 403
    # with a token, loopback is not enough
    assert routes(tmp_path, web_token=TOKEN).refusal(request("/", "127.0.0.1")).status == 401
    # and the served answer (a loopback client over TCP)
    assert statuses(r, GUARDED[:2]) == {"/": 200, "/status.json": 200}


def test_a_host_not_in_the_allowlist_is_refused(tmp_path):
    r = routes(tmp_path, web_token=TOKEN)
    evil = {**BEARER, "Host": "rebound.attacker.example:6066"}
    assert set(statuses(r, GUARDED, evil).values()) == {421}
    assert statuses(r, OPEN, {"Host": "10.0.0.7:6066"}) == {p: 200 for p in OPEN}  # probes
    for host in ("localhost:6066", "LOCALHOST", "127.0.0.1", "[::1]:6066"):
        assert statuses(r, ["/status.json"], {**BEARER, "Host": host}) == {"/status.json": 200}
    named = routes(tmp_path, web_token=TOKEN, web_allowed_hosts=("status.example.org", "::1"))
    assert statuses(named, ["/"], {**BEARER, "Host": "status.example.org"}) == {"/": 200}
    assert statuses(named, ["/"], {**BEARER, "Host": "localhost"}) == {"/": 421}
    assert web.host_allowed("[::1]:1", web.allowed_hosts(["::1"]))
    hostless = make_mocked_request("GET", "/", headers={})
    assert r.refusal(hostless).status == 400


def test_every_answer_has_nosniff_and_forbids_framing(tmp_path):
    r = routes(tmp_path, web_token=TOKEN)

    async def go(client):
        seen = {}
        cases = [(p, BEARER) for p in (*GUARDED, *OPEN, "/nowhere", "/alerts/zz/report.html")]
        cases += [("/", {}), ("/", {**BEARER, "Host": "evil.example"})]
        for path, headers in cases:
            async with client.get(path, headers=headers) as resp:
                seen[(path, resp.status)] = resp.headers
        async with client.post("/", headers=BEARER) as resp:
            seen[("POST /", resp.status)] = resp.headers
        return seen
    seen = serve(r, go)
    assert {s for _, s in seen} >= {200, 401, 404, 405, 421}
    for where, headers in seen.items():
        assert headers["X-Content-Type-Options"] == "nosniff", where
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], where
    page = seen[("/", 200)]["Content-Security-Policy"]
    assert page.startswith(web.PAGE_CSP) and page.count("frame-ancestors") == 1
    report = seen[("/alerts/a/report.html", 200)]["Content-Security-Policy"]
    assert report.startswith(web.REPORT_CSP)


# -- scope ---------------------------------------------------------------------------------------
def test_an_alert_not_for_the_public_is_kept_off_the_page_and_the_snapshot(tmp_path):
    r = routes(tmp_path, ready_ids=("a",))
    b, s = r.board, r.settings
    b.observe(s.stage_topic("animate"), stage_msg("secret", scope="Restricted",
                                                  text="Evacuate the vault only"), 3)
    b.observe(s.topic_ready, ready("secret"), 4)
    # a CAP alert seen only by its ready event: its scope is unknown, so it is not shown
    b.observe(s.topic_ready, ready("cap-unknown", cap=CAP_REF), 5)
    # a CAP alert that failed at ingest: the document itself says Private
    private = CAP_PRIVATE.decode()
    b.observe(s.topic_failed, failed(parse_cap(CAP_PRIVATE).alert_id, private), 6)
    # a Public CAP alert, and a cut payload whose scope cannot be read: id and reason only
    b.observe(s.stage_topic("animate"), stage_msg("cap-public", scope="Public", cap=CAP_REF), 7)
    b.observe(s.topic_ready, ready("cap-public", cap=CAP_REF), 8)
    cut = FailureRecord.from_bytes(failed("cap-cut", "<alert>Restricted words")).model_copy(
        update={"payload_truncated": True})
    b.observe(s.topic_failed, cut.to_bytes(), 9)
    b.observe(s.topic_ready, ready("cap-cut", cap=CAP_REF), 10)  # still unknown: not shown

    async def go(client):
        async with client.get("/status.json") as snap, client.get("/") as page:
            async with client.get("/alerts/secret/animation.gif") as gif:
                return await snap.json(), await page.text(), gif.status
    snap, page, gif = serve(r, go)
    shown = {a["alert_id"]: a for a in snap["alerts"]}
    assert set(shown) == {"a", "cap-public", "cap-cut"}
    assert (shown["cap-cut"]["state"], shown["cap-cut"]["reason"]) == ("failed", "invalid_cap")
    assert shown["cap-cut"]["text"] == "" and shown["cap-cut"]["subject"] is None
    for words in ("vault", "secret", "Private words", "cap-unknown", "Restricted words"):
        assert words not in page and words not in json.dumps(snap)
    assert gif == 404
    assert snap["read"] == 10  # every record was read; only the rows are left out


CAP_PRIVATE = b"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>P-1</identifier><sender>w@example.org</sender>
  <sent>2024-05-01T10:00:00+00:00</sent><status>Actual</status><msgType>Alert</msgType>
  <scope>Private</scope><addresses>ops</addresses>
  <info><category>Safety</category><event>Drill</event><urgency>Immediate</urgency>
  <severity>Minor</severity><certainty>Observed</certainty>
  <headline>Private words for the staff</headline></info>
</alert>"""


# -- caches and bounds ---------------------------------------------------------------------------
def test_the_page_and_snapshot_are_drawn_once_a_second_at_most(tmp_path, monkeypatch):
    r = routes(tmp_path)
    drawn = []
    real = web.render_status
    monkeypatch.setattr(web, "render_status", lambda *a, **kw: drawn.append(1) or real(*a, **kw))

    async def go(client):
        bodies = []
        for _ in range(2):
            for path in ("/", "/status.json"):
                async with client.get(path) as resp:
                    bodies.append(await resp.read())
        r.board.observe(r.settings.stage_topic("animate"), stage_msg("later"), 3)
        async with client.get("/status.json") as resp:
            within = await resp.json()
        await asyncio.sleep(web.PAGE_TTL_S + 0.1)
        async with client.get("/status.json") as resp:
            after = await resp.json()
        return bodies, within, after
    bodies, within, after = serve(r, go)
    assert len(drawn) == 1 and bodies[0] == bodies[2] and bodies[1] == bodies[3]
    assert "later" not in {a["alert_id"] for a in within["alerts"]}  # the same second's copy
    assert "later" in {a["alert_id"] for a in after["alerts"]}
    assert r.draws == 3  # page, snapshot, snapshot a second later


def test_objects_have_strong_etags_answer_304_and_come_from_a_bounded_cache(tmp_path):
    r = routes(tmp_path, ready_ids=("a", "b"))
    key = r.ledger.rendition_key("a", RUN, "image/gif")
    etag = f'"{hashlib.sha256(r.store.objects[key]).hexdigest()}"'

    async def go(client):
        async with client.get("/alerts/a/animation.gif") as first:
            body, headers = await first.read(), first.headers
        async with client.get("/alerts/a/animation.gif",
                              headers={"If-None-Match": etag}) as again:
            not_modified = (again.status, await again.read(), again.headers.get("ETag"))
        async with client.get("/alerts/a/animation.gif",
                              headers={"If-None-Match": '"other"'}) as other:
            return body, headers, not_modified, other.status
    body, headers, not_modified, other = serve(r, go)
    assert body == r.store.objects[key] and headers["ETag"] == etag
    assert headers["Content-Type"] == "image/gif" and "immutable" in headers["Cache-Control"]
    assert not_modified == (304, b"", etag) and other == 200
    assert r.store.reads == 1  # the rest came from memory

    cache = web.ObjectCache(max_bytes=1000, max_one=400)
    for i in range(5):
        cache.put(f"k{i}", web.cached(bytes(300)))
    assert cache.bytes <= 1000 and len(cache) == 3 and cache.get("k0") is None
    cache.put("big", web.cached(bytes(500)))
    assert cache.get("big") is None  # served, never kept


def test_store_reads_beyond_the_bound_are_refused_at_once_with_503(tmp_path):
    ids = [f"a{i}" for i in range(web.STORE_READS + 1)]
    gate = threading.Event()
    r = routes(tmp_path, ready_ids=ids, threads=8)
    r.store.gate = gate

    async def go(client):
        async def fetch(i):
            async with client.get(f"/alerts/{i}/animation.gif") as resp:
                return resp.status, resp.headers.get("Retry-After"), await resp.read()
        held = [asyncio.create_task(fetch(i)) for i in ids[:-1]]
        while r.store.reads < web.STORE_READS:
            await asyncio.sleep(0.01)
        t0 = time.monotonic()
        refused = await fetch(ids[-1])
        waited = time.monotonic() - t0
        gate.set()
        return refused, waited, [s for s, _, _ in await asyncio.gather(*held)]
    (status, retry_after, _), waited, held = serve(r, go)
    assert (status, retry_after) == (503, str(web.RETRY_AFTER_S))
    assert waited < 1.0 and held == [200] * web.STORE_READS
    assert r.store.reads == web.STORE_READS  # the refused one never reached the store


def test_a_store_that_is_away_is_503_and_a_missing_object_404(tmp_path):
    class Away(Store):
        def get(self, key):
            raise ConnectionError("refused")
    r = routes(tmp_path, store=Away({}))
    out = statuses(r, ["/alerts/a/animation.gif", "/alerts/nobody/animation.gif"])
    assert out == {"/alerts/a/animation.gif": 503, "/alerts/nobody/animation.gif": 404}


# -- off the stream's loop -----------------------------------------------------------------------
def get(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}),
                                    timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_the_port_runs_on_its_own_thread_and_reads_the_board_on_its_loop(tmp_path, monkeypatch):
    from deploy.local.harness import free_port

    r = routes(tmp_path, web_token=TOKEN)
    where = {}
    real_freeze = web.freeze

    def freeze(board):
        where["freeze"] = threading.get_ident()
        return real_freeze(board)
    monkeypatch.setattr(web, "freeze", freeze)
    monkeypatch.setattr(web, "BOARD_TIMEOUT_S", 0.5)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    clients = ThreadPoolExecutor(4)

    async def main():
        where["board"] = threading.get_ident()
        service = web.WebPort(r, "127.0.0.1", port)
        await service.start()
        loop = asyncio.get_running_loop()
        try:
            ok = await loop.run_in_executor(clients, get, f"{base}/status.json", BEARER)
            # the board's loop is stuck: the port still answers, and says so
            stuck = [clients.submit(get, f"{base}{p}") for p in ("/healthz", "/metrics")]
            time.sleep(1.5)
            stuck = [f.result() for f in stuck]
            after = await loop.run_in_executor(clients, get, f"{base}/ready")
            # a second port on the same address cannot start, and says why
            with pytest.raises(OSError):
                await web.WebPort(r, "127.0.0.1", port).start()
        finally:
            await service.stop()
        return ok, stuck, after
    ok, (healthz, metrics), after = asyncio.run(main())
    clients.shutdown()
    assert ok[0] == 200 and json.loads(ok[1])["alerts"]
    assert where["freeze"] == where["board"]
    assert healthz[0] == 503 and b"did not answer" in healthz[1]
    assert metrics[0] == 200 and b"alertanim_stage_processed" in metrics[1]
    assert after[0] == 200 and json.loads(after[1])["ready"] is True
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{base}/healthz", timeout=2)  # stopped


def test_settings_default_to_loopback_and_refuse_a_short_token():
    s = Settings()
    assert s.web_host == "127.0.0.1" and s.web_token is None
    assert web.allowed_hosts(s.web_allowed_hosts) == {"localhost", "127.0.0.1", "[::1]"}
    with pytest.raises(ValueError, match="web_token"):
        Settings(web_token="short")
    assert TOKEN not in repr(Settings(web_token=TOKEN))


# -- the report's own policy ---------------------------------------------------------------------
def test_the_report_carries_its_own_content_security_policy(tiny):
    from alertanim.pipeline.config import MethodConfig
    from alertanim.pipeline.report import CSP, render_report
    from alertanim.pipeline.workflow import run_workflow

    config = MethodConfig(candidates=3, variants=4, frames=3, inbetween=1, steps=2)
    page = render_report(run_workflow(tiny, "A fire has broken out", seed=1, config=config),
                         config)
    head = page[:page.index("</head>")]
    assert CSP == web.REPORT_CSP
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in head
    assert head.index("Content-Security-Policy") < head.index("<style>")
