"""The instant tier without a broker: the scene library's entries, and the instant event ingest
sends beside its hand-over, with the events' CloudEvents and trace headers."""

import asyncio
import json

import pytest

from alertanim.agents.emitter import Position
from alertanim.agents.events import TYPES, valid_traceparent
from alertanim.pipeline.library import entries
from alertanim.schemas import AnimationReady, InstantAnimation, StageMessage
from tests.support.processor import FakeEmitter, make

TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def build(proc, *names):
    wanted = [e for e in entries() if e.name in names]
    return proc.adapter.library.build(proc.adapter.host.models(), wanted)


@pytest.fixture
def with_fire(tmp_path, tiny):
    proc, sent = make(tmp_path)
    assert build(proc, "fire") == ["fire"]
    return proc, sent


def ingest_step(proc, sent, alert_id, text, traceparent=None, at=Position("alerts", 0, 1)):
    """Ingest one alert read at `at`: what it sent, and those records' headers."""
    before = len(sent)
    asyncio.run(proc.process("ingest", json.dumps({"id": alert_id, "text": text}).encode(),
                             at, None, traceparent))
    return sent[before:], sent.headers[before:]


def test_a_library_entry_is_stored_whole_and_a_second_build_renders_nothing(with_fire):
    proc, _ = with_fire
    entry = proc.adapter.library.get("fire")
    assert entry.hazard == "fire" and entry.run == proc.adapter.run
    assert {r.media_type for r in entry.renditions} >= {"image/gif", "image/webp"}
    for r in entry.renditions:  # every rendition is in the store under the run's library
        key = proc.adapter.ledger.library_rendition_key(entry.run, "fire", r.media_type)
        assert len(proc.adapter.store.get(key)) == r.bytes
    assert proc.adapter.store.exists(entry.report_key)
    assert build(proc, "fire") == []  # already there: nothing rendered again


def test_ingest_sends_the_instant_event_with_its_hand_over(with_fire):
    proc, sent = with_fire
    out, headers = ingest_step(proc, sent, "i1", "A fire has broken out in the building", TRACE)
    assert [t for t, _, _ in out] == ["alertanim.stage.subject", "instant"]
    instant = InstantAnimation.from_bytes(out[1][2])
    msg = StageMessage.from_bytes(out[0][2])
    assert instant.alert_id == "i1" and instant.entry == "fire" and instant.hazard == "fire"
    assert instant.subject == "fire" and instant.language == "en"
    assert instant.run == msg.run and instant.library_run == proc.adapter.run
    assert "A fire has broken out" in instant.alt_text
    gif = instant.rendition("image/gif")
    assert gif.url and gif.bytes > 0
    # CloudEvents binary mode on the event, and one trace from the alert's own header on
    ce = headers[1]
    assert ce["ce_specversion"] == b"1.0" and ce["ce_type"] == TYPES["instant"].encode()
    assert ce["ce_id"] == f"i1.{msg.run}.instant".encode() and ce["ce_subject"] == b"i1"
    assert ce["content-type"] == b"application/json" and ce["ce_source"].startswith(b"/")
    for h in headers:
        parent = valid_traceparent(h["traceparent"])
        assert parent and parent.split("-")[1] == TRACE.split("-")[1]
        assert parent.split("-")[2] != TRACE.split("-")[2]  # a span of its own
    assert msg.traceparent.split("-")[1] == TRACE.split("-")[1]
    # the subject stage finds the same hazard, and sends no second event
    before = len(sent)
    asyncio.run(proc.process("subject", out[0][2], Position("alertanim.stage.subject", 0, 1)))
    assert [t for t, _, _ in sent[before:]] == ["alertanim.stage.generate"]
    told = StageMessage.from_bytes(sent[-1][2]).artifacts["subject"].value
    assert told["hazard"] == instant.hazard and told["word"] == instant.subject
    # the same record read again after it went out (no transactions: it is marked) sends none
    again, _ = ingest_step(proc, sent, "i1", "A fire has broken out in the building", TRACE)
    assert [t for t, _, _ in again] == ["alertanim.stage.subject"]


def test_a_copy_under_another_record_sends_no_instant_event(with_fire):
    proc, sent = with_fire
    first, _ = ingest_step(proc, sent, "i5", "Fire in the tower block", at=Position("alerts", 0, 3))
    copy, _ = ingest_step(proc, sent, "i5", "Fire in the tower block", at=Position("alerts", 1, 8))
    assert [t for t, _, _ in first] == ["alertanim.stage.subject", "instant"]
    assert [t for t, _, _ in copy] == ["alertanim.stage.subject"]


def test_an_alert_whose_entry_is_not_built_gets_no_instant_event(with_fire):
    proc, sent = with_fire
    out, _ = ingest_step(proc, sent, "i2", "Flash flood warning for the valley")
    assert [t for t, _, _ in out] == ["alertanim.stage.subject"]


def test_instant_events_can_be_turned_off(tmp_path, tiny):
    proc, sent = make(tmp_path, instant=False)
    build(proc, "fire")
    out, _ = ingest_step(proc, sent, "i3", "A fire has broken out in the building")
    assert [t for t, _, _ in out] == ["alertanim.stage.subject"]


def test_the_instant_event_leaves_in_the_hand_overs_transaction(with_fire):
    proc, sent = with_fire
    proc.outbox.emitter = FakeEmitter(out=False)
    ingest_step(proc, sent, "i4", "A fire has broken out in the building")
    *_, last = proc.outbox.emitter.transactions
    assert last == (0, ["alertanim.stage.subject", "instant"], 2)


def test_a_ready_event_carries_cloudevents_headers_and_the_alerts_trace(tmp_path, tiny):
    proc, sent = make(tmp_path)
    asyncio.run(proc.process("ingest", json.dumps({"id": "r1", "text": "fire"}).encode(),
                             Position("alerts", 0, 0), None, TRACE))
    for stage in ("subject", "generate", "score", "mask", "sample", "select", "animate"):
        asyncio.run(proc.process(stage, sent[-1][2]))
    topic, key, value = sent[-1]
    ready = AnimationReady.from_bytes(value)
    headers = sent.headers[-1]
    assert topic == "ready" and headers["ce_type"] == TYPES["ready"].encode()
    assert headers["ce_id"] == f"r1.{ready.run}.ready".encode()
    assert valid_traceparent(headers["traceparent"]).split("-")[1] == TRACE.split("-")[1]


def test_an_instant_event_the_broker_refuses_does_not_cost_the_alert(with_fire):
    class Refusing(FakeEmitter):
        async def emit(self, topic, partition, records, next_offset):
            if any(r[0] == "instant" for r in records):
                raise ValueError("the broker refuses the record")  # not worth a retry
            await super().emit(topic, partition, records, next_offset)

    proc, sent = with_fire
    proc.outbox.emitter = Refusing(out=False)
    ingest_step(proc, sent, "i6", "A fire has broken out in the building")
    assert proc.outbox.emitter.transactions == [(0, ["alertanim.stage.subject"], 2)]
    assert [t for t, _, _ in sent] == []  # no failure record
