"""The status page of a two-worker group over the session's broker and S3 server, opened in
headless Chromium as an operator opens it. One group runs for the whole module: three alerts
that complete and one that fails go in once, and each test checks one thing the page shows."""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image

from alertanim.schemas import AnimationReady
from tests.support.deployment import Pipeline, Worker
from tests.support.dom import CHECK_IMAGES, Dom
from tests.support.kafka import alert_bytes, consume, publish

TEXTS = ["A fire has broken out in the building",
         "Flash flood warning for the river district, move to higher ground",
         "Tornado warning: take shelter in a basement now"]
IDS = [f"st-{i}" for i in range(len(TEXTS))]
BAD = "st-bad"  # empty text: refused at ingest


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


def settled(snap) -> bool:
    s = states(snap)
    return all(s.get(i) == "ready" for i in IDS) and s.get(BAD) == "failed"


def checked_copy(worker, artifacts, name: str):
    """The page as served, with `<base>` at the worker and a check that each image decoded
    (the page itself has no script); its self-refresh is left out of the copy."""
    _, body = worker.get("/")
    page = body.decode()
    page = re.sub(r'<meta http-equiv="refresh"[^>]*>', "", page)
    page = page.replace("<head>", f'<head><base href="http://127.0.0.1:{worker.port}/">', 1)
    path = artifacts / name
    path.write_text(page.replace("</body>", CHECK_IMAGES + "</body>"), encoding="utf-8")
    return path


@dataclass
class Group:
    pipeline: Pipeline
    workers: list[Worker]
    snaps: list[dict]  # each worker's /status.json once every alert had ended

    @property
    def settings(self):
        return self.pipeline.settings


@pytest.fixture(scope="module")
def group(kafka, s3, model_cache, tiny):
    with pytest.MonkeyPatch.context() as env:
        # as the per-test cleaning does: a developer's settings stay out of the workers
        for key in list(os.environ):
            if key.startswith("ALERTANIM_") and key not in ("ALERTANIM_CACHE",
                                                            "ALERTANIM_TEST_LOGS"):
                env.delenv(key)
        p = Pipeline(kafka, s3, model_cache)
        try:
            workers = [p.start_worker(), p.start_worker()]
        except BaseException:
            p.stop()
            raise
    try:
        publish(p.settings, [(i, alert_bytes(i, t)) for i, t in zip(IDS, TEXTS)]
                + [(BAD, b'{"id": "st-bad", "text": ""}')])
        consume(p.settings, [p.settings.topic_ready], until=lambda r: len(r) >= len(IDS),
                timeout=240)
        yield Group(p, workers, [wait_for(w, settled) for w in workers])
    finally:
        p.stop()


def test_every_worker_shows_the_same_alerts_read_from_the_topics(group):
    first, second = (sorted(states(s).items()) for s in group.snaps)
    assert first == second
    assert dict(first) == {**{i: "ready" for i in IDS}, BAD: "failed"}


def test_a_failed_alert_is_listed_with_its_reason(group):
    [bad] = [a for a in group.snaps[0]["alerts"] if a["alert_id"] == BAD]
    assert bad["state"] == "failed" and bad["reason"] == "empty_text"


def test_each_stage_shows_how_many_it_did_and_how_long_they_took(group):
    stages = {f["stage"]: f for f in group.snaps[0]["stages"]}
    assert stages["generate"]["count"] >= len(IDS) and stages["generate"]["p95_s"] > 0


def test_the_groups_lag_is_shown_per_topic_it_reads(group):
    lag = wait_for(group.workers[0], lambda s: s["lag"])["lag"]
    assert set(lag) >= {group.settings.topic_alerts, group.settings.stage_topic("generate")}


def test_a_screenshot_of_the_live_page_is_not_blank(group, chromium, artifacts):
    shot = artifacts / "status.png"
    shot.unlink(missing_ok=True)
    chromium(f"http://127.0.0.1:{group.workers[1].port}/", f"--screenshot={shot}",
             "--window-size=1280,900")
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert pixels.std() > 10


def test_the_rendered_page_has_a_row_per_alert_and_thumbnails_that_decode(group, chromium,
                                                                          artifacts):
    dom = Dom(chromium(checked_copy(group.workers[1], artifacts, "status-checked.html"),
                       "--dump-dom", "--virtual-time-budget=5000").stdout)
    [body] = [a for tag, a in dom.tags if tag == "body"]
    assert body.get("data-checked") == "yes"
    rows = {a["data-id"]: a for a in dom.with_class("alert")}
    assert {i: rows[i]["data-state"] for i in IDS} == {i: "ready" for i in IDS}
    assert (rows[BAD]["data-state"], rows[BAD]["data-reason"]) == ("failed", "empty_text")
    thumbs = dom.with_class("thumb")
    assert len(thumbs) >= len(IDS)
    assert all(a.get("data-loaded") == "true" for a in thumbs), thumbs
    assert len(dom.with_class("report")) >= len(IDS)


def test_a_rows_report_is_served_by_the_worker_and_opens_in_the_browser(group, chromium,
                                                                        artifacts):
    status, report = group.workers[0].get(f"/alerts/{IDS[0]}/report.html")
    assert status == 200 and TEXTS[0] in report.decode()
    page = artifacts / "status-report.html"
    page.write_bytes(report)
    rdom = Dom(chromium(page, "--dump-dom", "--virtual-time-budget=5000").stdout)
    assert len(rdom.with_class("candidate")) == group.settings.method.candidates


def test_no_report_is_served_for_an_unknown_alert_or_a_path_outside_the_alerts(group):
    assert group.workers[0].get("/alerts/st-unknown/report.html")[0] == 404
    assert group.workers[0].get("/alerts/..%2F..%2Falerts/report.html")[0] == 404


def test_the_event_names_the_report_the_page_links(group):
    [ready] = [AnimationReady.from_bytes(r.value) for r in consume(
        group.settings, [group.settings.topic_ready], until=lambda r: False, timeout=3)
        if r.key == IDS[0].encode()]
    _, served = group.workers[0].get(f"/alerts/{IDS[0]}/report.html")
    with urllib.request.urlopen(ready.report.url, timeout=10) as resp:
        assert resp.read() == served


def test_faust_shares_metrics_with_the_stages_and_its_own_pages_are_off(group):
    _, metrics = group.workers[0].get("/metrics")
    text = metrics.decode()
    assert "alertanim_stage_processed_total" in text and "faust_total_rebalances" in text
    assert re.search(r'alertanim_consumer_group_lag\{topic="[^"]+"\} \d', text)
    for path in ("/router/", "/table/", "/graph/", "/stats/"):
        assert group.workers[0].get(path)[0] == 404, path


def test_the_page_refreshes_itself_and_shows_an_alert_that_completes_later(group, chromium):
    assert 'http-equiv="refresh"' in group.workers[1].get("/")[1].decode()
    publish(group.settings, [("st-late", alert_bytes("st-late",
                                                     "Earthquake: drop, cover, hold on"))])
    wait_for(group.workers[1], lambda s: states(s).get("st-late") == "ready", timeout=180)
    again = Dom(chromium(f"http://127.0.0.1:{group.workers[1].port}/", "--dump-dom").stdout)
    assert {a["data-id"]: a["data-state"] for a in again.with_class("alert")}["st-late"] == "ready"
