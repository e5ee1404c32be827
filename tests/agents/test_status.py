"""The status board as data: what it keeps, in what order, and how it is drawn."""

import time

from alertanim.agents.settings import Settings
from alertanim.agents.status import Board, render_status
from alertanim.schemas import Alert, AnimationReady, FailureRecord, StageMessage, Value

S = Settings()


def stage_msg(alert_id: str, stage: str, text: str = "Wildfire near the school",
              subject: str | None = None) -> bytes:
    artifacts = {"subject": Value(value={"word": subject})} if subject else {}
    return StageMessage(alert=Alert(id=alert_id, text=text), stage=stage, run="0123456789ab",
                        seed=1, received_at=time.time(), artifacts=artifacts).to_bytes()


def ready(alert_id: str, seconds: float = 1.0) -> bytes:
    return AnimationReady(
        alert_id=alert_id, run="0123456789ab", renditions=[{
            "media_type": "image/gif", "s3_uri": "s3://b/k", "url": "http://x/k",
            "url_expires_at": 0, "bytes": 10, "width": 8, "height": 8, "frame_count": 2,
            "duration_ms": 100}], subject="fire", prompt="fire", clip_score=20.0,
        stage_seconds={"ingest": 0.01, "generate": seconds, "animate": 0.5},
        latency_seconds=seconds + 1, model_ids={}, pipeline_version="0").to_bytes()


def failed(alert_id: str | None, reason: str = "empty_text") -> bytes:
    return FailureRecord(alert_id=alert_id, stage="ingest", reason=reason, error_class="x",
                         message="m", attempts=1, transient=False, payload="{}",
                         payload_bytes=2, payload_sha256="ab" * 32, failed_at=0).to_bytes()


def board(**kw) -> Board:
    return Board(S, **kw)


def test_an_alert_only_moves_forward_through_its_stages_to_ready():
    b = board()
    b.observe(S.stage_topic("generate"), stage_msg("a", "generate", subject="fire"), 1)
    b.observe(S.stage_topic("subject"), stage_msg("a", "subject"), 2)  # read late: no step back
    [row] = b.recent()
    assert (row.state, row.subject) == ("generate", "fire")
    b.observe(S.topic_ready, ready("a"), 3)
    [row] = b.recent()
    assert row.state == "ready" and row.media == ("image/gif",) and row.latency_s == 2.0
    b.observe(S.topic_failed, failed("a"), 4)  # a late record of a copy: the alert went out
    assert b.recent()[0].state == "ready"


def test_failures_show_their_reason_even_without_an_id():
    b = board()
    b.observe(S.topic_failed, failed("x", "not_json"), 1)
    b.observe(S.topic_failed, failed(None, "not_utf8"), 2)
    rows = b.recent()
    assert [(r.state, r.reason) for r in rows] == [("failed", "not_utf8"), ("failed", "not_json")]
    assert rows[0].alert_id.startswith("(no id)")


def test_the_board_keeps_the_last_n_and_skips_what_it_cannot_read():
    b = board(keep=3)
    for i in range(5):
        b.observe(S.stage_topic("subject"), stage_msg(f"a{i}", "subject"), i)
    b.observe(S.topic_ready, b"not json", 9)
    assert [r.alert_id for r in b.recent()] == ["a4", "a3", "a2"]
    assert b.read == 6


def test_stage_figures_cover_the_window_only():
    now = [1000.0]
    b = board(window_s=60, clock=lambda: now[0])
    for i, seconds in enumerate([1.0, 2.0, 3.0, 4.0, 100.0]):
        b.observe(S.topic_ready, ready(f"a{i}", seconds), 990 + i)
    gen = {f.stage: f for f in b.figures()}["generate"]
    assert (gen.count, gen.p50_s, gen.p95_s) == (5, 3.0, 100.0)
    now[0] = 2000.0
    b.observe(S.topic_ready, ready("late", 7.0), 2000)  # the old ones leave the window
    gen = {f.stage: f for f in b.figures()}["generate"]
    assert (gen.count, gen.p50_s) == (1, 7.0)


def test_the_page_escapes_what_alerts_say_and_fetches_nothing_from_outside():
    b = board()
    b.observe(S.stage_topic("subject"), stage_msg("a1", "subject",
                                                  text="<img src=http://evil/x>fire"), 1)
    b.observe(S.topic_failed, failed('x"><script>alert(1)</script>'), 1)
    b.observe(S.topic_ready, ready("ok"), 2)
    page = render_status(b)
    assert "<script>" not in page and "<img src=http://evil" not in page
    assert "&lt;img src=http://evil/x&gt;fire" in page
    assert 'src="/alerts/ok/animation.gif"' in page
    assert "http://" not in page.replace("http://evil/x", "")
    assert '<meta http-equiv="refresh"' in page and 'data-ready="1"' in page


def test_the_page_shows_the_scene_library_with_each_entrys_thumbnail_and_report(tmp_path):
    from alertanim.pipeline.library import entries
    from alertanim.schemas import LibraryEntry, Rendition

    gif = Rendition(media_type="image/gif", s3_uri="s3://b/k", url="u", url_expires_at=1.0,
                    bytes=10, width=8, height=8, frame_count=2, duration_ms=100)
    every = entries()
    fire = next(e for e in every if e.name == "fire")
    stored = LibraryEntry(entry="fire", run="0123456789ab", hazard="fire", subject="fire",
                          prompt=fire.subject.prompt, renditions=[gif], alt_text="x",
                          report_key="library/0123456789ab/fire/report.html", clip_score=1.0,
                          built_at=1.0)
    shelf = [(e, stored if e.name == "fire" else None) for e in every]
    page = render_status(Board(Settings(store="local", local_dir=str(tmp_path))),
                         library=shelf)
    assert f"Scene library (1 of {len(every)} entries)" in page
    assert 'src="/library/fire/animation.gif"' in page
    assert 'href="/library/fire/report.html"' in page
    assert page.count('data-stored="false"') == len(every) - 1
    assert 'href="/library/flood/report.html"' not in page  # not built: no link
