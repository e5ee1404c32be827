"""The scene library in the object store: entries rendered once per run (agents' side of
`pipeline/library.py`), looked up at ingest for an alert's instant event, built by
`alertanim library build` or by a GPU worker while it is idle, and listed for operators.

An entry is its renditions and report, then `entry.json`, written last and only if absent: an
entry that is there is whole, and a second build renders nothing. Every object is written once
(a conditional write), so two builders racing cannot mix their bytes under one entry. Entries
never change under a run, so lookups are cached; a miss is asked again after a short while (a
build may be under way).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable

from alertanim.pipeline.library import Entry, entries, entry_for, render
from alertanim.pipeline.report import render_report
from alertanim.pipeline.subject import alt_text
from alertanim.schemas import ArtifactMissing, InstantAnimation, LibraryEntry, Rendition
from alertanim.schemas import StageMessage

from .ports import value_of

log = logging.getLogger("alertanim")

MISS_TTL_S = 5.0  # how long "not in the library" is believed before the store is asked again


class Library:
    def __init__(self, settings, store, ledger, run: str):
        self.settings = settings
        self.store = store
        self.ledger = ledger
        self.run = run
        self._found: dict[str, LibraryEntry] = {}
        self._missed: dict[str, float] = {}
        # (library run, entry) → (when the first of its URLs expires, the signed renditions)
        self._signed: dict[tuple[str, str], tuple[float, list[Rendition]]] = {}
        self._lock = threading.Lock()

    # -- reading -----------------------------------------------------------------------------
    def get(self, name: str) -> LibraryEntry | None:
        with self._lock:
            if name in self._found:
                return self._found[name]
            if time.monotonic() - self._missed.get(name, -MISS_TTL_S) < MISS_TTL_S:
                return None
        try:
            entry = LibraryEntry.from_bytes(self.store.get(
                self.ledger.library_entry_key(self.run, name)))
        except ArtifactMissing:
            entry = None
        with self._lock:
            if entry is None:
                self._missed[name] = time.monotonic()
            else:
                self._found[name] = entry
                self._missed.pop(name, None)
        return entry

    def listing(self) -> list[tuple[Entry, LibraryEntry | None]]:
        """Every entry the library should hold, with what is stored for it (None: missing)."""
        return [(e, self.get(e.name)) for e in entries()]

    def missing(self) -> list[Entry]:
        return [e for e, stored in self.listing() if stored is None]

    def presigned(self, entry: LibraryEntry) -> list[Rendition]:
        """The entry's renditions with presigned URLs, at least half their lifetime left: every
        instant event of a burst would sign the same URLs again, so they are signed once and
        kept until half of PRESIGN_EXPIRY_S has passed."""
        now = time.time()
        with self._lock:
            kept = self._signed.get((entry.run, entry.entry))
        if kept is not None and kept[0] - now > self.settings.presign_expiry_s / 2:
            return kept[1]
        out = self._sign(entry)
        expires = min((r.url_expires_at for r in out), default=now)
        with self._lock:
            self._signed[(entry.run, entry.entry)] = (expires, out)
        return out

    def _sign(self, entry: LibraryEntry) -> list[Rendition]:
        out = []
        for r in entry.renditions:
            url, expires = self.store.url(
                self.ledger.library_rendition_key(entry.run, entry.entry, r.media_type),
                self.settings.presign_expiry_s)
            out.append(r.model_copy(update={"url": url, "url_expires_at": expires}))
        return out

    # -- the instant event -------------------------------------------------------------------
    def instant(self, msg: StageMessage, marked: bool = False) -> InstantAnimation | None:
        """The instant event for an alert whose subject is known (`msg`: the subject stage's
        message for the next stage), or None when its entry is not built yet. Which message of
        an alert sends it is ingest's claim (`Ledger.claim`). `marked`: without transactions an
        input can be read again after its records went out, so events are marked once they
        did, and a marked one is not sent again."""
        from alertanim.pipeline import graph

        subject = value_of("subject", graph.PORTS["subject"], msg.artifacts["subject"], msg)
        entry = self.get(entry_for(subject.hazard))
        if entry is None or (marked and self.ledger.instant_sent(msg.alert_id, msg.run)):
            return None
        alert = msg.alert
        return InstantAnimation(
            alert_id=msg.alert_id, entry=entry.entry, library_run=entry.run, run=msg.run,
            renditions=self.presigned(entry), subject=subject.word, hazard=subject.hazard,
            language=subject.language, alt_text=alt_text(alert.text, subject),
            status=alert.status, cap=alert.cap, event=alert.event, severity=alert.severity,
            urgency=alert.urgency, certainty=alert.certainty, area=alert.area,
            sent_at=round(time.time(), 3),
            latency_seconds=round(time.time() - msg.received_at, 4))

    # -- building ----------------------------------------------------------------------------
    def build(self, models, wanted: Iterable[Entry] | None = None, *, batch: int = 1,
              on_entry: Callable[[Entry, bool], None] | None = None) -> list[str]:
        """Render and store the entries among `wanted` (every entry by default) that are not
        stored yet, `batch` at a time; the names built. `on_entry(entry, built)` after each."""
        todo = [e for e in (wanted if wanted is not None else entries())
                if self.get(e.name) is None]
        built = []
        for at in range(0, len(todo), batch):
            group = todo[at:at + batch]
            for entry, run in zip(group, render(models, group, config=self.settings.method)):
                stored = self.store_entry(entry, run)
                if stored:
                    built.append(entry.name)
                if on_entry is not None:
                    on_entry(entry, stored)
        return built

    def store_entry(self, entry: Entry, run) -> bool:
        """Store one rendered entry: renditions, report, then its record (if still absent)."""
        renditions = []
        for a in run.animations:
            key = self.ledger.library_rendition_key(self.run, entry.name, a.content_type)
            # written once: a second builder keeps the first one's bytes, and describes those
            data = self.ledger.put_once(key, a.data, a.content_type)
            url, expires = self.store.url(key, self.settings.presign_expiry_s)
            renditions.append(Rendition(
                media_type=a.content_type, s3_uri=self.store.uri(key), url=url,
                url_expires_at=expires, bytes=len(data), width=a.width, height=a.height,
                frame_count=a.frame_count, duration_ms=a.duration_ms,
                sha256=hashlib.sha256(data).hexdigest(), sha1=hashlib.sha1(data).hexdigest()))
        report_key = None
        if self.settings.reports:
            report_key = self.ledger.library_report_key(self.run, entry.name)
            self.store.put_if_absent(
                report_key, render_report(run, self.settings.method).encode("utf-8"),
                "text/html; charset=utf-8")
        record = LibraryEntry(
            entry=entry.name, run=self.run, hazard=entry.subject.hazard,
            subject=entry.subject.word, prompt=entry.subject.prompt, renditions=renditions,
            alt_text=alt_text("", entry.subject), report_key=report_key,
            clip_score=round(run.scores.best, 4), built_at=round(time.time(), 3))
        written = self.store.put_if_absent(self.ledger.library_entry_key(self.run, entry.name),
                                           record.to_bytes(), "application/json")
        with self._lock:
            self._missed.pop(entry.name, None)
        if written:
            log.info("library entry %s built for run %s", entry.name, self.run)
        return written
