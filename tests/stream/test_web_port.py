"""The web port of a real worker, over the session's broker and S3 server, with a token
configured: asked with a plain HTTP client (urllib) as a scraper, a probe, an operator and a
stranger ask it, and opened in headless Chromium as an operator opens it. One worker runs for the
whole module; a Public and a Restricted CAP alert and a JSON alert go in once."""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image

from alertanim.schemas import parse_cap
from tests.support.cap import read
from tests.support.deployment import Pipeline, Worker
from tests.support.dom import Dom
from tests.support.kafka import alert_bytes, consume, publish

TOKEN = "stream-test-token-0123456789"
PUBLIC_CAP = read("nws_tornado_warning.xml")
RESTRICTED_CAP = read("ntwc_tsunami_exercise.xml")  # <scope>Restricted</scope>
PUBLIC_ID, RESTRICTED_ID = parse_cap(PUBLIC_CAP).alert_id, parse_cap(RESTRICTED_CAP).alert_id
JSON_ID = "wp-json"
OPEN = ("/healthz", "/ready", "/metrics")


def fetch(port: int, path: str, headers: dict | None = None):
    """(status, headers, body) of one GET, whatever the status."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


BEARER = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Port:
    pipeline: Pipeline
    worker: Worker
    snap: dict  # /status.json once the Public alerts were ready

    def guarded(self) -> tuple[str, ...]:
        return ("/", "/status.json", f"/alerts/{JSON_ID}/animation.gif",
                f"/alerts/{JSON_ID}/report.html", "/library/fire/animation.gif")


@pytest.fixture(scope="module")
def port(kafka, s3, model_cache, tiny):
    with pytest.MonkeyPatch.context() as env:
        for key in list(os.environ):  # a developer's settings stay out of the worker
            if key.startswith("ALERTANIM_") and key not in ("ALERTANIM_CACHE",
                                                            "ALERTANIM_TEST_LOGS"):
                env.delenv(key)
        p = Pipeline(kafka, s3, model_cache, web_token=TOKEN)
        try:
            worker = p.start_worker()
        except BaseException:
            p.stop()
            raise
    try:
        publish(p.settings, [(PUBLIC_ID, PUBLIC_CAP), (RESTRICTED_ID, RESTRICTED_CAP),
                             (JSON_ID, alert_bytes(JSON_ID, "A fire has broken out"))])
        consume(p.settings, [p.settings.topic_ready], until=lambda r: len(r) >= 3, timeout=300)
        deadline = time.monotonic() + 120
        while True:
            status, _, body = fetch(worker.port, "/status.json", BEARER)
            snap = json.loads(body) if status == 200 else {}
            ready = {a["alert_id"] for a in snap.get("alerts", ()) if a["state"] == "ready"}
            # (a report is drawn after its event: it is in the store a little later)
            if {PUBLIC_ID, JSON_ID} <= ready and fetch(
                    worker.port, f"/alerts/{JSON_ID}/report.html", BEARER)[0] == 200:
                break
            assert time.monotonic() < deadline, f"the page never showed them: {snap}"
            time.sleep(1)
        yield Port(p, worker, snap)
    finally:
        p.stop()


def test_without_the_token_only_health_readiness_and_metrics_answer(port):
    for path in port.guarded():
        status, headers, body = fetch(port.worker.port, path)
        assert status == 401, path
        assert "Bearer" in " ".join(headers.get_all("WWW-Authenticate")), path
        assert b"ALERTANIM_WEB_TOKEN" in body and TOKEN.encode() not in body
    for path in OPEN:
        assert fetch(port.worker.port, path)[0] == 200, path
    wrong = {"Authorization": "Bearer not-the-token-of-this-worker"}
    assert {fetch(port.worker.port, p, wrong)[0] for p in port.guarded()} == {401}


def test_with_the_token_the_page_its_snapshot_and_the_objects_are_served(port):
    got = {p: fetch(port.worker.port, p, BEARER) for p in port.guarded()}
    assert {p: s for p, (s, _, _) in got.items() if not p.startswith("/library")} == {
        p: 200 for p in port.guarded() if not p.startswith("/library")}
    assert got["/library/fire/animation.gif"][0] == 404  # never built, and the store says so
    assert got[f"/alerts/{JSON_ID}/animation.gif"][2][:6] in (b"GIF87a", b"GIF89a")
    assert b"A fire has broken out" in got[f"/alerts/{JSON_ID}/report.html"][2]
    # the worker's own test client sends the token too
    assert port.worker.get("/status.json")[0] == 200


def test_a_host_name_not_allowed_is_refused_even_with_the_token(port):
    rebound = {**BEARER, "Host": f"rebound.attacker.example:{port.worker.port}"}
    for path in port.guarded():
        assert fetch(port.worker.port, path, rebound)[0] == 421, path
    assert fetch(port.worker.port, "/status.json", {**BEARER, "Host": "localhost"})[0] == 200
    assert fetch(port.worker.port, "/ready", {"Host": "10.0.0.7:6066"})[0] == 200  # probes


def test_every_answer_says_nosniff_and_forbids_framing(port):
    asks = [(p, h) for p in (*port.guarded(), *OPEN, "/nowhere", "/alerts/none/report.html")
            for h in ({}, BEARER, {**BEARER, "Host": "evil.example"})]
    seen = set()
    for path, headers in asks:
        status, got, _ = fetch(port.worker.port, path, headers)
        seen.add(status)
        assert got["X-Content-Type-Options"] == "nosniff", (path, status)
        assert "frame-ancestors 'none'" in got["Content-Security-Policy"], (path, status)
    assert seen >= {200, 401, 404, 421}


def test_a_restricted_cap_alert_is_processed_but_kept_off_the_page(port):
    readies = consume(port.pipeline.settings, [port.pipeline.settings.topic_ready],
                      until=lambda r: False, timeout=3)
    assert RESTRICTED_ID in {r.key.decode() for r in readies}  # it was animated
    shown = {a["alert_id"] for a in port.snap["alerts"]}
    assert {PUBLIC_ID, JSON_ID} <= shown and RESTRICTED_ID not in shown
    _, _, page = fetch(port.worker.port, "/", BEARER)
    assert PUBLIC_ID.encode() in page
    assert RESTRICTED_ID.encode() not in page and b"Maine" not in page
    assert fetch(port.worker.port, f"/alerts/{RESTRICTED_ID}/animation.gif", BEARER)[0] == 404


def test_objects_revalidate_with_their_strong_etag(port):
    path = f"/alerts/{JSON_ID}/animation.gif"
    status, headers, body = fetch(port.worker.port, path, BEARER)
    import hashlib

    assert status == 200 and headers["ETag"] == f'"{hashlib.sha256(body).hexdigest()}"'
    again = fetch(port.worker.port, path, {**BEARER, "If-None-Match": headers["ETag"]})
    assert again[0] == 304 and again[2] == b"" and again[1]["ETag"] == headers["ETag"]


def test_the_page_opens_in_chromium_with_the_token_as_the_password(port, chromium, artifacts):
    base = f"http://operator:{TOKEN}@127.0.0.1:{port.worker.port}"
    dom = Dom(chromium(f"{base}/", "--dump-dom").stdout)
    rows = {a["data-id"]: a["data-state"] for a in dom.with_class("alert")}
    assert rows.get(PUBLIC_ID) == rows.get(JSON_ID) == "ready" and RESTRICTED_ID not in rows
    stranger = Dom(chromium(f"http://127.0.0.1:{port.worker.port}/", "--dump-dom").stdout)
    assert not stranger.with_class("alert")
    # the thumbnail the page links, as the browser draws it with the same credentials
    shot = artifacts / "web-port-thumbnail.png"
    shot.unlink(missing_ok=True)
    chromium(f"{base}/alerts/{JSON_ID}/animation.gif", f"--screenshot={shot}",
             "--window-size=320,320")
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    # an image document (the GIF on Chromium's dark ground), not a white page saying 401
    assert (pixels.max(axis=2) < 40).mean() > 0.5 and pixels.std() > 5
    basic = base64.b64encode(f"operator:{TOKEN}".encode()).decode()
    assert fetch(port.worker.port, "/", {"Authorization": f"Basic {basic}"})[0] == 200
