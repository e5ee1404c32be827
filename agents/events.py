"""What a record says about itself in its Kafka headers, for platforms that read events as they
are: CloudEvents 1.0 in Kafka binary mode (`ce_specversion`, `ce_id`, `ce_source`, `ce_type`,
`ce_subject`, `ce_time`, `content-type`) on `ready`, `instant` and `failed`, so a Knative
KafkaSource or any CloudEvents SDK sees proper events without a translator; and W3C trace
context (`traceparent`) on every record, from the alert's own header (one is made when it has
none, or a malformed one) through every stage topic to the events, so one alert can be
followed across stages in a tracing backend.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone
from typing import NamedTuple

SPECVERSION = "1.0"
TYPES = {"ready": "org.alertanim.animation.ready.v2",
         "instant": "org.alertanim.animation.instant.v1",
         "failed": "org.alertanim.alert.failed.v2"}
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

Headers = tuple[tuple[str, bytes], ...]


class Out(NamedTuple):
    """One record to send: its topic, key, value and headers."""

    topic: str
    key: str | None
    value: bytes
    headers: Headers = ()


def valid_traceparent(value) -> str | None:
    """A W3C traceparent as given, when it is one (version 00, ids not all zeros)."""
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    if not isinstance(value, str):
        return None
    match = _TRACEPARENT.match(value.strip().lower())
    if match is None or set(match[1]) == {"0"} or set(match[2]) == {"0"}:
        return None
    return match[0]


def traceparent_of(headers) -> str | None:
    """The traceparent among a consumed record's headers ((name, bytes) pairs), if valid."""
    for name, value in headers or ():
        if isinstance(name, (str, bytes)) and (
                name.decode("latin-1") if isinstance(name, bytes) else name).lower() == (
                "traceparent"):
            return valid_traceparent(value)
    return None


def new_trace() -> str:
    """A traceparent starting a trace: a new trace id, this hop's span id, sampled."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def child(traceparent: str) -> str:
    """The next hop's traceparent: the same trace, a span of its own."""
    match = _TRACEPARENT.match(traceparent)
    if match is None:
        return new_trace()
    return f"00-{match[1]}-{secrets.token_hex(8)}-{match[3]}"


def trace_id(traceparent: str | None) -> str | None:
    match = _TRACEPARENT.match(traceparent or "")
    return match[1] if match else None


def stage_headers(traceparent: str | None) -> Headers:
    return (("traceparent", child(traceparent or new_trace()).encode()),)


def event_headers(kind: str, event_id: str, subject: str | None, source: str,
                  traceparent: str | None, at: float) -> Headers:
    """CloudEvents binary-mode headers for an event of `kind` (ready, instant, failed)."""
    headers = [("ce_specversion", SPECVERSION), ("ce_id", event_id), ("ce_source", source),
               ("ce_type", TYPES[kind]),
               ("ce_time", datetime.fromtimestamp(at, timezone.utc).isoformat(
                   timespec="milliseconds").replace("+00:00", "Z")),
               ("content-type", "application/json")]
    if subject:
        headers.append(("ce_subject", subject))
    headers.append(("traceparent", child(traceparent or new_trace())))
    return tuple((name, value.encode()) for name, value in headers)


def source_of(settings) -> str:
    """The CloudEvents source of this deployment's events: a URI reference."""
    return f"/alertanim/{settings.app_id}"
