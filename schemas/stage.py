"""Intermediate topics, one per stage boundary: what the next stage needs, by reference.

Images never ride in these messages: `artifacts` holds object-store keys (claim check).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ._base import Record
from .alert import Alert


class StageMessage(Record):
    schema_version: Literal[1] = 1
    alert: Alert
    stage: str  # the stage that consumes this message
    run: str  # config fingerprint + seed: names every artifact of this run
    seed: int
    subject: str
    prompt: str
    received_at: float  # epoch seconds when ingest accepted the alert
    artifacts: dict[str, list[str]] = Field(default_factory=dict)
    scores: list[float] = Field(default_factory=list)
    best_index: int | None = None
    mask_coverage: float | None = None
    subject_mask_coverage: float | None = None
    selected: list[int] = Field(default_factory=list)
    seconds: dict[str, float] = Field(default_factory=dict)  # per stage, so far
    attempt: int = 1

    @property
    def alert_id(self) -> str:
        return self.alert.id
