"""How a finished alert completes: its renditions stored, the `AnimationReady` event made and
stored (so a redelivery finds it), the report drawn beside the uploads, and, for an alert that
came in as CAP, the CAP Update that answers it. Synchronous: run off the event loop.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any

from alertanim.pipeline import __version__ as PIPELINE_VERSION
from alertanim.pipeline import graph
from alertanim.pipeline.animate import Animation
from alertanim.pipeline.phrases import phrases_for
from alertanim.pipeline.quality import assess
from alertanim.pipeline.report import render_report
from alertanim.pipeline.stage import Kind
from alertanim.pipeline.subject import alt_text
from alertanim.pipeline.workflow import AlertRun
from alertanim.schemas import (AnimationReady, CapResource, ImageRefs, Quality, Rendition, Report,
                               StageMessage, cap_update)

from .ports import FROM_ALERT, IMAGE_KINDS, fetch_images, values_of

log = logging.getLogger("alertanim")

UPDATE_HEADROOM = 16_384  # of max_record_bytes, for a CAP Update's key, headers and framing


class Completion:
    def __init__(self, settings, store, ledger, host, io, recent=None):
        self.settings = settings
        self.recent = recent  # the images this worker stored last (agents/ports.RecentImages)
        self.store = store
        self.ledger = ledger
        self.host = host
        self.io = io  # the IO threads: renditions upload in parallel, reports after events
        self._reports: dict[tuple[str, str], tuple] = {}  # what each pending report is drawn from
        self._drawing: set = set()  # reports being drawn (futures), for drain()
        self._lock = threading.Lock()

    def finish(self, msg: StageMessage, artifacts: dict[str, Any], seconds: dict[str, float],
               inputs: dict[str, Any]) -> AnimationReady:
        """Store the renditions, then the completion, and return the event to send. `inputs`:
        what the last stage read, already fetched (the report reuses them)."""
        return self.finish_once(msg, artifacts, seconds, inputs)[0]

    def finish_once(self, msg: StageMessage, artifacts: dict[str, Any],
                    seconds: dict[str, float], inputs: dict[str, Any]
                    ) -> tuple[AnimationReady, bool]:
        """As `finish`, and whether this call stored the completion. Everything is written
        once: renditions already there are kept (and described as stored), and a completion
        already stored (another copy of the message got there first) is the one returned,
        with False, its report left to whoever stored it."""
        animations: list[Animation] = [a for name, port in graph.PORTS.items()
                                       if port.kind is Kind.ANIMATIONS
                                       for a in artifacts.get(name, ())]
        everything = {**msg.artifacts, **artifacts}
        renditions = list(self.io.map(lambda a: self._rendition(msg, a), animations))
        report = None
        # named now, drawn once the event is out (after_event); an alert not for the public
        # (CAP scope Restricted or Private) gets no report, so no link to one goes out
        if self.settings.reports and msg.alert.scope in (None, "Public"):
            key = self.ledger.report_key(msg.alert_id, msg.run)
            url, expires = self.store.url(key, self.settings.presign_expiry_s)
            report = Report(s3_uri=self.store.uri(key), url=url, url_expires_at=expires)
        values = values_of(everything, msg)
        subject = values["subject"]
        ready = AnimationReady(
            alert_id=msg.alert_id, run=msg.run, renditions=renditions, subject=subject.word,
            prompt=subject.prompt, hazard=subject.hazard, language=subject.language,
            clip_score=values["scores"].best, alt_text=alt_text(msg.alert.text, subject),
            quality=Quality.model_validate(assess(values).as_dict(6), strict=False),
            report=report,
            stage_seconds=seconds, latency_seconds=round(time.time() - msg.received_at, 4),
            model_ids=self.host.model_ids(), pipeline_version=PIPELINE_VERSION,
            status=msg.alert.status, cap=msg.alert.cap, event=msg.alert.event,
            severity=msg.alert.severity, urgency=msg.alert.urgency,
            certainty=msg.alert.certainty, area=msg.alert.area,
            completed_at=round(time.time(), 3))
        if not self.ledger.record_ready(ready):
            stored = self.ledger.finished(msg.alert_id, msg.run)
            if stored is not None:
                return stored, False
        if report is not None:
            with self._lock:
                self._reports[(msg.alert_id, msg.run)] = (msg, everything, seconds, inputs)
        return ready, True

    def _rendition(self, msg: StageMessage, a: Animation) -> Rendition:
        key = self.ledger.rendition_key(msg.alert_id, msg.run, a.content_type)
        data = self.ledger.put_once(key, a.data, a.content_type)  # what the store holds
        url, expires = self.store.url(key, self.settings.presign_expiry_s)
        return Rendition(media_type=a.content_type, s3_uri=self.store.uri(key), url=url,
                         url_expires_at=expires, bytes=len(data), width=a.width,
                         height=a.height, frame_count=a.frame_count, duration_ms=a.duration_ms,
                         sha256=hashlib.sha256(data).hexdigest(),
                         sha1=hashlib.sha1(data).hexdigest())

    def after_event(self, ready: AnimationReady, sent: bool) -> None:
        """The event left (or, `sent` False, was left to another worker): draw its report now,
        on the IO threads, off the path of the next alert."""
        with self._lock:
            pending = self._reports.pop((ready.alert_id, ready.run), None)
        if pending is not None and sent:
            future = self.io.submit(self._report, *pending)
            with self._lock:
                self._drawing.add(future)
            future.add_done_callback(self._drawn)

    def _drawn(self, future) -> None:
        with self._lock:
            self._drawing.discard(future)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait for the reports being drawn (a worker stopping, a test); False if some were not
        done within `timeout` seconds."""
        from concurrent.futures import wait

        with self._lock:
            drawing = set(self._drawing)
        return not wait(drawing, timeout=timeout).not_done

    def _report(self, msg: StageMessage, artifacts: dict[str, Any], seconds: dict[str, float],
                inputs: dict[str, Any]) -> Report | None:
        """The alert's report, drawn from the run's images and values and stored beside its
        renditions; the images the last stage read are reused, the others fetched. It explains
        the animation; it is not the animation: if it cannot be drawn the event goes out
        without it."""
        try:
            values: dict[str, Any] = {name: get(msg) for name, get in FROM_ALERT.items()}
            values.update(values_of(artifacts, msg))
            values.update(inputs)
            for name, artifact in artifacts.items():
                port = graph.PORTS.get(name)
                if port is None or name in inputs:
                    continue
                if port.kind is Kind.ANIMATIONS:
                    values[name] = artifact
                elif isinstance(artifact, ImageRefs) and port.kind in IMAGE_KINDS:
                    # (one at a time: this already runs on an IO thread)
                    images = fetch_images(self.store, port, artifact.keys, recent=self.recent)
                    values[name] = images if port.kind is Kind.IMAGES else images[0]
            page = render_report(AlertRun(values, seconds), self.settings.method).encode("utf-8")
            key = self.ledger.report_key(msg.alert_id, msg.run)
            self.store.put_if_absent(key, page, "text/html; charset=utf-8")  # written once
            uri = self.store.uri(key)
            url, expires = self.store.url(key, self.settings.presign_expiry_s)
        except Exception as exc:  # noqa: BLE001 - a report is never worth an alert
            log.warning("no report for %s: %r", msg.alert_id, exc)
            return None
        return Report(s3_uri=uri, url=url, url_expires_at=expires, bytes=len(page))

    def cap_answer(self, ready: AnimationReady) -> bytes:
        """The CAP Update that answers the alert's CAP document with its renditions, in the
        document's version, made from what is stored: a redelivery makes the same message (with
        fresh URLs). One that would pass the record limit is made smaller (schemas.cap
        UPDATE_PLANS): the renditions go in the animated <info> only, then that <info> alone."""
        # Each rendition's resourceDesc ("Animated GIF of the alert (fire)") is in the language
        # of the <info> that was animated (pipeline/phrases/<language>.yaml); the alt text holds
        # the alert's words, which tell Chinese in simplified characters from traditional.
        phrases = phrases_for(ready.language, ready.alt_text or "")
        resources = [CapResource(resource_desc=phrases.resource(r.media_type, ready.hazard),
                                 mime_type=r.media_type, size=r.bytes, uri=self._public_uri(r),
                                 digest=r.sha1)
                     for r in ready.renditions]
        return cap_update(self.ledger.cap_document(ready.alert_id), resources,
                          sender=self.settings.cap_sender,
                          identifier=f"alertanim.{ready.alert_id}.{ready.run}",
                          sent=datetime.fromtimestamp(int(ready.completed_at or 0), timezone.utc),
                          note=ready.alt_text, languages=self.settings.cap_languages,
                          # a record is its value, its key and headers: the value gets the rest
                          max_bytes=self.settings.max_record_bytes
                          - min(UPDATE_HEADROOM, self.settings.max_record_bytes // 8))

    def _public_uri(self, r: Rendition) -> str:
        base = self.settings.public_base_url
        if not base:
            return r.url
        key = r.s3_uri.split("://", 1)[-1].split("/", 1)[-1]  # the object's key in its bucket
        return f"{base.rstrip('/')}/{key}"
