"""Topic `failed`: an input that will not become an animation, and why. Keyed by alert id when
one could be read.

Schema v2 adds what a consumer needs when the record had to be cut to fit the broker: the
original payload's length and SHA-256, and whether `payload` is only its beginning.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ._base import Record


class FailureRecord(Record):
    schema_version: Literal[2] = 2
    alert_id: str | None = None
    stage: str
    reason: str  # stable code, see schemas.errors.REASONS
    error_class: str
    message: str
    attempts: int
    transient: bool  # the last error was of a kind that retrying can fix
    payload: str  # the original message: UTF-8 text, or base64 when it was not UTF-8
    payload_encoding: Literal["utf-8", "base64"] = "utf-8"
    payload_bytes: int = Field(ge=0)  # length of the original message
    payload_sha256: str
    payload_truncated: bool = False  # `payload` holds only the beginning of the message
    payload_key: str | None = None  # where the whole payload was stored, when it was cut
    failed_at: float
