"""Every topic's contract as one AsyncAPI 3.0.0 document, built from the record models.

The payload schemas are the models' own JSON Schemas, so the document cannot drift from the code;
`schemas/asyncapi.json` is this module's output, committed for readers and tools that take a file:

    python -m alertanim.schemas.asyncapi            # print it
    python -m alertanim.schemas.asyncapi --write    # regenerate schemas/asyncapi.json
    python -m alertanim.schemas.asyncapi --check    # exit 1 when the committed file is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from .alert import Alert
from .errors import REASONS
from .failed import FailureRecord
from .instant import InstantAnimation
from .ready import AnimationReady
from .stage import StageMessage

PATH = Path(__file__).with_name("asyncapi.json")
COMMAND = "python -m alertanim.schemas.asyncapi --write"

# The graph's stage names (`pipeline.graph.NAMES`, checked equal by the tests): importing the
# graph loads torch, which a contract must not need.
STAGE_NAMES: tuple[str, ...] = ("subject", "generate", "score", "mask", "sample", "select", "animate")

# Channel id → Kafka topic; `document(topics=...)` overrides any of them.
TOPICS: dict[str, str] = {
    "alerts": "alerts",
    "ready": "ready",
    "failed": "failed",
    "cap": "cap",
    "instant": "instant",
    **{f"stage.{s}": f"alertanim.stage.{s}" for s in STAGE_NAMES},
}

CAP_DOCS = {
    "description": "OASIS Common Alerting Protocol Version 1.2",
    "url": "https://docs.oasis-open.org/emergency/cap/v1.2/CAP-v1.2-os.html",
}
KAFKA_BINDING = "0.5.0"
# CloudEvents 1.0 types of the events (agents/events.py sends them; a test holds the two equal)
EVENT_TYPES = {"ready": "org.alertanim.animation.ready.v2",
               "instant": "org.alertanim.animation.instant.v1",
               "failed": "org.alertanim.alert.failed.v2"}
TRACEPARENT = {"type": "string", "pattern": "^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
               "description": "W3C trace context: the alert's trace (its publisher's "
                              "`traceparent` header, or one started at ingest), a span per hop."}


def _event_headers(kind: str) -> dict:
    """CloudEvents 1.0 Kafka protocol binding, binary content mode, and the trace context."""
    return {
        "type": "object",
        "description": "CloudEvents 1.0 attributes in Kafka binary content mode "
                       "(https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/bindings/"
                       "kafka-protocol-binding.md): the record's value is the event's data.",
        "properties": {
            "ce_specversion": {"const": "1.0"},
            "ce_id": {"type": "string", "description": "Unique per event; a redelivered "
                                                       "event keeps its id."},
            "ce_source": {"type": "string", "description": "`/alertanim/<ALERTANIM_APP_ID>`"},
            "ce_type": {"const": EVENT_TYPES[kind]},
            "ce_subject": {"type": "string", "description": "The alert's id."},
            "ce_time": {"type": "string", "format": "date-time"},
            "content-type": {"const": "application/json"},
            "traceparent": TRACEPARENT,
        },
        "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "content-type",
                     "traceparent"],
    }


def document(topics: Mapping[str, str] | None = None) -> dict:
    """The AsyncAPI 3.0.0 document of every topic, from the service's point of view."""
    unknown = set(topics or ()) - set(TOPICS)
    if unknown:
        raise ValueError(f"unknown channels {sorted(unknown)}; the channels are "
                         f"{', '.join(TOPICS)}")
    topics = {**TOPICS, **(topics or {})}
    schemas = _model_schemas()
    alert_id = {k: v for k, v in schemas["Alert"]["properties"]["id"].items() if k != "title"}
    schemas["CapAlertXml"] = {
        "type": "string",
        "title": "CAP 1.2 alert",
        "description": "An OASIS CAP 1.2 `<alert>` document (namespace "
                       "`urn:oasis:names:tc:emergency:cap:1.2`), UTF-8, of at most "
                       "`ALERTANIM_MAX_CAP_BYTES`, with `<msgType>` Alert or Update. It is read "
                       "into the same `Alert` as the JSON form, from one `<info>` block (the "
                       "first in a language of `ALERTANIM_CAP_LANGUAGES`, else the first), "
                       "with the CAP message it came from named in `cap`.",
        "externalDocs": CAP_DOCS,
    }
    schemas["CapUpdateXml"] = {
        "type": "string",
        "title": "CAP 1.2 Update with the animation",
        "description": "An OASIS CAP 1.2 `<alert>` document (namespace "
                       "`urn:oasis:names:tc:emergency:cap:1.2`), UTF-8, with `<msgType>` "
                       "Update: it `<references>` the original alert and carries the "
                       "animation's renditions as `<resource>`s, whose `<uri>` is under "
                       "`ALERTANIM_PUBLIC_BASE_URL` when one is set, else the presigned URL.",
        "externalDocs": CAP_DOCS,
    }
    messages = {
        "Alert": _message(
            "Alert", schemas, "An alert to animate, as JSON.",
            _key("The alert's id is recommended, so that copies of one alert share a "
                 "partition; the id is read from the payload, so any key, or none, is "
                 "accepted.", {"type": ["string", "null"]})),
        "CapAlertXml": _message(
            "CapAlertXml", schemas, "An alert to animate, as CAP 1.2 XML.",
            _key("The alert's `<identifier>` is recommended, so that copies of one alert "
                 "share a partition; the id is read from the payload, so any key, or none, is "
                 "accepted.", {"type": ["string", "null"]}),
            content_type="application/xml"),
        "AnimationReady": _message(
            "AnimationReady", schemas, "An alert's animation is stored and can be fetched.",
            _key("The alert's id (`alert_id`).", alert_id), headers=_event_headers("ready")),
        "InstantAnimation": _message(
            "InstantAnimation", schemas, "An alert's first picture, from the scene library.",
            _key("The alert's id (`alert_id`).", alert_id), headers=_event_headers("instant")),
        "FailureRecord": _message(
            "FailureRecord", schemas, "An input that will not become an animation, and why.",
            _key("The alert's id when one could be read from the input, else null.",
                 {"type": ["string", "null"]}), headers=_event_headers("failed")),
        "CapUpdateXml": _message(
            "CapUpdateXml", schemas, "The animation, as a CAP 1.2 Update of the alert.",
            _key("The alert's id.", alert_id), content_type="application/xml"),
        "StageMessage": _message(
            "StageMessage", schemas, "What the next stage needs, by reference.",
            _key("The alert's id (`alert.id`).", alert_id),
            headers={"type": "object", "properties": {"traceparent": TRACEPARENT}}),
    }
    reasons = "\n".join(f"- `{code}`: {text}" for code, text in REASONS.items())
    channels = {
        "alerts": _channel(topics["alerts"], "Alerts", ["Alert", "CapAlertXml"],
                           "What a warning system publishes: one alert per message, as a JSON "
                           "`Alert` or as a CAP 1.2 XML `<alert>`. Each ends as one "
                           f"`AnimationReady` on `{topics['ready']}` (and, for a CAP alert, a "
                           f"CAP Update on `{topics['cap']}`) or one `FailureRecord` on "
                           f"`{topics['failed']}`."),
        "ready": _channel(topics["ready"], "Animations", ["AnimationReady"],
                          "One record per alert made into an animation: every rendition made "
                          "(one per media type, with where it is stored and a presigned URL), "
                          "and how good the result is. Pick a rendition by `media_type`; a new "
                          "format is a new entry in `renditions`, not new fields."),
        "failed": _channel(topics["failed"], "Failures", ["FailureRecord"],
                           "One record per input that will not become an animation. `reason` "
                           f"is a stable code:\n\n{reasons}\n\nA record too large for the "
                           "broker keeps the payload's length, SHA-256 and beginning "
                           "(`payload_truncated`), and names where the whole payload is stored "
                           "(`payload_key`)."),
        "instant": _channel(topics["instant"], "Instant animations", ["InstantAnimation"],
                            "At most one record per alert, within about a second of its "
                            "arrival: the scene library's animation of the alert's hazard "
                            "(rendered ahead of time by the deployment's own models and "
                            "method), as soon as the subject stage knows the hazard and the "
                            "library has it. The animation generated for the alert itself "
                            f"follows on `{topics['ready']}`; pick what your channel wants. "
                            "Written in the same Kafka transaction as the alert's hand-over to "
                            "its next stage: read with `isolation.level=read_committed`."),
        "cap": _channel(topics["cap"], "CAP updates", ["CapUpdateXml"],
                        "For systems that speak CAP: each alert that came in as CAP and was "
                        "made into an animation is answered with one CAP 1.2 Update, beside "
                        f"its `AnimationReady` on `{topics['ready']}`."),
    }
    for before, stage in zip((f"ingest (from `{topics['alerts']}`)", *STAGE_NAMES), STAGE_NAMES):
        channels[f"stage.{stage}"] = _channel(
            topics[f"stage.{stage}"], f"Stage {stage} (internal)", ["StageMessage"],
            f"Internal: the work for the `{stage}` stage, sent by {before}. Images travel "
            "as object-store keys, never in the message. Only alertanim's own workers read "
            "and write this topic; its contract follows the pipeline and may change with it.")
    operations = {
        "receive.alerts": _operation("receive", "alerts", channels,
                                     "Read alerts to animate."),
        "send.ready": _operation("send", "ready", channels, "Announce a finished animation."),
        "send.instant": _operation("send", "instant", channels,
                                   "Announce an alert's instant animation from the library."),
        "send.failed": _operation("send", "failed", channels,
                                  "Report an input that will not become an animation."),
        "send.cap": _operation("send", "cap", channels,
                               "Publish the animation as a CAP 1.2 Update."),
    }
    for stage in STAGE_NAMES:
        operations[f"send.stage.{stage}"] = _operation(
            "send", f"stage.{stage}", channels, f"Hand an alert's work to the `{stage}` stage.")
        operations[f"receive.stage.{stage}"] = _operation(
            "receive", f"stage.{stage}", channels, f"Run the `{stage}` stage.")
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "alertanim", "version": _version(),
                 "description": _description(topics)},
        "defaultContentType": "application/json",
        "servers": {"kafka": {
            "host": "localhost:9092",
            "protocol": "kafka",
            "description": "A placeholder: the broker is a deployment setting "
                           "(`ALERTANIM_BROKER`).",
        }},
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


def _model_schemas() -> dict[str, Any]:
    """The records' JSON Schemas, one entry per model, referring to each other in components."""
    _, top = models_json_schema(
        [(m, "validation") for m in (Alert, AnimationReady, InstantAnimation, FailureRecord,
                                     StageMessage)],
        ref_template="#/components/schemas/{model}")
    return {name: _asyncapi_schema(s) for name, s in top["$defs"].items()}


def _asyncapi_schema(node: Any) -> Any:
    """pydantic writes an OpenAPI-style `discriminator` object; AsyncAPI's Schema Object takes a
    bare property name whose values are schema names, which `kind` values are not. The `oneOf`
    branches already fix `kind` with `const`, so the object is dropped, not translated."""
    if isinstance(node, dict):
        return {k: _asyncapi_schema(v) for k, v in node.items()
                if not (k == "discriminator" and isinstance(v, dict))}
    if isinstance(node, list):
        return [_asyncapi_schema(v) for v in node]
    return node


def _key(description: str, schema: dict) -> dict:
    return {"kafka": {"key": {**schema, "description": description},
                      "bindingVersion": KAFKA_BINDING}}


def _message(name: str, schemas: dict, summary: str, bindings: dict,
             content_type: str = "application/json", headers: dict | None = None) -> dict:
    schema = schemas[name]
    title = schema["title"]
    if "schema_version" in schema.get("properties", {}):
        title = f"{name} v{schema['properties']['schema_version']['const']}"
    message = {"name": name, "title": title, "summary": summary, "contentType": content_type,
               "payload": {"$ref": f"#/components/schemas/{name}"}, "bindings": bindings}
    if headers is not None:
        message["headers"] = headers
    return message


def _channel(address: str, title: str, messages: list[str], description: str) -> dict:
    return {"address": address, "title": title, "description": description,
            "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in messages}}


def _operation(action: str, channel: str, channels: dict, summary: str) -> dict:
    return {"action": action, "channel": {"$ref": f"#/channels/{channel}"}, "summary": summary,
            "messages": [{"$ref": f"#/channels/{channel}/messages/{m}"}
                         for m in channels[channel]["messages"]]}


def _description(topics: Mapping[str, str]) -> str:
    return (
        "Turns public disaster alerts into short animated images. Topics are seen from the "
        "service: it receives alerts and sends animations and failures.\n\n"
        "For consumers:\n\n"
        f"- **Read committed.** Every alert ends as exactly one `AnimationReady` on "
        f"`{topics['ready']}` or one `FailureRecord` on `{topics['failed']}`, written in a "
        "Kafka transaction with the input's offset. Read both with "
        "`isolation.level=read_committed`: a worker killed mid-transaction leaves an aborted "
        "record that only a read-uncommitted consumer sees.\n"
        f"- **Instant, then generated.** An alert whose hazard the scene library holds gets an "
        f"`InstantAnimation` on `{topics['instant']}` within about a second, before its "
        f"`AnimationReady` on `{topics['ready']}`; both are read committed, each at most once "
        "per alert.\n"
        "- **CloudEvents and tracing.** `ready`, `instant` and `failed` records carry "
        "CloudEvents 1.0 attributes in Kafka binary mode (`ce_*` headers, `content-type`), and "
        "every record carries the alert's W3C `traceparent` (the publisher's header, or one "
        "started at ingest).\n"
        "- **Idempotency.** A re-published alert sends its stored result again (with fresh "
        "URLs), and an alert whose internal hand-over was repeated by a killed worker and "
        "then failed can fail twice. Key what you do on `alert_id`.\n"
        "- **URLs expire.** A rendition's `url` is a presigned GET that stops working at "
        "`url_expires_at` (epoch seconds; the lifetime is the deployment's "
        "`ALERTANIM_PRESIGN_EXPIRY_S`). Fetch or copy the object before then, or read "
        "`s3_uri` with your own credentials.\n"
        "- **Versions.** Every JSON record names its `schema_version`. Refuse a version you do "
        "not know: a new version is a breaking change. Within a version, fields may be added, "
        "so ignore fields you do not know. An alert without `schema_version` is read as "
        "version 1.\n"
    )


def _version() -> str:
    try:
        return version("alertanim")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0.0.0"


def render(doc: dict) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alertanim.schemas.asyncapi", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help=f"write {PATH.name} beside this module")
    mode.add_argument("--check", action="store_true",
                      help=f"exit 1 when {PATH.name} differs from the generated document")
    args = parser.parse_args(argv)
    text = render(document())
    if args.write:
        PATH.write_text(text, encoding="utf-8")
    elif args.check:
        if not PATH.exists() or PATH.read_text(encoding="utf-8") != text:
            print(f"schemas/{PATH.name} is out of date; run: {COMMAND}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
