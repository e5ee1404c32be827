"""The one adapter between the stage graph and the stream: for a stage message, fetch the inputs
its stage declares (images from the object store by key, values from the message) → run the
stage → store the outputs it declares → the message for the next stage, or, after the last
stage, the completion (agents/completion.py). Synchronous: the processor calls it off the event
loop. Where a run starts is agents/ingest.py.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

from alertanim.pipeline import graph
from alertanim.pipeline.stage import Context, Kind, Stage
from alertanim.schemas import (AnimationReady, ImageRefs, InstantAnimation, InvalidMessage,
                               NotAnimated, StageMessage, Value)

from .completion import Completion
from .host import ModelHost
from .ingest import Ingest
from .ledger import Ledger, run_id
from .library import Library
from .ports import FROM_ALERT, IMAGE_KINDS, RecentImages, codec, fetch_images, value_of
from .storage import ObjectStore, png_bytes
from .threads import Threads


class Stored(NamedTuple):
    """A completion found in the store without the marker that its event went out: a worker
    stopped between the two. The sender decides whether to send it again."""

    ready: AnimationReady


class Adapter:
    def __init__(self, settings, store: ObjectStore, host: ModelHost,
                 threads: Threads | None = None):
        self.settings = settings
        self.store = store
        self.host = host
        self.threads = threads or Threads.from_settings(settings)
        self.ledger = Ledger(store, settings.presign_expiry_s)
        self.config = settings.method
        self.run = run_id(self.config, settings.models)
        self.ingest = Ingest(settings, self.ledger, self.run)
        self.recent = RecentImages(settings.image_cache_mb * 2**20)
        self.completion = Completion(settings, store, self.ledger, host, self.threads.io,
                                     self.recent)
        self.library = Library(settings, store, self.ledger, self.run)

    def instant(self, msg: StageMessage, marked: bool = False) -> InstantAnimation | None:
        """The instant event of an alert ingest starts (`msg`: its message for the first
        stage), or None when the library has no entry for its hazard: the first stage's own
        subject detection (no models, nothing stored) run here, so the event leaves with
        ingest's hand-over instead of a stage later."""
        [told] = self.run_stage(graph.NAMES[0], [msg])
        return self.library.instant(told, marked)

    def stage(self, name: str) -> Stage:
        try:
            return graph.STAGES[name]
        except KeyError:
            raise InvalidMessage(f"no stage {name!r} in the graph") from None

    def decode(self, name: str, raw: bytes) -> StageMessage:
        """A stage message for stage `name`, checked against the graph and the ledger: it is
        for this stage, of this worker's run, names only keys the ledger derives for its alert's
        run, and its alert is the one the first claim on its id recorded. A message written to
        an intermediate topic under another alert's id, or under a run of its own, is refused
        here, before anything is read, written or sent for it."""
        try:
            msg = StageMessage.from_bytes(raw)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise InvalidMessage(f"not a stage message: {str(exc)[:500]}") from None
        if msg.stage != name:
            raise InvalidMessage(f"a message for stage {msg.stage!r} on {name!r}'s topic",
                                 alert_id=msg.alert_id)
        if msg.run != self.run:
            raise InvalidMessage(f"a message of run {msg.run!r}; this worker makes run "
                                 f"{self.run!r}", reason="foreign_run", alert_id=msg.alert_id)
        self.ledger.check(msg)
        self.ledger.check_claim(msg)
        if msg.alert.cap is not None and self.ledger.cancelled(msg.alert_id, msg.alert.status):
            raise NotAnimated("cancelled", f"a CAP Cancel named this alert; stopped before "
                              f"{name}", msg.alert_id)
        return msg

    def run_stage(self, name: str, msgs: list[StageMessage]
                  ) -> list[StageMessage | AnimationReady | Stored | None]:
        """Run stage `name` over `msgs` (one model call when the stage is batched). None for a
        message with nothing to do: a redelivery after its event went out."""
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
                ready, fresh = self.completion.finish_once(msg, artifacts, seconds, row)
                # one stored already (another copy got there first): that one is the result,
                # sent only if it is not out yet
                results[i] = ready if fresh else Stored(ready)
            else:
                results[i] = msg.model_copy(update={
                    "stage": graph.NEXT[name], "seconds": seconds,
                    "artifacts": {**msg.artifacts, **artifacts}})
        return results

    def _inputs(self, stage: Stage, msg: StageMessage, known: dict[int, str]) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for name in stage.inputs:
            if name in FROM_ALERT:
                row[name] = FROM_ALERT[name](msg)
                continue
            port = graph.PORTS[name]
            artifact = msg.artifacts.get(name)
            want = ImageRefs if port.kind in IMAGE_KINDS else Value
            if not isinstance(artifact, want):
                raise InvalidMessage(f"stage {stage.name!r} reads {name!r} ({port.kind.value}), "
                                     "which the message does not carry", alert_id=msg.alert_id)
            if port.kind is Kind.VALUE:
                row[name] = value_of(name, port, artifact, msg)
                continue
            images = fetch_images(self.store, port, artifact.keys, self.threads.io.map,
                                  self.recent)
            known.update((id(im), key) for im, key in zip(images, artifact.keys))
            row[name] = images if port.kind is Kind.IMAGES else images[0]
        return row

    def _store(self, stage: Stage, msg: StageMessage, out: dict[str, Any],
               known: dict[int, str]) -> dict[str, Any]:
        artifacts: dict[str, Any] = {}
        uploads = []
        for port in stage.outputs:
            value = out[port.name]
            if port.kind is Kind.VALUE:
                artifacts[port.name] = Value(value=codec(port).dump_python(value, mode="json"))
            elif port.kind is Kind.ANIMATIONS:
                artifacts[port.name] = value  # stored as renditions by the completion
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
        # Written once: a redelivery finds the first delivery's images under the same keys and
        # passes those on. list() waits for every write and re-raises the first failure. An
        # image whose write this call won is what the store holds: kept for the next stage.
        def upload(kv):
            key, image = kv
            if self.store.put_if_absent(key, png_bytes(image), "image/png"):
                self.recent.keep(key, image)
        list(self.threads.io.map(upload, uploads))
        return artifacts

    def close(self) -> None:
        self.threads.close()
