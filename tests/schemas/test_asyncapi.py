"""The AsyncAPI document: generated from the models, committed up to date, valid AsyncAPI 3.0.0,
and its payload schemas accept the records the models make. Nothing here touches the network:
the specification's schema is vendored under tests/schemas/asyncapi/ (see its README)."""

import copy
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT7

from alertanim.schemas import (Alert, AnimationReady, EventCode, FailureRecord, ImageRefs,
                               InstantAnimation, Quality,
                               Rendition, StageMessage, Value)
from alertanim.schemas import asyncapi
from alertanim.schemas.asyncapi import COMMAND, document, render

SPEC = Path(__file__).with_name("asyncapi") / "3.0.0.json"
DOC_URI = "urn:alertanim:asyncapi"


def _offline(uri: str):
    raise NoSuchResource(ref=uri)  # every reference must resolve inside the vendored file


@pytest.fixture(scope="module")
def spec_validator() -> Draft7Validator:
    spec = json.loads(SPEC.read_text(encoding="utf-8"))
    # The bundled file embeds each referenced schema under its own $id; crawling registers them.
    registry = Registry(retrieve=_offline).with_resource(spec["$id"], Resource(spec, DRAFT7))
    return Draft7Validator(spec, registry=registry.crawl())


@pytest.fixture(scope="module")
def doc() -> dict:
    return document()


def _resolve(doc: dict, ref: str):
    node = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _refs(node):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for v in node.values():
            yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


def test_the_committed_document_is_the_generated_one():
    assert asyncapi.PATH.read_text(encoding="utf-8") == render(document()), (
        f"schemas/asyncapi.json is out of date with the models; run: {COMMAND}")


def test_check_fails_on_a_stale_file_and_write_fixes_it(tmp_path, monkeypatch, capsys):
    path = tmp_path / "asyncapi.json"
    path.write_text("{}\n", encoding="utf-8")
    monkeypatch.setattr(asyncapi, "PATH", path)
    assert asyncapi.main(["--check"]) == 1
    assert COMMAND in capsys.readouterr().err
    assert asyncapi.main(["--write"]) == 0
    assert asyncapi.main(["--check"]) == 0
    assert path.read_text(encoding="utf-8").endswith("}\n")
    assert json.loads(path.read_text(encoding="utf-8")) == document()


def test_the_document_is_valid_asyncapi_3(spec_validator, doc):
    errors = [f"{e.json_path}: {e.message[:300]}" for e in spec_validator.iter_errors(doc)]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("break_it", [
    # AsyncAPI 2 vocabulary: 3.0 knows only send and receive.
    lambda d: d["operations"]["send.ready"].update(action="publish"),
    lambda d: d.update(asyncapi="2.6.0"),
    lambda d: d["channels"]["ready"].update(publish={"message": {"payload": {}}}),
    # pydantic's own discriminator object, which the generator drops: AsyncAPI takes a string.
    lambda d: d["components"]["schemas"]["StageMessage"]["properties"]["artifacts"][
        "additionalProperties"].update(discriminator={"propertyName": "kind"}),
    lambda d: d["components"]["messages"]["Alert"]["bindings"]["kafka"].update(key=7),
], ids=["publish-action", "asyncapi-2", "channel-publish", "discriminator-object", "bad-key"])
def test_a_broken_document_fails_validation(spec_validator, doc, break_it):
    broken = copy.deepcopy(doc)
    break_it(broken)
    assert not spec_validator.is_valid(broken)


def test_every_reference_resolves_inside_the_document(doc):
    refs = set(_refs(doc))
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        _resolve(doc, ref)


def test_operations_are_the_services_view(doc):
    actions = {(op["channel"]["$ref"].removeprefix("#/channels/"), op["action"])
               for op in doc["operations"].values()}
    stages = {(f"stage.{s}", a) for s in asyncapi.STAGE_NAMES for a in ("send", "receive")}
    assert actions == {("alerts", "receive"), ("ready", "send"), ("failed", "send"),
                       ("cap", "send"), ("instant", "send"), *stages}
    for op in doc["operations"].values():
        channel = op["channel"]["$ref"]
        assert all(m["$ref"].startswith(channel + "/messages/") for m in op["messages"])


def test_channel_addresses_follow_the_topic_names():
    doc = document({"ready": "prod.ready", "stage.mask": "prod.stage.mask"})
    addresses = {cid: c["address"] for cid, c in doc["channels"].items()}
    assert addresses["ready"] == "prod.ready"
    assert addresses["stage.mask"] == "prod.stage.mask"
    assert addresses["alerts"] == "alerts"
    assert addresses["stage.subject"] == "alertanim.stage.subject"
    assert "prod.ready" in doc["info"]["description"]
    with pytest.raises(ValueError, match="unknown channels"):
        document({"stage.ingest": "x"})


def test_stage_topics_are_the_graphs_stages():
    from alertanim.pipeline.graph import NAMES  # loads torch: only here, not in the generator

    assert asyncapi.STAGE_NAMES == NAMES


def _alert() -> Alert:
    return Alert(id="a-1", text="A fire has broken out", language="en",
                 sent=datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc), event="Fire Warning",
                 event_codes=[EventCode(value_name="SAME", value="FRW")])


def _ready() -> AnimationReady:
    gif = Rendition(media_type="image/gif", s3_uri="s3://alertanim/v1/a-1/animation.gif",
                    url="https://store.example/a-1.gif?sig=x", url_expires_at=1764115200.0,
                    bytes=287_114, width=128, height=128, frame_count=32, duration_ms=3_840)
    quality = Quality(hazard_found=True, clip_score=25.4, frame_clip_min=23.1,
                      frame_clip_mean=24.6, path_cost=41.7, largest_step=6.3,
                      change_per_inbetween=2.1, key_frame_change=8.4, static_change=0.0,
                      mask_coverage=0.31, subject_coverage=0.18)
    return AnimationReady(alert_id="a-1", run="5f1c0e9a2b7d", renditions=[gif], subject="fire",
                          prompt="A fire has broken out", hazard="fire", language="en",
                          clip_score=25.4, quality=quality, stage_seconds={"subject": 0.01},
                          latency_seconds=3.7, model_ids={"sd": "tiny"}, pipeline_version="0.1.0")


def _instant() -> InstantAnimation:
    ready = _ready()
    return InstantAnimation(alert_id="a-1", entry="fire", library_run="5f1c0e9a2b7d",
                            run="5f1c0e9a2b7d", renditions=ready.renditions, subject="fire",
                            hazard="fire", language="en",
                            alt_text="Animated illustration of fire. The alert: Fire",
                            sent_at=1764115200.0, latency_seconds=0.2)


def _failed() -> FailureRecord:
    return FailureRecord(alert_id=None, stage="ingest", reason="not_json",
                         error_class="InvalidAlert", message="message is not JSON", attempts=1,
                         transient=False, payload="{", payload_bytes=1,
                         payload_sha256="0" * 64, failed_at=1764115200.0)


def _stage() -> StageMessage:
    images = ImageRefs(keys=["runs/a-1/5f1c0e9a2b7d/generate/00.png"])
    return StageMessage(alert=_alert(), stage="score", run="5f1c0e9a2b7d", seed=7,
                        received_at=1764115200.0,
                        artifacts={"candidates": images, "subject": Value(value={"word": "fire"})},
                        seconds={"subject": 0.01, "generate": 1.5})


CAP_XML = ('<?xml version="1.0" encoding="UTF-8"?>'
           '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>a-1</identifier>'
           '</alert>')

# What goes on the wire for each message: the records as sent (`to_bytes`) and in full.
INSTANCES = {
    "Alert": lambda: [json.loads(_alert().to_bytes()), _alert().model_dump(mode="json"),
                      {"id": "a-2", "text": "Flood"}],
    "CapAlertXml": lambda: [CAP_XML],
    "AnimationReady": lambda: [json.loads(_ready().to_bytes()), _ready().model_dump(mode="json")],
    "FailureRecord": lambda: [json.loads(_failed().to_bytes()), _failed().model_dump(mode="json")],
    "InstantAnimation": lambda: [json.loads(_instant().to_bytes()),
                                 _instant().model_dump(mode="json")],
    "CapUpdateXml": lambda: [CAP_XML],
    "StageMessage": lambda: [json.loads(_stage().to_bytes()), _stage().model_dump(mode="json")],
}

# ... and what the models refuse, which the schemas must refuse too.
REFUSED = {
    "Alert": [{"id": "a-1"}, {"id": "a 1", "text": "t"}, {"id": "a-1", "text": "t",
                                                           "schema_version": 2}],
    "AnimationReady": [{**_ready().model_dump(mode="json"), "renditions": []}],
    "FailureRecord": [{**_failed().model_dump(mode="json"), "payload_encoding": "hex"}],
    "InstantAnimation": [{**_instant().model_dump(mode="json"), "entry": "Not An Entry"}],
    "StageMessage": [{**_stage().model_dump(mode="json"), "run": "not-a-run"},
                     {**_stage().model_dump(mode="json"),
                      "artifacts": {"x": {"kind": "blob", "keys": ["k"]}}}],
}


def _channel_messages(doc: dict) -> list[tuple[str, str]]:
    return [(cid, m) for cid, c in doc["channels"].items() for m in c["messages"]]


def _payload_validator(doc: dict, channel: str, message: str) -> Draft7Validator:
    ref = doc["channels"][channel]["messages"][message]["$ref"]
    registry = Registry(retrieve=_offline).with_resource(DOC_URI, Resource(doc, DRAFT7))
    # The payload is resolved inside the document, so its $refs reach components.schemas.
    return Draft7Validator({"$ref": f"{DOC_URI}{ref}/payload"}, registry=registry)


@pytest.mark.parametrize("channel, message", _channel_messages(document()))
def test_every_payload_schema_accepts_the_records_the_models_make(doc, channel, message):
    validator = _payload_validator(doc, channel, message)
    for instance in INSTANCES[message]():
        errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(instance)]
        assert not errors, "\n".join(errors)


@pytest.mark.parametrize("message", sorted(REFUSED))
def test_payload_schemas_refuse_what_the_models_refuse(doc, message):
    channel = next(cid for cid, m in _channel_messages(doc) if m == message)
    validator = _payload_validator(doc, channel, message)
    for instance in REFUSED[message]:
        assert not validator.is_valid(instance), instance


def test_every_message_is_keyed_and_typed(doc):
    for name, message in doc["components"]["messages"].items():
        assert message["bindings"]["kafka"]["key"]["description"], name
        assert message["contentType"] in ("application/json", "application/xml"), name
    cap = doc["components"]["schemas"]["CapUpdateXml"]
    assert cap["type"] == "string" and "oasis" in cap["externalDocs"]["url"]


def test_the_event_headers_in_the_document_are_what_the_workers_send(doc):
    from alertanim.agents.events import TYPES, event_headers

    assert asyncapi.EVENT_TYPES == TYPES
    for kind, message in (("ready", "AnimationReady"), ("instant", "InstantAnimation"),
                          ("failed", "FailureRecord")):
        schema = doc["components"]["messages"][message]["headers"]
        sent = {name: value.decode() for name, value in
                event_headers(kind, "a-1.x", "a-1", "/alertanim/test", None, 1764115200.0)}
        assert set(schema["required"]) <= set(sent) <= set(schema["properties"])
        assert Draft7Validator(schema).is_valid(sent)
