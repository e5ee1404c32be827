"""The scene library's contents, and how one entry is rendered: for every hazard the subject
stage knows (its notices too) and for the neutral scene, that hazard's English scene goes through
the same graph as an alert, from the mask stage's subject on, with the given models and method
settings. No storage, no Kafka: the stream side stores and serves the entries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from .config import MethodConfig
from .graph import NAMES
from .lexicon import HAZARDS, NEUTRAL_SCENE, NEUTRAL_SUBJECT
from .stage import Context, Progress
from .subject import Subject
from .workflow import AlertRun, advance

NEUTRAL = "neutral"  # the entry of alerts that name no hazard


@dataclass(frozen=True)
class Entry:
    name: str  # a hazard key, or NEUTRAL
    subject: Subject

    @property
    def seed(self) -> int:
        return int.from_bytes(hashlib.sha256(f"library:{self.name}".encode()).digest()[:4],
                              "big") & 0x7FFFFFFF


def entries() -> list[Entry]:
    """Every entry: each hazard, in the lexicon's order, then the neutral scene."""
    found = [Entry(h.key, Subject(h.subject, h.scene, None, h.key, "en", "library"))
             for h in HAZARDS]
    return [*found, Entry(NEUTRAL, Subject(NEUTRAL_SUBJECT, NEUTRAL_SCENE, None, None, "en",
                                           "library"))]


def entry_for(hazard: str | None) -> str:
    """The entry an alert with this hazard (None: none found) is shown."""
    return hazard or NEUTRAL


def render(models, entries_: Iterable[Entry], *, config: MethodConfig = MethodConfig(),
           progress: Progress | None = None) -> list[AlertRun]:
    """Render `entries_` in one batch: the graph after the subject stage, the subject given."""
    runs = []
    for entry in entries_:
        run = AlertRun.begin(entry.subject.prompt, entry.seed, language="en")
        run.values["subject"] = entry.subject
        runs.append(run)
    advance(Context(models, config, progress), runs, NAMES[1:])
    return runs
