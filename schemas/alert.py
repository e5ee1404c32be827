"""Topic `alerts`: what a warning system publishes. Keyed by `id`.

A warning system may also publish CAP 1.2 XML on this topic; schemas/cap.py reads it and makes
the same `Alert` from it, naming the CAP message it came from in `cap`.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationError, field_validator

from ._base import Record
from .errors import InvalidAlert

SCHEMA_VERSION = 1
DEFAULT_MAX_CHARS = 5_000
CAP_ID_PREFIX = "cap-"  # the ids of alerts read from CAP; reserved (schemas/cap.py)


class EventCode(Record):
    """CAP 1.2 <eventCode>: a system-specific code, e.g. value_name "SAME", value "TOR"."""

    value_name: str = Field(min_length=1, max_length=128)
    value: str = Field(min_length=1, max_length=256)


# CAP 1.2 dateTime: the XSD's pattern (an explicit offset; "Z" is not allowed, UTC is "-00:00")
# on top of a real date and time. What we write keeps to it; what we read may also carry
# fractional seconds or "Z", as XML Schema's dateTime allows and real feeds publish: an alert is
# not dropped for its clock's spelling.
_CAP_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                           r"[-+][0-9]{2}:[0-9]{2}")
_READ_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                            r"(?:\.[0-9]{1,9})?(?:[-+][0-9]{2}:[0-9]{2}|Z)")


def cap_datetime(text: str, strict: bool = False) -> datetime:
    """A CAP 1.2 dateTime ("2024-05-06T20:42:00-05:00") as an aware datetime; ValueError if it
    is not one. `strict`: exactly CAP's form, as we write it."""
    if not (_CAP_DATETIME if strict else _READ_DATETIME).fullmatch(text):
        raise ValueError(f"{text[:40]!r} is not a CAP dateTime (YYYY-MM-DDThh:mm:ss+hh:mm)")
    # Python reads at most microseconds
    text = re.sub(r"\.([0-9]+)", lambda m: "." + m.group(1)[:6].ljust(6, "0"), text)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _is_cap_datetime(text: str) -> str:
    cap_datetime(text)
    return text


CapDateTime = Annotated[str, AfterValidator(_is_cap_datetime)]
# CAP 1.2 forbids whitespace, commas and the XML-restricted "<" and "&" in sender and identifier,
# which is what makes <references>' "sender,identifier,sent" triples readable.
CapToken = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\s,<&]+$")]


class CapRef(Record):
    """One CAP message's identity, as <references> names it: sender, identifier and sent, each
    exactly as published (two spellings of one instant are two messages to CAP)."""

    sender: CapToken
    identifier: CapToken
    sent: CapDateTime

    @property
    def sent_at(self) -> datetime:
        return cap_datetime(self.sent)

    def triple(self) -> str:
        return f"{self.sender},{self.identifier},{self.sent}"


ALERT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"


class Alert(Record):
    schema_version: Literal[1] = SCHEMA_VERSION
    id: str = Field(min_length=1, max_length=128, pattern=ALERT_ID_PATTERN)
    text: str
    language: str | None = Field(default=None, max_length=35)  # BCP 47 tag, e.g. "ko-KR"
    sent: datetime | None = None
    area: str | None = Field(default=None, max_length=2_000)
    severity: str | None = Field(default=None, max_length=64)
    event: str | None = Field(default=None, max_length=256)  # CAP 1.2 <event>, e.g. "Flood Warning"
    # CAP 1.2 <eventCode>s; a known code (SAME, CAP-CP) names the hazard before any text does
    event_codes: list[EventCode] = Field(default_factory=list, max_length=32)
    # Added in place to v1 (every one has a default, so earlier alerts still validate); from a
    # CAP message these are its <info>'s urgency and certainty, and the message's own fields.
    urgency: str | None = Field(default=None, max_length=64)
    certainty: str | None = Field(default=None, max_length=64)
    status: Literal["Actual", "Exercise", "System", "Test", "Draft"] = "Actual"
    msg_type: Literal["Alert", "Update"] = "Alert"
    cap: CapRef | None = None  # the CAP message this alert was read from
    # CAP 1.2 <scope>: who the alert is for. Unset is Public (a JSON alert may set it); the
    # status page shows Public alerts only.
    scope: Literal["Public", "Restricted", "Private"] | None = None

    def code_pairs(self) -> tuple[tuple[str, str], ...]:
        return tuple((c.value_name, c.value) for c in self.event_codes)

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("text is empty")
        return v

    def content_hash(self) -> str:
        """Identity of what was asked for: a reused id with another hash is a conflict."""
        # Fields added to v1 count only when set, so an alert hashes as it did before they
        # existed and a ledger's earlier entries still match.
        unset = {name for name, default in _ADDED_TO_V1.items() if getattr(self, name) == default}
        body = self.model_dump(mode="json", exclude={"schema_version", *unset})
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


_ADDED_TO_V1 = {"urgency": None, "certainty": None, "status": "Actual", "msg_type": "Alert",
                "cap": None, "scope": None}


def parse_alert(raw: bytes, max_chars: int = DEFAULT_MAX_CHARS) -> Alert:
    """Decode and validate one `alerts` message, or raise InvalidAlert with the reason."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidAlert("not_utf8", f"message is not UTF-8: {exc}") from None
    try:
        body = json.loads(text)
    except (ValueError, RecursionError) as exc:
        # ValueError covers malformed JSON and integers past Python's digit limit; RecursionError
        # a document nested deeper than the parser's stack.
        raise InvalidAlert("not_json", f"message is not JSON: {type(exc).__name__}: "
                                       f"{str(exc)[:200]}") from None
    if not isinstance(body, dict):
        raise InvalidAlert("not_object", f"message is JSON {type(body).__name__}, not an object")
    alert_id = body.get("id") if isinstance(body.get("id"), str) else None
    version = body.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise InvalidAlert("unknown_schema_version",
                           f"schema_version {version!r} is not supported (this worker reads "
                           f"{SCHEMA_VERSION})", alert_id)
    try:
        alert = Alert.model_validate_json(text)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        first = errors[0]
        field = ".".join(str(p) for p in first["loc"]) or "message"
        if first["type"] == "missing":
            reason = "missing_field"
        elif field == "text" and "empty" in first["msg"]:
            reason = "empty_text"
        else:
            reason = "invalid_field"
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        raise InvalidAlert(reason, detail, alert_id) from None
    if alert.id[:len(CAP_ID_PREFIX)].lower() == CAP_ID_PREFIX:
        raise InvalidAlert("reserved_id", f"the id {alert.id[:80]!r} begins with "
                           f"{CAP_ID_PREFIX!r}, the prefix of alerts read from CAP documents, so "
                           f"no JSON alert can take a CAP message's id first", alert.id)
    if len(alert.text) > max_chars:
        raise InvalidAlert("text_too_long",
                           f"text has {len(alert.text)} characters; the limit is {max_chars}",
                           alert.id)
    return alert
