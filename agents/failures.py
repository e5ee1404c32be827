"""What an input that failed becomes: a failure record naming the stage, the reason code, the
error and the whole payload (UTF-8 as it came, other bytes as base64). A record too large for
the broker keeps the payload's beginning, length and hash, and the whole payload goes to the
object store under its hash. How the record leaves is the outbox's job (agents/outbox.py).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time

from alertanim.schemas import FailureRecord, StageMessage
from alertanim.schemas.errors import AlertanimError, RetriesExhausted

from .retry import is_transient, run_retried

log = logging.getLogger("alertanim")

PAYLOAD_PREFIX_BYTES = 4_096  # what a cut failure record keeps of its payload


class Failures:
    def __init__(self, settings, store, ledger, metrics, executor):
        self.settings = settings
        self.store = store
        self.ledger = ledger
        self.metrics = metrics
        self.executor = executor  # where the payload of a cut record is stored from

    async def record(self, stage: str, raw: bytes, exc: BaseException, attempts: int,
                     alert_id: str | None) -> FailureRecord:
        record = build(stage, raw, exc, attempts, alert_id)
        if len(record.to_bytes()) > self.settings.max_record_bytes:
            record = await self._cut(record, raw)
        self.metrics.failed.labels(stage, record.reason).inc()
        log.warning("alert %s failed at %s after %d attempt(s): %s", alert_id, stage, attempts,
                    record.reason)
        return record

    async def _cut(self, record: FailureRecord, raw: bytes) -> FailureRecord:
        key = self.ledger.payload_key(record.payload_sha256)
        try:
            await run_retried(self.settings, self.executor, self.store.put, key, raw,
                              "application/octet-stream")
        except RetriesExhausted as exc:  # the cut record still goes out
            log.warning("could not store the payload of a failure record: %r", exc.error)
            key = None
        head = raw[:PAYLOAD_PREFIX_BYTES]
        payload = (head.decode("utf-8", "ignore") if record.payload_encoding == "utf-8"
                   else base64.b64encode(head).decode())
        return record.model_copy(update={
            "payload": payload, "payload_truncated": True, "payload_key": key,
            "message": record.message[:500]})


def build(stage: str, raw: bytes, exc: BaseException, attempts: int,
          alert_id: str | None) -> FailureRecord:
    try:
        payload, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        payload, encoding = base64.b64encode(raw).decode(), "base64"
    reason = exc.reason if isinstance(exc, AlertanimError) else (
        "transient_error" if is_transient(exc) else "stage_error")
    return FailureRecord(
        alert_id=alert_id, stage=stage, reason=reason,
        error_class=f"{type(exc).__module__}.{type(exc).__qualname__}",
        message=str(exc)[:2000], attempts=attempts, transient=is_transient(exc),
        payload=payload, payload_encoding=encoding, payload_bytes=len(raw),
        payload_sha256=hashlib.sha256(raw).hexdigest(), failed_at=time.time())


def alert_id_of(raw: bytes, exc: BaseException | None = None) -> str | None:
    """The alert an input belongs to: the error's when it names one, else the stage message's,
    when it can be read."""
    named = getattr(exc, "alert_id", None)
    if named:
        return named
    try:
        return StageMessage.from_bytes(raw).alert_id
    except Exception:  # noqa: BLE001
        return None
