"""The ledger: every object key the stream uses, and the protocol that keeps one completion event
per alert. One place derives keys; nothing else builds them.

    alerts/<alert id>.json                      the first claim on an id: content hash, source
    alerts/<alert id>.cap.xml                   the CAP document it came in as, when it did
    alerts/<alert id>.cancelled                 a CAP Cancel named it: in-flight runs stop
    runs/<alert id>/<run>/<stage>/<NN>.png      a stage's images (claim check)
    runs/<alert id>/<run>/renditions/animation.<ext>
    runs/<alert id>/<run>/report.html           the alert's report, self-contained HTML
    runs/<alert id>/<run>/ready.json            the completion, stored before its event is sent
    runs/<alert id>/<run>/emitted               written once the event was acknowledged
    runs/<alert id>/<run>/instant.sent          without transactions: written once the instant
                                                event went out
    failed/<sha256>                             an input too large for its failure record

`run` names everything one configuration produces for an alert: the method's settings, the model
source and the pipeline version. Keys are deterministic, and every output is written once, with
a conditional write (S3's `If-None-Match: *`): a redelivered message finds its objects there and
rewrites nothing, and a replayed or forged one cannot overwrite them. A stage message is believed
only for the alert the first claim on its id recorded (`check_claim`).
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from alertanim.pipeline import __version__ as PIPELINE_VERSION
from alertanim.pipeline.animate import EXTENSIONS
from alertanim.pipeline.config import MethodConfig
from alertanim.schemas import (Alert, AnimationReady, ArtifactMissing, ImageRefs, InvalidAlert,
                               InvalidMessage, StageMessage)

from .storage import ObjectStore

CLAIMS_CACHED = 4_096  # claims kept in memory: a claim never changes once written

def run_id(config: MethodConfig, models: str, version: str = PIPELINE_VERSION) -> str:
    basis = f"{config.fingerprint()}|{models}|{version}"
    return hashlib.sha256(basis.encode()).hexdigest()[:12]


def seed_for(alert_id: str) -> int:
    """An alert's seed, from its id: the same alert gets the same images wherever it runs."""
    return int.from_bytes(hashlib.sha256(alert_id.encode()).digest()[:4], "big") & 0x7FFFFFFF


class Claim(enum.Enum):
    NEW = "new"  # first sight of this id: run it
    RERUN = "rerun"  # seen, not finished (in flight, or its run failed): run it again
    FINISHED = "finished"  # re-published after completion: send the stored result again
    ALREADY_SENT = "already_sent"  # the same record again, after its event went out: nothing


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    ready: AnimationReady | None = None
    # whether the record is the one that claimed the id (NEW, or that record read again): the
    # one whose transaction sends the alert's instant event
    first: bool = False


class Ledger:
    def __init__(self, store: ObjectStore, presign_expiry_s: int):
        self.store = store
        self.presign_expiry_s = presign_expiry_s
        self._claims: OrderedDict[str, str] = OrderedDict()  # alert id → claimed content hash
        self._claims_lock = threading.Lock()  # decoding runs on several threads

    # -- keys --------------------------------------------------------------------------------
    @staticmethod
    def alert_key(alert_id: str) -> str:
        return f"alerts/{alert_id}.json"

    @staticmethod
    def cap_key(alert_id: str) -> str:
        return f"alerts/{alert_id}.cap.xml"

    @staticmethod
    def cancelled_key(alert_id: str, status: str = "Actual") -> str:
        """The marker of a CAP Cancel of `status` naming the alert: a Cancel stops only an
        alert of its own status (a Test Cancel never stops an Actual alert)."""
        return f"alerts/{alert_id}.cancelled" + ("" if status == "Actual" else f".{status}")

    @staticmethod
    def run_prefix(alert_id: str, run: str) -> str:
        return f"runs/{alert_id}/{run}/"

    def image_key(self, alert_id: str, run: str, stage: str, index: int) -> str:
        return f"{self.run_prefix(alert_id, run)}{stage}/{index:02d}.png"

    def rendition_key(self, alert_id: str, run: str, media_type: str) -> str:
        return f"{self.run_prefix(alert_id, run)}renditions/animation.{EXTENSIONS[media_type]}"

    def report_key(self, alert_id: str, run: str) -> str:
        return f"{self.run_prefix(alert_id, run)}report.html"

    def ready_key(self, alert_id: str, run: str) -> str:
        return f"{self.run_prefix(alert_id, run)}ready.json"

    def emitted_key(self, alert_id: str, run: str) -> str:
        return f"{self.run_prefix(alert_id, run)}emitted"

    @staticmethod
    def payload_key(sha256: str) -> str:
        return f"failed/{sha256}"

    def instant_sent_key(self, alert_id: str, run: str) -> str:
        """Without transactions: the marker that the alert's instant event went out."""
        return f"{self.run_prefix(alert_id, run)}instant.sent"

    # -- the scene library: one folder per entry, beside the runs ----------------------------
    @staticmethod
    def library_prefix(run: str) -> str:
        return f"library/{run}/"

    def library_entry_key(self, run: str, entry: str) -> str:
        return f"{self.library_prefix(run)}{entry}/entry.json"

    def library_rendition_key(self, run: str, entry: str, media_type: str) -> str:
        return f"{self.library_prefix(run)}{entry}/animation.{EXTENSIONS[media_type]}"

    def library_report_key(self, run: str, entry: str) -> str:
        return f"{self.library_prefix(run)}{entry}/report.html"

    def check(self, msg: StageMessage) -> None:
        """Refuse a message naming an object the ledger would not derive for its alert: a
        message on an intermediate topic must not make a worker read or overwrite another
        alert's objects."""
        prefix = self.run_prefix(msg.alert_id, msg.run)
        pattern = re.compile(rf"^{re.escape(prefix)}[a-z_]{{1,32}}/\d{{2,3}}\.png$")
        for name, artifact in msg.artifacts.items():
            if isinstance(artifact, ImageRefs):
                bad = [k for k in artifact.keys if not pattern.match(k)]
                if bad:
                    raise InvalidMessage(f"artifact {name!r} names keys outside this alert's "
                                         f"run: {bad[0]!r}", alert_id=msg.alert_id)

    def check_claim(self, msg: StageMessage) -> None:
        """Refuse a stage message whose alert is not the one claimed under its id: a message
        written to an intermediate topic under a victim's id, with other content, must not make
        a worker work on (and write under) the victim's folder. The claim is the first writer's
        record, made at ingest with a conditional write; its content hash is compared, not just
        the id."""
        claimed = self.claimed_hash(msg.alert_id)
        if claimed is None:
            raise InvalidMessage(f"no alert was claimed under the id {msg.alert_id!r}: a stage "
                                 "message that did not come through ingest",
                                 reason="forged_message", alert_id=msg.alert_id)
        if claimed != msg.alert.content_hash():
            raise InvalidMessage(f"the message's alert is not the one claimed under the id "
                                 f"{msg.alert_id!r} (other content)", reason="forged_message",
                                 alert_id=msg.alert_id)

    def claimed_hash(self, alert_id: str) -> str | None:
        """The content hash the first claim on `alert_id` recorded, or None when there is no
        claim. Claims are written once and never change, so what was read is kept."""
        with self._claims_lock:
            digest = self._claims.get(alert_id)
            if digest is not None:
                self._claims.move_to_end(alert_id)
                return digest
        try:
            seen = json.loads(self.store.get(self.alert_key(alert_id)))
        except ArtifactMissing:
            return None
        digest = seen.get("content_hash") if isinstance(seen, dict) else None
        if not isinstance(digest, str):
            return None
        self._remember_claim(alert_id, digest)
        return digest

    def _remember_claim(self, alert_id: str, digest: str) -> None:
        with self._claims_lock:
            self._claims[alert_id] = digest
            self._claims.move_to_end(alert_id)
            while len(self._claims) > CLAIMS_CACHED:
                self._claims.popitem(last=False)

    # -- writing once ------------------------------------------------------------------------
    def put_once(self, key: str, data: bytes, content_type: str) -> bytes:
        """Write `key` unless an object is there already; the bytes the store holds under it
        afterwards (`data`, or what an earlier write left: a redelivery's outputs are the first
        delivery's). What is made from them (sizes, digests) describes what consumers fetch."""
        if self.store.put_if_absent(key, data, content_type):
            return data
        return self.store.get(key)

    # -- the first claim on an alert id ------------------------------------------------------
    def claim(self, alert: Alert, source: str, run: str) -> ClaimResult:
        """Tell a new alert from a redelivery and a re-publication, atomically.

        `source` names the Kafka record (its position, topic:partition:offset). The same record seen again is a
        redelivery after a crash: it goes on unless its animation already went out. The same
        content under a new record is a re-publication: a finished result is sent again, never
        recomputed; one still in flight runs again rather than risk being lost (both copies share
        a partition at every stage, so the second is suppressed at the end once the first event
        went out). Other content under a used id is refused. The record that claimed the id
        (`first`: that record, whenever it is read) is the one whose hand-over carries the
        alert's instant event; a copy under another record sends none.
        """
        digest = alert.content_hash()
        body = json.dumps({"content_hash": digest, "run": run, "source": source,
                           "received_at": time.time()}).encode()
        key = self.alert_key(alert.id)
        if self.store.put_if_absent(key, body, "application/json"):
            self._remember_claim(alert.id, digest)
            return ClaimResult(Claim.NEW, first=True)
        seen = json.loads(self.store.get(key))
        self._remember_claim(alert.id, seen["content_hash"])
        if seen["content_hash"] != digest:
            raise InvalidAlert("duplicate_id_conflict",
                               f"alert id {alert.id!r} was already used for different content",
                               alert.id)
        if seen.get("source") == source:
            return ClaimResult(Claim.ALREADY_SENT if self.emitted(alert.id, run) else Claim.RERUN,
                               first=bool(source))
        ready = self.finished(alert.id, run)
        return ClaimResult(Claim.FINISHED, ready) if ready else ClaimResult(Claim.RERUN)

    # -- CAP: the original document, and cancellation ----------------------------------------
    def record_cap(self, alert_id: str, document: bytes) -> None:
        """The CAP document an alert came in as; the first one stays (a re-publication with the
        same content hash may differ in bytes the animation does not read)."""
        self.store.put_if_absent(self.cap_key(alert_id), document, "application/xml")

    def cap_document(self, alert_id: str) -> bytes:
        return self.store.get(self.cap_key(alert_id))

    def cancel(self, alert_id: str, by: str, status: str) -> None:
        self.store.put_if_absent(self.cancelled_key(alert_id, status), by.encode(), "text/plain")

    def cancelled(self, alert_id: str, status: str) -> bool:
        return self.store.exists(self.cancelled_key(alert_id, status))

    # -- completion: stored, then sent, then marked ------------------------------------------
    def record_ready(self, ready: AnimationReady) -> bool:
        """Store the completion, once: False when one was stored already (it stays, and is the
        one to send)."""
        return self.store.put_if_absent(self.ready_key(ready.alert_id, ready.run),
                                        ready.to_bytes(), "application/json")

    def finished(self, alert_id: str, run: str) -> AnimationReady | None:
        """The stored completion of this run, with fresh URLs, or None."""
        rkey = self.ready_key(alert_id, run)
        if not self.store.exists(rkey):
            return None
        ready = AnimationReady.from_bytes(self.store.get(rkey))
        renditions = []
        for r in ready.renditions:
            url, expires = self.store.url(self.rendition_key(alert_id, run, r.media_type),
                                          self.presign_expiry_s)
            renditions.append(r.model_copy(update={"url": url, "url_expires_at": expires}))
        update: dict = {"renditions": renditions}
        if ready.report is not None:
            url, expires = self.store.url(self.report_key(alert_id, run), self.presign_expiry_s)
            update["report"] = ready.report.model_copy(
                update={"url": url, "url_expires_at": expires})
        return ready.model_copy(update=update)

    def emitted(self, alert_id: str, run: str) -> bool:
        return self.store.exists(self.emitted_key(alert_id, run))

    def instant_sent(self, alert_id: str, run: str) -> bool:
        return self.store.exists(self.instant_sent_key(alert_id, run))

    def mark_instant_sent(self, alert_id: str, run: str) -> None:
        self.store.put_if_absent(self.instant_sent_key(alert_id, run), b"",
                                 "application/octet-stream")

    def mark_emitted(self, ready: AnimationReady) -> None:
        self.store.put_if_absent(self.emitted_key(ready.alert_id, ready.run), b"",
                                 "application/octet-stream")
