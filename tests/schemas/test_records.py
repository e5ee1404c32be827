"""The wire contracts: what each topic's record accepts, refuses and keeps stable."""

import json

import pytest
from pydantic import ValidationError

from alertanim.schemas import (AlertanimError, AnimationReady, FailureRecord, InvalidAlert, InvalidMessage,
                     Rendition, StageMessage, StoreUnavailable, parse_alert)
from alertanim.schemas.errors import REASONS


def alert(**fields) -> bytes:
    return json.dumps({"id": "a-1", "text": "A fire has broken out", **fields}).encode()


def test_v1_alerts_and_alerts_without_a_version_are_accepted():
    assert parse_alert(alert(schema_version=1)).id == "a-1"
    assert parse_alert(alert()).text == "A fire has broken out"


def test_event_codes_travel_as_cap_pairs():
    a = parse_alert(alert(event_codes=[{"value_name": "SAME", "value": "TOR"}]))
    assert a.code_pairs() == (("SAME", "TOR"),)
    assert parse_alert(a.to_bytes()).code_pairs() == (("SAME", "TOR"),)
    assert parse_alert(alert()).code_pairs() == ()
    for bad in ([{"value": "TOR"}], [{"value_name": "SAME", "value": ""}], "TOR",
                [{"value_name": "SAME", "value": "TOR"}] * 33):
        with pytest.raises(InvalidAlert):
            parse_alert(alert(event_codes=bad))


@pytest.mark.parametrize("raw, reason", [
    (b"\xff", "not_utf8"),
    (b"{", "not_json"),
    (b"[" * 50_000, "not_json"),
    (b'{"id": "x", "text": "t", "n": ' + b"1" * 5_000 + b"}", "not_json"),
    (b"[1]", "not_object"),
    (json.dumps({"id": "x"}).encode(), "missing_field"),
    (alert(text="  "), "empty_text"),
    (alert(text=7), "invalid_field"),
    (alert(id="../x"), "invalid_field"),
    (alert(event="e" * 300), "invalid_field"),
    (alert(area="a" * 3_000), "invalid_field"),
    (alert(schema_version=9), "unknown_schema_version"),
])
def test_bad_alerts_are_refused_with_their_reason(raw, reason):
    with pytest.raises(InvalidAlert) as caught:
        parse_alert(raw)
    assert caught.value.reason == reason and reason in REASONS
    assert isinstance(caught.value, AlertanimError) and not caught.value.transient


def test_text_longer_than_the_limit_is_refused():
    with pytest.raises(InvalidAlert, match="limit is 10") as caught:
        parse_alert(alert(text="x" * 11), max_chars=10)
    assert caught.value.reason == "text_too_long" and caught.value.alert_id == "a-1"


def test_every_error_carries_a_reason_and_says_whether_waiting_helps():
    assert StoreUnavailable("x").transient and StoreUnavailable("x").reason == "store_unavailable"
    assert not InvalidMessage("x").transient and InvalidMessage("x").reason in REASONS


def message(**changes) -> dict:
    base = {"alert": {"id": "a-1", "text": "fire"}, "stage": "score", "run": "0123456789ab",
            "seed": 5, "received_at": 1.0,
            "artifacts": {"candidates": {"kind": "images", "keys": ["k1", "k2"]},
                          "subject": {"kind": "value", "value": {"word": "fire"}}}}
    return {**base, **changes}


def test_stage_messages_carry_typed_artifacts():
    msg = StageMessage.model_validate(message())
    assert msg.schema_version == 2 and msg.alert_id == "a-1"
    assert msg.artifacts["candidates"].keys == ["k1", "k2"]
    assert msg.artifacts["subject"].value == {"word": "fire"}
    assert StageMessage.from_bytes(msg.to_bytes()) == msg


@pytest.mark.parametrize("changes", [
    {"run": "../other"},
    {"seed": -1},
    {"artifacts": {"x": {"kind": "images", "keys": []}}},
    {"artifacts": {"x": {"kind": "images", "keys": ["k"] * 300}}},
    {"artifacts": {"x": {"kind": "blob", "keys": ["k"]}}},
    {"artifacts": {f"a{i}": {"kind": "value", "value": i} for i in range(40)}},
    {"schema_version": 1},
])
def test_stage_messages_are_bounded(changes):
    with pytest.raises(ValidationError):
        StageMessage.model_validate(message(**changes))


def rendition(media_type="image/gif") -> dict:
    return {"media_type": media_type, "s3_uri": "s3://b/k", "url": "http://x/k",
            "url_expires_at": 2.0, "bytes": 10, "width": 64, "height": 64, "frame_count": 32,
            "duration_ms": 3840}


def test_animation_ready_v2_lists_renditions():
    ready = AnimationReady(alert_id="a-1", run="0123456789ab",
                           renditions=[Rendition(**rendition()),
                                       Rendition(**rendition("image/webp"))],
                           subject="fire", prompt="fire", clip_score=25.0, stage_seconds={},
                           latency_seconds=1.0, model_ids={}, pipeline_version="0.1.0")
    again = AnimationReady.from_bytes(ready.to_bytes())
    assert again.schema_version == 2 and again.rendition("image/webp").width == 64
    assert again.rendition("video/mp4") is None
    with pytest.raises(ValidationError):
        AnimationReady.model_validate({**json.loads(ready.to_bytes()), "renditions": []})


def test_failure_records_keep_the_payloads_identity():
    record = FailureRecord(stage="ingest", reason="not_json", error_class="x", message="m",
                           attempts=1, transient=False, payload="ab", payload_bytes=2,
                           payload_sha256="0" * 64, failed_at=1.0)
    assert FailureRecord.from_bytes(record.to_bytes()).payload_truncated is False
    assert json.loads(record.to_bytes())["schema_version"] == 2
