"""The report the stream stores beside each animation: made from the run's stored images and
values, named in AnimationReady, drawn after the event leaves, and never the reason an alert
fails."""

import json
import re
from pathlib import Path

from alertanim.schemas import AnimationReady
from tests.support.processor import SMALL, drive, make, records


def ready_of(out) -> AnimationReady:
    [(_, value)] = records(out, "ready")
    return AnimationReady.from_bytes(value)


def test_the_report_is_stored_beside_the_animation_and_named_in_ready(tmp_path):
    proc, sent = make(tmp_path)
    out = drive(proc, sent, json.dumps({"id": "r1", "text": "Wildfire near the school"}).encode())
    ready = ready_of(out)
    assert ready.report is not None and ready.report.bytes is None  # drawn after the event
    assert proc.adapter.completion.drain(60)
    page = Path(ready.report.url.removeprefix("file://")).read_text(encoding="utf-8")
    assert ready.report.s3_uri.endswith(f"runs/r1/{ready.run}/report.html")
    # beside the animation: in the run's own folder, where its renditions are
    run_folder = ready.report.s3_uri.removesuffix("report.html")
    assert ready.renditions and all(r.s3_uri.startswith(run_folder) for r in ready.renditions)
    assert "Wildfire near the school" in page
    # as many candidates, variants and frames as the run made, each an inline image
    assert len(re.findall(r'class="candidate[ "]', page)) == SMALL["candidates"]
    assert len(re.findall(r'class="variant[ "]', page)) == SMALL["variants"]
    assert len(re.findall(r'class="frame"', page)) == SMALL["frames"]
    assert page.count('class="candidate best"') == 1
    assert "http://" not in page and "https://" not in page  # nothing fetched to view it
    # the stage bar chart covers the stream's stages, ingest included
    assert set(ready.stage_seconds) >= {"ingest", "generate", "animate"}


def test_a_redelivered_completion_names_the_same_report_with_a_fresh_url(tmp_path):
    proc, sent = make(tmp_path)
    raw = json.dumps({"id": "r2", "text": "Flood warning"}).encode()
    first = ready_of(drive(proc, sent, raw, "alerts:0:1"))
    assert proc.adapter.completion.drain(60)
    again = ready_of(drive(proc, sent, raw, "alerts:0:2"))  # re-published after completion
    assert again.report is not None and again.report.s3_uri == first.report.s3_uri
    # fresh: made again when the completion is sent again, so it expires later than the first
    assert again.report.url_expires_at > first.report.url_expires_at
    page = Path(again.report.url.removeprefix("file://")).read_text(encoding="utf-8")
    assert "Flood warning" in page


def test_reports_can_be_turned_off(tmp_path):
    proc, sent = make(tmp_path, reports=False)
    ready = ready_of(drive(proc, sent, json.dumps({"id": "r3", "text": "Tornado"}).encode()))
    assert ready.report is None
    assert not list(Path(tmp_path).rglob("report.html"))


def test_a_report_that_cannot_be_drawn_does_not_cost_the_alert(tmp_path, monkeypatch):
    import alertanim.pipeline.report

    def broken(fig):
        raise ValueError("plotting failed")
    monkeypatch.setattr(alertanim.pipeline.report, "_plot", broken)  # inside render_report
    proc, sent = make(tmp_path)
    out = drive(proc, sent, json.dumps({"id": "r4", "text": "Tsunami warning"}).encode())
    ready = ready_of(out)
    assert ready.renditions and not records(out, "failed")  # the event went out regardless
    proc.adapter.completion.drain(60)
    # the event named where its report would be; there is none, and nothing else is lost
    assert not Path(ready.report.url.removeprefix("file://")).exists()
