"""CAP (1.2, 1.1 and 1.0) through the worker, without a broker: in on `alerts`, out as a CAP
Update on `cap` in the version the alert came in; Cancel, Ack and hostile XML end as failure
records. (tests/stream runs it over the real ones.)"""

import asyncio
import hashlib
from pathlib import Path

import pytest

from alertanim.agents.topology import WORKER_STAGES
from alertanim.schemas import AnimationReady, FailureRecord, StageMessage, parse_cap
from alertanim.schemas.cap import cap_alert_id

from tests.support.cap import CAP, XSD, quake_cancel, read
from tests.support.processor import drive, make, records


def test_a_cap_alert_is_animated_and_answered_with_a_cap_update(tmp_path):
    proc, sent = make(tmp_path)
    original = read("ipaws_evacuation_multilingual.xml")
    cap = parse_cap(original)
    out = drive(proc, sent, original)
    [(key, value)] = records(out, "ready")
    ready = AnimationReady.from_bytes(value)
    assert key == ready.alert_id == cap.alert_id and ready.cap == cap.ref
    assert ready.status == "Actual" and ready.language == "en"  # English info block first
    assert ready.alt_text.startswith("Animated illustration") and ready.hazard is not None
    info = cap.infos[0]
    assert (ready.event, ready.severity, ready.urgency, ready.certainty) == (
        info.event, info.severity, info.urgency, info.certainty)
    assert info.areas[0].area_desc in ready.area
    [(cap_key, update)] = records(out, "cap")
    assert cap_key == cap.alert_id
    answer = parse_cap(update)
    assert answer.msg_type == "Update" and answer.status == cap.status
    assert [r.triple() for r in answer.references] == [cap.ref.triple()]
    assert len(answer.infos) == len(cap.infos)  # every language block is repeated
    for info in answer.infos:
        added = info.resources[-len(ready.renditions):]
        assert [r.mime_type for r in added] == [r.media_type for r in ready.renditions]
        for res, rendition in zip(added, ready.renditions):
            data = Path(rendition.url.removeprefix("file://")).read_bytes()
            assert res.size == len(data) == rendition.bytes
            assert res.digest == hashlib.sha1(data).hexdigest()  # CAP's digest is SHA-1
            assert res.uri == rendition.url
    import xmlschema
    xmlschema.XMLSchema(str(XSD)).validate(update.decode())
    assert not records(out, "failed")


def test_the_same_cap_message_twice_is_one_alert(tmp_path):
    proc, sent = make(tmp_path)
    original = read("nws_tornado_warning.xml")
    first = drive(proc, sent, original, "alerts:0:1")
    again = drive(proc, sent, original, "alerts:0:7")  # re-published: the stored result
    [(_, a)], [(_, b)] = records(first, "ready"), records(again, "ready")
    assert AnimationReady.from_bytes(a).alert_id == AnimationReady.from_bytes(b).alert_id
    assert not [t for t, _, _ in again if t.startswith("alertanim.stage.")]  # not recomputed
    assert records(again, "cap")[0][1] == records(first, "cap")[0][1]


def test_an_exercise_is_processed_and_marked(tmp_path):
    proc, sent = make(tmp_path, public_base_url="https://cdn.example.org/alerts")
    out = drive(proc, sent, read("ntwc_tsunami_exercise.xml"))
    ready = AnimationReady.from_bytes(records(out, "ready")[0][1])
    # its words say it is a test: the scene is a test's, not a tsunami that would alarm
    assert ready.status == "Exercise" and ready.hazard == "test"
    answer = parse_cap(records(out, "cap")[0][1])
    assert answer.status == "Exercise"
    uris = [r.uri for r in answer.infos[0].resources]
    assert uris and all(u.startswith("https://cdn.example.org/alerts/") for u in uris)


def test_a_cancel_stops_its_alerts_before_and_while_they_run(tmp_path):
    proc, sent = make(tmp_path)
    warning, update = read("nws_tornado_warning.xml"), read("nws_tornado_warning_update.xml")
    # the update is in flight (past ingest) when the Cancel arrives
    asyncio.run(proc.process("ingest", update, "alerts:0:1"))
    in_flight = sent[-1][2]
    out = drive(proc, sent, read("nws_tornado_warning_cancel.xml"), "alerts:0:2")
    [(key, value)] = records(out, "failed")
    cancel = FailureRecord.from_bytes(value)
    assert cancel.reason == "cap_cancel" and key == cancel.alert_id
    update_id = parse_cap(update).alert_id
    assert update_id in cancel.message and parse_cap(warning).alert_id in cancel.message

    start = len(sent)
    asyncio.run(proc.process("subject", in_flight))  # stops at its next stage
    [(key, value)] = records(sent[start:], "failed")
    assert key == update_id and FailureRecord.from_bytes(value).reason == "cancelled"

    out = drive(proc, sent, warning, "alerts:0:3")  # arrives after its Cancel
    [(key, value)] = records(out, "failed")
    assert FailureRecord.from_bytes(value).reason == "cancelled"
    assert not records(out, "ready") and not records(out, "cap")


def test_an_ack_is_recorded_not_animated(tmp_path):
    proc, sent = make(tmp_path)
    out = drive(proc, sent, read("ack.xml"))
    [(_, value)] = records(out, "failed")
    assert FailureRecord.from_bytes(value).reason == "cap_msg_type"
    assert len(out) == 1


@pytest.mark.parametrize("raw, reason", [
    (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xx"><!ENTITY y "&x;&x;&x;">]>'
     b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">&y;</alert>', "xml_entities"),
    (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
     b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">&x;</alert>', "xml_external_entity"),
    (b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.3"><identifier>x</identifier></alert>',
     "unsupported_cap_version"),
    (b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.1"><identifier>x</identifier></alert>',
     "invalid_cap"),
    (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xx"><!ENTITY y "&x;&x;&x;">]>'
     b'<alert xmlns="http://www.incident.com/cap/1.0">&y;</alert>', "xml_entities"),
    (b"<alert", "not_xml"),
])
def test_hostile_xml_becomes_a_failure_record(tmp_path, raw, reason):
    proc, sent = make(tmp_path)
    out = drive(proc, sent, raw)
    [(_, value)] = records(out, "failed")
    record = FailureRecord.from_bytes(value)
    assert record.reason == reason and record.stage == "ingest"
    assert b"root:" not in value  # nothing was fetched or expanded into the record


def test_a_json_alert_cannot_claim_a_cap_origin(tmp_path):
    import json

    proc, sent = make(tmp_path)
    body = {"id": "j1", "text": "Flood warning",
            "cap": {"sender": "x@y", "identifier": "i", "sent": "2025-01-01T00:00:00-00:00"}}
    out = drive(proc, sent, json.dumps(body).encode())
    assert AnimationReady.from_bytes(records(out, "ready")[0][1]).cap is None
    assert not records(out, "cap") and not records(out, "failed")


def test_cap_ids_are_the_ledgers_ids():
    cap = parse_cap(read("nws_tornado_warning.xml"))
    assert cap.alert_id == cap_alert_id(cap.sender, cap.identifier, cap.sent)
    assert StageMessage  # the stage message carries the Alert, CAP origin included


def test_run_cap_animates_the_document_and_writes_its_update(tmp_path, model_cache):
    import json
    import subprocess
    import sys

    out, answer = tmp_path / "a.gif", tmp_path / "answer.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "alertanim.agents.cli", "run", "--cap",
         str(CAP / "ipaws_evacuation_multilingual.xml"), "--models", "tiny", "--out", str(out),
         "--out-cap", str(answer), "--json", "--candidates", "2", "--variants", "3",
         "--frames", "2", "--steps", "2", "--quiet"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    original = parse_cap(read("ipaws_evacuation_multilingual.xml"))
    assert summary["cap"]["identifier"] == original.identifier and summary["language"] == "en"
    update = parse_cap(answer.read_bytes())
    [gif] = [r for r in update.infos[0].resources if r.mime_type == "image/gif"]
    assert gif.uri == out.resolve().as_uri()
    assert gif.digest == hashlib.sha1(out.read_bytes()).hexdigest()


def test_run_refuses_hostile_cap_before_loading_models(tmp_path):
    import subprocess
    import sys

    bomb = tmp_path / "bomb.xml"
    bomb.write_bytes(b'<!DOCTYPE a [<!ENTITY x "x"><!ENTITY y "&x;&x;">]><alert>&y;</alert>')
    proc = subprocess.run([sys.executable, "-m", "alertanim.agents.cli", "run", "--cap", str(bomb),
                           "--out", str(tmp_path / "x.gif")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "xml_entities" in proc.stderr


@pytest.mark.parametrize("name, version", [("usgs_earthquake_1_1.xml", "1.1"),
                                           ("nws_severe_thunderstorm_1_0.xml", "1.0")])
def test_an_older_cap_alert_is_answered_in_its_own_version(tmp_path, name, version):
    import xmlschema

    proc, sent = make(tmp_path)
    original = read(name)
    cap = parse_cap(original)
    out = drive(proc, sent, original)
    [(key, value)] = records(out, "ready")
    ready = AnimationReady.from_bytes(value)
    assert key == ready.alert_id == cap.alert_id and ready.cap == cap.ref
    assert ready.certainty == cap.infos[0].certainty
    [(cap_key, update)] = records(out, "cap")
    assert cap_key == cap.alert_id
    xmlschema.XMLSchema(str(CAP / f"CAP-v{version}.xsd")).validate(update.decode())
    answer = parse_cap(update)
    assert (answer.version, answer.msg_type) == (version, "Update")
    assert [r.triple() for r in answer.references] == [cap.ref.triple()]
    added = answer.infos[0].resources[-len(ready.renditions):]
    for res, rendition in zip(added, ready.renditions, strict=True):
        data = Path(rendition.url.removeprefix("file://")).read_bytes()
        assert (res.size, res.digest, res.uri) == (
            len(data), hashlib.sha1(data).hexdigest(), rendition.url)
    assert not records(out, "failed")


def test_a_cap_1_1_cancel_stops_an_alert_that_came_in_on_another_partition(tmp_path):
    proc, sent = make(tmp_path)
    quake = parse_cap(read("usgs_earthquake_1_1.xml"))
    cancel = (read("usgs_earthquake_1_1.xml")
              .replace(b"<identifier>us2025abcd.1736719800", b"<identifier>us2025abcd.cancel")
              .replace(b"<msgType>Alert</msgType>", b"<msgType>Cancel</msgType><references>"
                       + quake.ref.triple().encode() + b"</references>", 1))
    out = drive(proc, sent, cancel, "alerts:3:0")  # the Cancel, keyed by its own identifier
    [(_, value)] = records(out, "failed")
    assert FailureRecord.from_bytes(value).reason == "cap_cancel"
    out = drive(proc, sent, read("usgs_earthquake_1_1.xml"), "alerts:1:4")
    [(key, value)] = records(out, "failed")
    assert key == quake.alert_id and FailureRecord.from_bytes(value).reason == "cancelled"
    assert not records(out, "ready") and not records(out, "cap")


def test_a_cancel_from_another_sender_stops_nothing_and_says_so(tmp_path):
    proc, sent = make(tmp_path)
    quake = read("usgs_earthquake_1_1.xml")
    out = drive(proc, sent, quake_cancel(sender="prankster@example.org"), "alerts:0:0")
    [(_, value)] = records(out, "failed")
    refused = FailureRecord.from_bytes(value)
    assert refused.reason == "cap_cancel_foreign"
    assert parse_cap(quake).ref.triple() in refused.message  # the reference it did not honour
    out = drive(proc, sent, quake, "alerts:1:0")  # the quake still comes out
    [(key, _)] = records(out, "ready")
    assert key == parse_cap(quake).alert_id and not records(out, "failed")


def test_a_cancel_stops_only_alerts_of_its_own_status(tmp_path):
    proc, sent = make(tmp_path)
    quake = read("usgs_earthquake_1_1.xml")
    out = drive(proc, sent, quake_cancel(status="Test"), "alerts:0:0")
    [(_, value)] = records(out, "failed")
    assert FailureRecord.from_bytes(value).reason == "cap_cancel"
    out = drive(proc, sent, quake, "alerts:1:0")  # a Test Cancel never stops an Actual alert
    assert [k for k, _ in records(out, "ready")] == [parse_cap(quake).alert_id]
    exercise = quake.replace(b"<status>Actual</status>", b"<status>Test</status>")
    out = drive(proc, sent, exercise, "alerts:1:1")  # ...and does stop a Test one
    [(_, value)] = records(out, "failed")
    assert FailureRecord.from_bytes(value).reason == "cancelled"
    assert not records(out, "ready")


def test_a_json_alert_cannot_take_a_cap_id(tmp_path):
    proc, sent = make(tmp_path)
    quake = read("usgs_earthquake_1_1.xml")
    squatter = (b'{"id": "%s", "text": "Sunny skies all day", "language": "en"}'
                % parse_cap(quake).alert_id.encode())
    out = drive(proc, sent, squatter, "alerts:0:0")
    [(_, value)] = records(out, "failed")
    assert FailureRecord.from_bytes(value).reason == "reserved_id"
    out = drive(proc, sent, quake, "alerts:0:1")  # the genuine CAP message is not a conflict
    assert [k for k, _ in records(out, "ready")] == [parse_cap(quake).alert_id]
    assert not records(out, "failed")


def test_an_update_past_the_record_limit_is_still_delivered(tmp_path):
    """An alert in many <info> blocks, whose Update with the renditions in every block would
    pass the record limit: the Update goes out with them in the animated block only."""
    import re

    import xmlschema

    original = read("ipaws_evacuation_multilingual.xml")
    infos = re.findall(rb"<cap:info>.*?</cap:info>", original, re.S)
    many = original.replace(infos[-1], infos[-1] + b"".join(infos) * 8, 1)
    limit = 64_000  # the Update's value gets 56,000 bytes of it
    assert 40_000 < len(many) < 50_000  # the original fits, and its Update in full would not
    proc, sent = make(tmp_path, max_record_bytes=limit)
    out = drive(proc, sent, many)
    [(_, value)] = records(out, "ready")
    ready = AnimationReady.from_bytes(value)
    [(_, update)] = records(out, "cap")
    assert len(update) <= limit - limit // 8
    xmlschema.XMLSchema(str(XSD)).validate(update.decode())
    answer, cap = parse_cap(update), parse_cap(many)
    assert len(answer.infos) == len(cap.infos)  # every block is there...
    with_ours = [i for i in answer.infos if any(r.mime_type == ready.renditions[0].media_type
                                                and r.digest == ready.renditions[0].sha1
                                                for r in i.resources)]
    assert len(with_ours) == 1 and with_ours[0].language.startswith(ready.language)  # ...ours
    assert with_ours[0] == answer.infos[0]  # in the block animated: the first English one
    assert not records(out, "failed")
