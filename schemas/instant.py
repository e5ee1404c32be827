"""Topic `instant`: an alert's first picture, from the scene library, within a second of its
arrival. Keyed by alert id; read committed; at most one per alert.

The scene library holds one animation per hazard the subject stage knows (and per notice, and the
neutral scene), rendered ahead of time by the same graph, models and method settings as the
deployment's alerts (`library_run` names them). As soon as the subject stage knows an alert's
hazard, and the library has it, this event goes out; the animation generated for the alert itself
follows on `ready`. A consumer picks what its channel wants: an MMS gateway may send this one and
never the second; an app may show this one and swap in the generated one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ._base import Record
from .alert import ALERT_ID_PATTERN, CapRef
from .ready import Rendition
from .stage import RUN_PATTERN

SCHEMA_VERSION = 1
ENTRY_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"  # a hazard key, or "neutral"


class LibraryEntry(Record):
    """One stored entry of the scene library (`library/<run>/<entry>/entry.json`), written once,
    after its renditions: an entry that is there is whole."""

    schema_version: Literal[1] = SCHEMA_VERSION
    entry: str = Field(pattern=ENTRY_PATTERN)
    run: str = Field(pattern=RUN_PATTERN)
    hazard: str | None = None  # None for the neutral scene
    subject: str  # the word segmented
    prompt: str  # the English scene it was rendered from
    renditions: list[Rendition] = Field(min_length=1)  # URLs as of writing: presign again
    alt_text: str  # what the animation shows, in English
    report_key: str | None = None  # its report, beside the renditions
    clip_score: float
    built_at: float  # epoch seconds


class InstantAnimation(Record):
    schema_version: Literal[1] = SCHEMA_VERSION
    alert_id: str = Field(min_length=1, max_length=128, pattern=ALERT_ID_PATTERN)
    tier: Literal["library"] = "library"
    entry: str = Field(pattern=ENTRY_PATTERN)  # the library entry shown
    library_run: str = Field(pattern=RUN_PATTERN)  # the configuration that rendered it
    run: str = Field(pattern=RUN_PATTERN)  # the alert's own run: its `ready` names the same
    renditions: list[Rendition] = Field(min_length=1)  # presigned for this event
    subject: str
    hazard: str | None = None  # the hazard found (None: the neutral scene)
    language: str | None = None  # the alert's language as decided
    # for screen readers: what the animation shows and the alert's own words
    alt_text: str
    status: str = "Actual"
    cap: CapRef | None = None
    event: str | None = None
    severity: str | None = None
    urgency: str | None = None
    certainty: str | None = None
    area: str | None = None
    sent_at: float  # epoch seconds
    latency_seconds: float  # ingest → this event

    def rendition(self, media_type: str) -> Rendition | None:
        return next((r for r in self.renditions if r.media_type == media_type), None)
