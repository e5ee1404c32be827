"""Topic `ready`: an animation is stored and can be fetched. Keyed by alert id."""

from __future__ import annotations

from typing import Literal

from ._base import Record


class AnimationReady(Record):
    schema_version: Literal[1] = 1
    alert_id: str
    s3_uri: str
    url: str  # presigned GET, valid until `url_expires_at`
    url_expires_at: float
    content_type: str
    bytes: int
    width: int
    height: int
    frame_count: int
    duration_ms: int
    clip_score: float
    subject: str
    stage_seconds: dict[str, float]
    latency_seconds: float  # ingest → this event
    model_ids: dict[str, str]
    pipeline_version: str
    run: str  # fingerprint of the configuration that made it (method settings, models, version)
    webp_s3_uri: str | None = None
    webp_url: str | None = None
