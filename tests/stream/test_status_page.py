"""The status page of a two-worker group over the real broker and S3 server, opened in headless
Chromium as an operator opens it: the same alerts on both workers, thumbnails that decode, a
failed alert with its reason, a report behind its link, and a new alert once it completes."""

import json
import re
import time
import urllib.request

import numpy as np
from PIL import Image

from alertanim.schemas import AnimationReady

from ..browser.test_report_in_chromium import _CHECK, Dom
from .conftest import alert_bytes, consume, publish

TEXTS = ["A fire has broken out in the building",
         "Flash flood warning for the river district, move to higher ground",
         "Tornado warning: take shelter in a basement now"]


def wait_for(worker, predicate, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status, body = worker.get("/status.json")
        snap = json.loads(body) if status == 200 else {}
        if snap and predicate(snap):
            return snap
        if time.monotonic() > deadline:
            raise TimeoutError(f"status never showed what was awaited: {snap}")
        time.sleep(1.0)


def states(snap) -> dict[str, str]:
    return {a["alert_id"]: a["state"] for a in snap["alerts"]}


def checked_copy(worker, artifacts, name: str):
    """The page as served, with `<base>` at the worker and a check that each image decoded
    (the page itself has no script); its self-refresh is left out of the copy."""
    _, body = worker.get("/")
    page = body.decode()
    page = re.sub(r'<meta http-equiv="refresh"[^>]*>', "", page)
    page = page.replace("<head>", f'<head><base href="http://127.0.0.1:{worker.port}/">', 1)
    path = artifacts / name
    path.write_text(page.replace("</body>", _CHECK + "</body>"), encoding="utf-8")
    return path


def test_the_status_page_shows_the_group_in_a_browser(pipeline_factory, chromium, artifacts):
    p = pipeline_factory()
    workers = [p.start_worker(), p.start_worker()]
    ids = [f"st-{i}" for i in range(len(TEXTS))]
    publish(p.settings, [(i, alert_bytes(i, t)) for i, t in zip(ids, TEXTS)]
            + [("st-bad", b'{"id": "st-bad", "text": ""}')])
    consume(p.settings, [p.settings.topic_ready], until=lambda r: len(r) >= len(ids),
            timeout=240)

    def settled(snap):
        s = states(snap)
        return all(s.get(i) == "ready" for i in ids) and s.get("st-bad") == "failed"
    snaps = [wait_for(w, settled) for w in workers]
    # every worker shows the same list, read from the topics, not from its own work
    assert [sorted(states(s).items()) for s in snaps] == [sorted(states(snaps[0]).items())] * 2
    [bad] = [a for a in snaps[0]["alerts"] if a["alert_id"] == "st-bad"]
    assert bad["reason"] == "empty_text"
    stages = {f["stage"]: f for f in snaps[0]["stages"]}
    assert stages["generate"]["count"] >= len(ids) and stages["generate"]["p95_s"] > 0
    lag = wait_for(workers[0], lambda s: s["lag"])["lag"]
    assert set(lag) >= {p.settings.topic_alerts, p.settings.stage_topic("generate")}

    # as a person sees it: a screenshot of the live page, not blank
    url = f"http://127.0.0.1:{workers[1].port}/"
    shot = artifacts / "status.png"
    shot.unlink(missing_ok=True)
    chromium(url, f"--screenshot={shot}", "--window-size=1280,900")
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert pixels.std() > 10

    # the rendered DOM: one row per alert, the failure's reason, thumbnails that decode
    dom = Dom(chromium(checked_copy(workers[1], artifacts, "status-checked.html"),
                       "--dump-dom", "--virtual-time-budget=5000").stdout)
    [body] = [a for tag, a in dom.tags if tag == "body"]
    assert body.get("data-checked") == "yes"
    rows = {a["data-id"]: a for a in dom.with_class("alert")}
    assert {i: rows[i]["data-state"] for i in ids} == {i: "ready" for i in ids}
    assert rows["st-bad"]["data-state"] == "failed" and rows["st-bad"]["data-reason"] == bad["reason"]
    thumbs = [a for a in dom.with_class("thumb")]
    assert len(thumbs) >= len(ids)
    assert all(a.get("data-loaded") == "true" for a in thumbs), thumbs
    assert len(dom.with_class("report")) >= len(ids)

    # the report behind a row's link, served by the worker, opened in the browser
    status, report = workers[0].get(f"/alerts/{ids[0]}/report.html")
    assert status == 200 and TEXTS[0] in report.decode()
    assert workers[0].get("/alerts/st-unknown/report.html")[0] == 404
    assert workers[0].get("/alerts/..%2F..%2Falerts/report.html")[0] == 404
    page = artifacts / "status-report.html"
    page.write_bytes(report)
    rdom = Dom(chromium(page, "--dump-dom", "--virtual-time-budget=5000").stdout)
    assert len(rdom.with_class("candidate")) == p.settings.method.candidates

    # the page updates when a new alert completes
    publish(p.settings, [("st-late", alert_bytes("st-late", "Earthquake: drop, cover, hold on"))])
    wait_for(workers[1], lambda s: states(s).get("st-late") == "ready", timeout=180)
    again = Dom(chromium(url, "--dump-dom").stdout)
    assert {a["data-id"]: a["data-state"] for a in again.with_class("alert")}["st-late"] == "ready"
    assert 'http-equiv="refresh"' in workers[1].get("/")[1].decode()

    # Faust's own sensors share /metrics with the stage metrics; its built-in pages are off
    _, metrics = workers[0].get("/metrics")
    text = metrics.decode()
    assert "alertanim_stage_processed_total" in text and "faust_total_rebalances" in text
    assert re.search(r'alertanim_consumer_group_lag\{topic="[^"]+"\} \d', text)
    for path in ("/router/", "/table/", "/graph/", "/stats/"):
        assert workers[0].get(path)[0] == 404, path

    # the event names the report too
    [ready] = [AnimationReady.from_bytes(r.value) for r in consume(
        p.settings, [p.settings.topic_ready], until=lambda r: False, timeout=3)
        if r.key == ids[0].encode()]
    with urllib.request.urlopen(ready.report.url, timeout=10) as resp:
        assert resp.read() == report
