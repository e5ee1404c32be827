"""Topic `failed`: an alert that will not become an animation, and why. Keyed by alert id when
one could be read."""

from __future__ import annotations

from typing import Literal

from ._base import Record


class FailureRecord(Record):
    schema_version: Literal[1] = 1
    alert_id: str | None = None
    stage: str
    reason: str  # stable code: not_json, text_too_long, stage_error, ...
    error_class: str
    message: str
    attempts: int
    transient: bool  # the last error was of a kind that retrying can fix
    payload: str  # the original message: UTF-8 text, or base64 when it was not UTF-8
    payload_encoding: Literal["utf-8", "base64"] = "utf-8"
    failed_at: float
