"""Intermediate topics, one per stage of the graph (`pipeline/graph.py`): what the next stage
needs, by reference.

Images never ride in these messages (the claim check): an `ImageRefs` artifact holds the
object-store keys of its images; a `Value` artifact holds a small JSON value (scores, a path).
Which artifacts a stage reads and writes is declared once, by the stage, in the graph; a worker
refuses a message that lacks what its stage reads.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field

from ._base import Record
from .alert import Alert

SCHEMA_VERSION = 2
MAX_IMAGES = 256  # bounds every list a message can carry: no stage makes more images than this
MAX_ARTIFACTS = 32
RUN_PATTERN = r"^[0-9a-f]{12}$"


class ImageRefs(Record):
    kind: Literal["images"] = "images"
    keys: list[Annotated[str, Field(min_length=1, max_length=512)]] = Field(
        min_length=1, max_length=MAX_IMAGES)


class Value(Record):
    kind: Literal["value"] = "value"
    value: Any


Artifact = Annotated[Union[ImageRefs, Value], Field(discriminator="kind")]


class StageMessage(Record):
    schema_version: Literal[2] = SCHEMA_VERSION
    alert: Alert
    stage: str = Field(max_length=64)  # the stage that consumes this message
    run: str = Field(pattern=RUN_PATTERN)  # names every artifact of this configuration's run
    seed: int = Field(ge=0, lt=2 ** 31)
    received_at: float  # epoch seconds when ingest accepted the alert
    artifacts: dict[Annotated[str, Field(max_length=64)], Artifact] = Field(
        default_factory=dict, max_length=MAX_ARTIFACTS)
    seconds: dict[Annotated[str, Field(max_length=64)], float] = Field(
        default_factory=dict, max_length=MAX_ARTIFACTS)  # per stage, so far
    # W3C trace context of the alert (its publisher's, or one made at ingest): every stage's
    # record carries it on as its `traceparent` header, with a span of its own
    traceparent: str | None = Field(default=None,
                                    pattern=r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")

    @property
    def alert_id(self) -> str:
        return self.alert.id
