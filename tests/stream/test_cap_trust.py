"""Trust in CAP over the real broker and S3 server: a Cancel from another sender, or of another
status, stops nothing; a JSON alert cannot squat the id of a CAP message that comes after it.
All on one partition (one key), in the order published, so each refusal comes before the alert
it would have stopped."""

from __future__ import annotations

import collections

from alertanim.schemas import AnimationReady, FailureRecord, parse_cap

from tests.support.cap import quake_cancel, read
from tests.support.kafka import alert_bytes, consume, publish


def test_foreign_and_other_status_cancels_and_a_squatted_id_stop_nothing(pipeline_factory):
    p = pipeline_factory()
    p.start_worker()
    quake, tornado = read("usgs_earthquake_1_1.xml"), read("nws_tornado_warning.xml")
    quake_id, tornado_id = parse_cap(quake).alert_id, parse_cap(tornado).alert_id
    publish(p.settings, [("feed", value) for value in (
        alert_bytes(tornado_id, "Sunny skies all day"),  # squats the tornado's id first
        quake_cancel(sender="prankster@example.org"),  # another sender's Cancel of the quake
        quake_cancel(status="Test"),  # the quake's sender, but a Test Cancel
        quake, tornado)])

    topics = [p.settings.topic_ready, p.settings.topic_failed]
    out = consume(p.settings, topics, timeout=240, until=lambda r: len(r) >= 5)
    ready = [AnimationReady.from_bytes(r.value) for r in out if r.topic == topics[0]]
    failed = [FailureRecord.from_bytes(r.value) for r in out if r.topic == topics[1]]
    assert sorted(e.alert_id for e in ready) == sorted([quake_id, tornado_id])
    assert collections.Counter(f.reason for f in failed) == {
        "reserved_id": 1, "cap_cancel_foreign": 1, "cap_cancel": 1}
    [squat] = [f for f in failed if f.reason == "reserved_id"]
    assert squat.alert_id == tornado_id
    tornado_ready = next(e for e in ready if e.alert_id == tornado_id)
    assert "Sunny" not in (tornado_ready.alt_text or "")  # the tornado's own words animated
