"""Topic `ready`: an alert's animation is stored and can be fetched. Keyed by alert id.

Schema v2 (v1 named one GIF and bolted a WebP beside it): `renditions` lists every encoding made
for the alert, one entry per media type, so a new output format is a new entry, not new fields.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ._base import Record
from .alert import ALERT_ID_PATTERN, CapRef
from .stage import RUN_PATTERN

SCHEMA_VERSION = 2


class Rendition(Record):
    media_type: str  # "image/gif", "image/webp", ...
    s3_uri: str
    url: str  # presigned GET, valid until `url_expires_at`
    url_expires_at: float  # epoch seconds
    bytes: int = Field(ge=0)
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    frame_count: int = Field(ge=1)
    duration_ms: int = Field(ge=0)  # one full loop
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")  # of the bytes
    sha1: str | None = Field(default=None, pattern=r"^[0-9a-f]{40}$")  # CAP's <digest>


class Report(Record):
    """The alert's report: one self-contained HTML page (images inline) explaining how its
    animation was made: candidates and their CLIPScores, masks, variants, the chosen path. It is
    drawn after the event goes out, so its URL can answer 404 for the second or so it takes
    (and for good if the worker stopped in between); nothing else in the event waits on it."""

    s3_uri: str
    url: str  # presigned GET, valid until `url_expires_at`
    url_expires_at: float
    bytes: int | None = Field(default=None, ge=0)  # None: drawn after the event


class Quality(Record):
    """How good the result is (see pipeline/quality.py); watch these in a deployment."""

    hazard_found: bool  # False: the alert named no hazard and the scene is neutral
    clip_score: float  # the best candidate's CLIPScore against the prompt
    frame_clip_min: float  # the key frames' CLIPScores against the prompt: lowest
    frame_clip_mean: float  # ... and mean
    path_cost: float  # summed ViT-B/16 feature distance along the key frames
    largest_step: float  # the largest single distance on that path
    change_per_inbetween: float  # mean absolute pixel change (0-255) per shown frame
    key_frame_change: float  # ... per key frame
    static_change: float  # ... per key frame, outside the mask (0 when composited)
    mask_coverage: float  # share of the image repainted
    subject_coverage: float  # share of the image that is the subject
    # WCAG 2.3.1 (three flashes or below threshold), the animation as delivered: the most
    # flashes in any one second over more than a quarter of a 10° field, general or red
    # (above 3 fails), and whether it passes; optional, so v2 events without them still read
    flashes_per_second: float | None = Field(default=None, ge=0)
    flash_safe: bool | None = None


class AnimationReady(Record):
    schema_version: Literal[2] = SCHEMA_VERSION
    alert_id: str = Field(min_length=1, max_length=128, pattern=ALERT_ID_PATTERN)
    run: str = Field(pattern=RUN_PATTERN)  # fingerprint of the configuration that made it
    renditions: list[Rendition] = Field(min_length=1)
    subject: str  # the word segmented
    prompt: str  # the English prompt the images were made from
    hazard: str | None = None  # the hazard found (pipeline/lexicon.py keys); None: none named
    language: str | None = None  # the alert's language as decided (primary subtag)
    clip_score: float  # the best candidate's CLIPScore against the prompt
    quality: Quality | None = None
    report: Report | None = None  # None when reports are off (ALERTANIM_REPORTS=false)
    # for screen readers: the alert's own words and what the animation shows; never drop it
    alt_text: str | None = None
    status: str = "Actual"  # CAP status of the alert: Exercise, Test, ... are marked as such
    cap: CapRef | None = None  # the CAP message it came in as; its Update goes out on `cap`
    # carried from the alert (CAP's <info>), for routing and display
    event: str | None = None
    severity: str | None = None
    urgency: str | None = None
    certainty: str | None = None
    area: str | None = None
    completed_at: float | None = None  # epoch seconds the result was stored
    stage_seconds: dict[str, float]
    latency_seconds: float  # ingest → this event
    model_ids: dict[str, str]
    pipeline_version: str

    def rendition(self, media_type: str) -> Rendition | None:
        return next((r for r in self.renditions if r.media_type == media_type), None)
