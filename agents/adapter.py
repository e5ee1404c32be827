"""The one adapter between the stage graph and the stream: for a message, fetch the inputs its
stage declares (images from the object store by key, values from the message) → run the stage →
store the outputs it declares → the message for the next stage, or, after the last stage, the
completion event. Synchronous: the processor calls it off the event loop.

`ingest` is the entry: it validates an `alerts` message, claims the alert id in the ledger and
starts a run at the first stage.
"""

from __future__ import annotations

import hashlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, NamedTuple

from PIL import Image
from pydantic import TypeAdapter

from alertanim.pipeline import __version__ as PIPELINE_VERSION
from alertanim.pipeline import graph
from alertanim.pipeline.animate import Animation
from alertanim.pipeline.quality import assess
from alertanim.pipeline.report import render_report
from alertanim.pipeline.stage import Context, Kind, Port, Stage
from alertanim.pipeline.subject import alt_text
from alertanim.pipeline.workflow import AlertRun
from alertanim.schemas import (Alert, AnimationReady, CapAlert, CapResource, ImageRefs, InvalidAlert,
                     InvalidMessage,
                     NotAnimated, Quality, Rendition, Report, StageMessage, Value, cap_alert_id,
                     cap_update, is_cap, parse_alert, parse_cap)
from alertanim.schemas.cap import alert_to_animate

from .host import ModelHost
from .ledger import Claim, Ledger, run_id, seed_for
from .storage import ObjectStore, png_bytes, png_image
from .topology import FIRST

log = logging.getLogger("alertanim")

# What the alert itself provides to the graph, by port name.
_FROM_ALERT = {"text": lambda m: m.alert.text, "event": lambda m: m.alert.event,
               "language": lambda m: m.alert.language, "seed": lambda m: m.seed,
               "event_codes": lambda m: m.alert.code_pairs()}
_IMAGE_KINDS = (Kind.IMAGES, Kind.IMAGE, Kind.MASK)
_DESCRIPTIONS = {"image/gif": "Animated GIF", "image/webp": "Animated WebP",
                 "video/mp4": "Video", "image/jpeg": "Still image"}


@lru_cache(maxsize=None)
def _codec(port: Port) -> TypeAdapter:
    return TypeAdapter(port.type)


def _value(name: str, port: Port, artifact: Value, msg: StageMessage) -> Any:
    """A value artifact read back as its port's type; a message that lies about it is refused."""
    try:
        return _codec(port).validate_python(artifact.value)
    except ValueError as exc:
        raise InvalidMessage(f"{name!r} is not a {port.type}: {str(exc)[:300]}",
                             alert_id=msg.alert_id) from None


class Stored(NamedTuple):
    """A completion found in the store without the marker that its event went out: a worker
    stopped between the two. The sender decides whether to send it again."""

    ready: AnimationReady


class Adapter:
    def __init__(self, settings, store: ObjectStore, host: ModelHost):
        self.settings = settings
        self.store = store
        self.host = host
        self.ledger = Ledger(store, settings.presign_expiry_s)
        self.config = settings.method
        self.run = run_id(self.config, settings.models)
        # A stage's images are encoded and moved in parallel: PNG and the store's round trips
        # would otherwise hold the GPU thread for tens of milliseconds per image.
        self._io = ThreadPoolExecutor(settings.io_threads, thread_name_prefix="alertanim-io")

    # -- the entry ---------------------------------------------------------------------------
    def ingest(self, raw: bytes, source: str = "", key: bytes | None = None
               ) -> StageMessage | AnimationReady | None:
        """`key` is the Kafka record's key (b"" when it had none); None when the alert did not
        come from Kafka. From Kafka, the key must be the alert's id: the partition it picks is
        the one every copy of the alert, and every stage of it, goes through."""
        t0 = time.perf_counter()
        cap = None
        if is_cap(raw):
            cap, alert = self._from_cap(raw)
        else:
            alert = parse_alert(raw, self.settings.max_text_chars)
            if alert.cap is not None:  # only a CAP document itself names a CAP origin
                alert = alert.model_copy(update={"cap": None})
        if key is not None and key != alert.id.encode():
            raise InvalidAlert("key_mismatch", f"the record's key {key[:140]!r} is not the "
                               f"alert's id {alert.id!r}", alert.id)
        if alert.cap is not None and self.ledger.cancelled(alert.id):
            raise NotAnimated("cancelled", "a CAP Cancel named this alert before it arrived",
                              alert.id)
        claimed = self.ledger.claim(alert, source, self.run)
        if claimed.claim is Claim.DONE:
            return None
        if claimed.claim is Claim.FINISHED:
            return claimed.ready
        if cap is not None:
            self.ledger.record_cap(alert.id, raw)  # its Update repeats the original's blocks
        return StageMessage(alert=alert, stage=FIRST, run=self.run, seed=seed_for(alert.id),
                            received_at=time.time(),
                            seconds={"ingest": round(time.perf_counter() - t0, 4)})

    def _from_cap(self, raw: bytes) -> tuple[CapAlert, Alert]:
        """A CAP 1.2 document: an Alert or Update is animated from its best info block; a
        Cancel stops the alerts it references; an Ack or Error is recorded, not animated."""
        cap = parse_cap(raw, self.settings.max_cap_bytes)
        if cap.msg_type == "Cancel":
            ids = [cap_alert_id(r.sender, r.identifier, r.sent) for r in cap.references]
            for alert_id in ids:
                self.ledger.cancel(alert_id, by=cap.alert_id)
            raise NotAnimated("cap_cancel", f"a CAP Cancel of {len(ids)} alert(s): "
                              f"{', '.join(ids) or 'none referenced'}", cap.alert_id)
        return cap, alert_to_animate(cap, self.settings.cap_languages,
                                     self.settings.max_text_chars)

    # -- a stage -----------------------------------------------------------------------------
    def stage(self, name: str) -> Stage:
        try:
            return graph.STAGES[name]
        except KeyError:
            raise InvalidMessage(f"no stage {name!r} in the graph") from None

    def decode(self, name: str, raw: bytes) -> StageMessage:
        """A stage message for stage `name`, checked against the graph and the ledger."""
        try:
            msg = StageMessage.from_bytes(raw)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise InvalidMessage(f"not a stage message: {str(exc)[:500]}") from None
        if msg.stage != name:
            raise InvalidMessage(f"a message for stage {msg.stage!r} on {name!r}'s topic",
                                 alert_id=msg.alert_id)
        self.ledger.check(msg)
        if msg.alert.cap is not None and self.ledger.cancelled(msg.alert_id):
            raise NotAnimated("cancelled", f"a CAP Cancel named this alert; stopped before "
                              f"{name}", msg.alert_id)
        return msg

    def run_stage(self, name: str, msgs: list[StageMessage]
                  ) -> list[StageMessage | AnimationReady | Stored | None]:
        """Run stage `name` over `msgs` (one model call when the stage is batched)."""
        stage = self.stage(name)
        last = graph.NEXT[name] is None
        results: list[StageMessage | AnimationReady | Stored | None] = [None] * len(msgs)
        todo = []
        for i, msg in enumerate(msgs):
            if last and self.ledger.emitted(msg.alert_id, msg.run):
                continue  # a redelivery after the event went out
            done = self.ledger.finished(msg.alert_id, msg.run) if last else None
            if done is not None:
                results[i] = Stored(done)  # stored; the event may or may not have gone out
            else:
                todo.append(i)
        if not todo:
            return results
        t0 = time.perf_counter()
        known: dict[int, str] = {}  # id(image) → its key, so an image passed on is not stored twice
        rows = [self._inputs(stage, msgs[i], known) for i in todo]
        ctx = Context(self.host.models() if stage.uses_models else None, self.config)
        outputs = stage.run(ctx, rows)
        stored = [self._store(stage, msgs[i], out, known) for i, out in zip(todo, outputs)]
        elapsed = round(time.perf_counter() - t0, 4)
        for i, row, artifacts in zip(todo, rows, stored):
            msg = msgs[i]
            seconds = {**msg.seconds, name: elapsed}
            if last:
                results[i] = self._ready(msg, artifacts, seconds, row)
            else:
                results[i] = msg.model_copy(update={
                    "stage": graph.NEXT[name], "seconds": seconds,
                    "artifacts": {**msg.artifacts, **artifacts}})
        return results

    def _inputs(self, stage: Stage, msg: StageMessage, known: dict[int, str]) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for name in stage.inputs:
            if name in _FROM_ALERT:
                row[name] = _FROM_ALERT[name](msg)
                continue
            port = graph.PORTS[name]
            artifact = msg.artifacts.get(name)
            want = ImageRefs if port.kind in _IMAGE_KINDS else Value
            if not isinstance(artifact, want):
                raise InvalidMessage(f"stage {stage.name!r} reads {name!r} ({port.kind.value}), "
                                     "which the message does not carry", alert_id=msg.alert_id)
            if port.kind is Kind.VALUE:
                row[name] = _value(name, port, artifact, msg)
                continue
            images = self._images(port, artifact.keys, self._io.map)
            known.update((id(im), key) for im, key in zip(images, artifact.keys))
            row[name] = images if port.kind is Kind.IMAGES else images[0]
        return row

    def _images(self, port: Port, keys: list[str], each=map) -> list[Image.Image]:
        """An image port's images from the store, in its mode (`each`: how to map the fetch
        over the keys, e.g. on the IO threads)."""
        mode = "L" if port.kind is Kind.MASK else "RGB"
        return list(each(lambda k: png_image(self.store.get(k), mode), keys))

    def _store(self, stage: Stage, msg: StageMessage, out: dict[str, Any],
               known: dict[int, str]) -> dict[str, Any]:
        artifacts: dict[str, Any] = {}
        uploads = []
        for port in stage.outputs:
            value = out[port.name]
            if port.kind is Kind.VALUE:
                artifacts[port.name] = Value(value=_codec(port).dump_python(value, mode="json"))
            elif port.kind is Kind.ANIMATIONS:
                artifacts[port.name] = value  # stored as renditions by `_ready`
            else:
                images = value if port.kind is Kind.IMAGES else [value]
                keys = []
                for im in images:
                    key = known.get(id(im))
                    if key is None:
                        key = self.ledger.image_key(msg.alert_id, msg.run, stage.name,
                                                    len(uploads))
                        uploads.append((key, im))
                    keys.append(key)
                artifacts[port.name] = ImageRefs(keys=keys)
        # list() waits for every put and re-raises the first failure
        list(self._io.map(lambda kv: self.store.put(kv[0], png_bytes(kv[1]), "image/png"),
                          uploads))
        return artifacts

    # -- the end -----------------------------------------------------------------------------
    def _ready(self, msg: StageMessage, artifacts: dict[str, Any], seconds: dict[str, float],
               inputs: dict[str, Any]) -> AnimationReady:
        """Store the renditions, then the completion (so a redelivery finds it), and return the
        event to send. `inputs`: what the last stage read, already fetched."""
        animations: list[Animation] = [a for name, port in graph.PORTS.items()
                                       if port.kind is Kind.ANIMATIONS
                                       for a in artifacts.get(name, ())]
        everything = {**msg.artifacts, **artifacts}
        # The report (thumbnails, plots) is drawn while the renditions upload.
        report = (self._io.submit(self._report, msg, everything, seconds, inputs)
                  if self.settings.reports else None)
        renditions = list(self._io.map(lambda a: self._rendition(msg, a), animations))
        values = self._values(everything, msg)
        subject = values["subject"]
        ready = AnimationReady(
            alert_id=msg.alert_id, run=msg.run, renditions=renditions, subject=subject.word,
            prompt=subject.prompt, hazard=subject.hazard, language=subject.language,
            clip_score=values["scores"].best, alt_text=alt_text(msg.alert.text, subject),
            quality=Quality.model_validate(assess(values).as_dict(6), strict=False),
            report=report.result() if report is not None else None,
            stage_seconds=seconds, latency_seconds=round(time.time() - msg.received_at, 4),
            model_ids=self.host.model_ids(), pipeline_version=PIPELINE_VERSION,
            status=msg.alert.status, cap=msg.alert.cap, event=msg.alert.event,
            severity=msg.alert.severity, urgency=msg.alert.urgency,
            certainty=msg.alert.certainty, area=msg.alert.area,
            completed_at=round(time.time(), 3))
        self.ledger.record_ready(ready)
        return ready

    def _report(self, msg: StageMessage, artifacts: dict[str, Any], seconds: dict[str, float],
                inputs: dict[str, Any]) -> Report | None:
        """The alert's report, drawn from the run's images and values and stored beside its
        renditions; the images the last stage read are reused, the others fetched. It explains
        the animation; it is not the animation: if it cannot be drawn the event goes out
        without it."""
        try:
            values: dict[str, Any] = {name: get(msg) for name, get in _FROM_ALERT.items()}
            values.update(self._values(artifacts, msg))
            values.update(inputs)
            for name, artifact in artifacts.items():
                port = graph.PORTS.get(name)
                if port is None or name in inputs:
                    continue
                if port.kind is Kind.ANIMATIONS:
                    values[name] = artifact
                elif isinstance(artifact, ImageRefs) and port.kind in _IMAGE_KINDS:
                    # (one at a time: this already runs on an IO thread)
                    images = self._images(port, artifact.keys)
                    values[name] = images if port.kind is Kind.IMAGES else images[0]
            page = render_report(AlertRun(values, seconds), self.config).encode("utf-8")
            key = self.ledger.report_key(msg.alert_id, msg.run)
            uri = self.store.put(key, page, "text/html; charset=utf-8")
            url, expires = self.store.url(key, self.settings.presign_expiry_s)
        except Exception as exc:  # noqa: BLE001 - a report is never worth an alert
            log.warning("no report for %s: %r", msg.alert_id, exc)
            return None
        return Report(s3_uri=uri, url=url, url_expires_at=expires, bytes=len(page))

    def cap_answer(self, ready: AnimationReady) -> bytes:
        """The CAP 1.2 Update that answers the alert's CAP document with its renditions, made
        from what is stored: a redelivery makes the same message (with fresh URLs)."""
        resources = [CapResource(resource_desc=f"{_DESCRIPTIONS.get(r.media_type, 'animation')}"
                                               f" of the alert ({ready.subject})",
                                 mime_type=r.media_type, size=r.bytes, uri=self._public_uri(r),
                                 digest=r.sha1)
                     for r in ready.renditions]
        return cap_update(self.ledger.cap_document(ready.alert_id), resources,
                          sender=self.settings.cap_sender,
                          identifier=f"alertanim.{ready.alert_id}.{ready.run}",
                          sent=datetime.fromtimestamp(int(ready.completed_at or 0), timezone.utc),
                          note=ready.alt_text)

    def _public_uri(self, r: Rendition) -> str:
        base = self.settings.public_base_url
        if not base:
            return r.url
        key = r.s3_uri.split("://", 1)[-1].split("/", 1)[-1]  # the object's key in its bucket
        return f"{base.rstrip('/')}/{key}"

    def _values(self, artifacts: dict[str, Any], msg: StageMessage) -> dict[str, Any]:
        """The run's values (not its images), typed by their ports."""
        return {name: _value(name, graph.PORTS[name], artifact, msg)
                for name, artifact in artifacts.items()
                if isinstance(artifact, Value) and name in graph.PORTS
                and graph.PORTS[name].kind is Kind.VALUE}

    def _rendition(self, msg: StageMessage, a: Animation) -> Rendition:
        key = self.ledger.rendition_key(msg.alert_id, msg.run, a.content_type)
        uri = self.store.put(key, a.data, a.content_type)
        url, expires = self.store.url(key, self.settings.presign_expiry_s)
        return Rendition(media_type=a.content_type, s3_uri=uri, url=url, url_expires_at=expires,
                         bytes=len(a.data), width=a.width, height=a.height,
                         frame_count=a.frame_count, duration_ms=a.duration_ms,
                         sha256=hashlib.sha256(a.data).hexdigest(),
                         sha1=hashlib.sha1(a.data).hexdigest())

    def close(self) -> None:
        self._io.shutdown(wait=False)
