"""What happens to messages of one stage, whatever the transport: decode → run the stage through
the adapter off the event loop, under the retry policy → send the result, or a failure record.
Never raises: Faust acks a message whose agent raised, so an escaped exception would be a
silently lost alert.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from functools import partial

from alertanim.schemas import AnimationReady, FailureRecord, StageMessage
from alertanim.schemas.errors import AlertanimError, InvalidInput, SendRefused

from .adapter import Adapter, Stored
from .emitter import Emitter
from .metrics import Metrics
from .retry import async_retrying, is_transient
from .topology import INGEST, uses_gpu

log = logging.getLogger("alertanim")

Send = Callable[[str, "str | None", bytes], Awaitable[None]]  # (topic, key, value)
PAYLOAD_PREFIX_BYTES = 4_096  # what a cut failure record keeps of its payload


class Exhausted(Exception):
    """The retry policy gave up on `error` after `attempts` tries."""

    def __init__(self, error: BaseException, attempts: int):
        super().__init__(f"gave up after {attempts} attempt(s): {error!r}")
        self.error, self.attempts = error, attempts


class StageProcessor:
    def __init__(self, settings, adapter: Adapter, send: Send, metrics: Metrics | None = None,
                 executor: Executor | None = None, cpu_executor: Executor | None = None,
                 emitter: Emitter | None = None,
                 owns: Callable[[str, int], bool] | None = None,
                 committing: Callable[[str, int, int], Awaitable[None]] | None = None):
        self.settings = settings
        self.adapter = adapter
        self.send = send
        # With an emitter, what ends an input (the last stage's completion, a failure record at
        # any stage) leaves in a Kafka transaction with the input's offset (agents/emitter.py);
        # without one, by plain acknowledged sends.
        self.emitter = emitter
        # whether this worker still owns an input partition (topic, partition)
        self.owns = owns or (lambda topic, partition: True)
        # awaited with (topic, partition, next offset) before a transaction commits an input's
        # offset, so the consumer's own commits never move that partition's offset back below it
        self.committing = committing or _nothing
        self.metrics = metrics or Metrics()
        # One thread owns the GPU; the CPU stages (ingest, subject, animate) and the completion
        # markers run beside it, so one alert's GIF encodes while the next one denoises.
        self.executor = executor or ThreadPoolExecutor(1, thread_name_prefix="alertanim-gpu")
        self.cpu_executor = cpu_executor or ThreadPoolExecutor(
            2, thread_name_prefix="alertanim-cpu")

    def executor_for(self, stage: str) -> Executor:
        return self.executor if uses_gpu(stage) else self.cpu_executor

    # -- the retry policy, applied -----------------------------------------------------------
    async def _retried(self, stage: str, fn, *args, executor: Executor | None = None):
        """`fn(*args)` on the stage's executor under the policy: what waiting can fix is retried
        until the deadline; other errors get MAX_ATTEMPTS tries; invalid input none."""
        loop = asyncio.get_running_loop()
        executor = executor or self.executor_for(stage)

        def on_retry(state):
            self.metrics.retries.labels(stage).inc()
            log.info("retrying %s (attempt %d): %r", stage, state.attempt_number,
                     state.outcome.exception())

        tries = 0
        try:
            async for attempt in async_retrying(
                    self.settings, retry_on=lambda exc: not isinstance(exc, InvalidInput),
                    on_retry=on_retry):
                with attempt:
                    tries += 1
                    return await loop.run_in_executor(executor, fn, *args)
        except Exception as exc:  # noqa: BLE001
            raise Exhausted(exc, tries) from exc

    async def _send(self, topic: str, key: str | None, value: bytes) -> None:
        """Send and wait for the broker's ack. A broker that is away is waited for (offsets stay
        uncommitted meanwhile, so a worker stopped here sees the message again after restart);
        a record the broker will never take raises SendRefused at once."""
        def on_retry(state):
            log.warning("send to %s failed (attempt %d), retrying: %r", topic,
                        state.attempt_number, state.outcome.exception())
        try:
            async for attempt in async_retrying(self.settings, retry_on=is_transient,
                                                forever_if_transient=True, on_retry=on_retry):
                with attempt:
                    await self.send(topic, key, value)
        except Exception as exc:  # noqa: BLE001 - every non-transient send error is a refusal
            raise SendRefused(f"the broker refused a record for {topic}: {exc!r}") from exc

    # -- one message, several ----------------------------------------------------------------
    async def process(self, stage: str, raw: bytes, source: str = "",
                      key: bytes | None = None) -> None:
        await self.process_many(stage, [raw], [source], [key])

    async def process_many(self, stage: str, raws: list[bytes],
                           sources: list[str] | None = None,
                           keys: list[bytes | None] | None = None) -> None:
        """Messages of one stage; a batched stage runs them in one model call. A batch that
        fails is run again one message at a time, so one bad alert (or a batch too big for the
        GPU) costs only itself."""
        sources = sources or [""] * len(raws)
        keys = keys or [None] * len(raws)
        ended = 0  # messages whose outcome was sent
        try:
            if stage == INGEST:
                for raw, source, key in zip(raws, sources, keys):
                    await self._one(stage, raw, partial(self.adapter.ingest, raw, source, key),
                                    source)
                    ended += 1
                return
            # Decoding reads the ledger (a CAP alert's cancellation): off the event loop, under
            # the retry policy, so a store blip is waited out instead of failing the batch.
            decoded: list[StageMessage | Exhausted] = []
            for raw in raws:
                try:
                    decoded.append(await self._retried(stage, self.adapter.decode, stage, raw,
                                                       executor=self.cpu_executor))
                except Exhausted as gave_up:
                    decoded.append(gave_up)
            msgs = [m for m in decoded if isinstance(m, StageMessage)]
            results, elapsed = None, 0.0
            if len(msgs) > 1:
                results, elapsed = await self._batch(stage, msgs)
            done = iter(results or [])
            # Outcomes in input order: a failure record's transaction commits its input's
            # offset, which must not pass an earlier message whose result is not yet sent.
            for raw, source, m in zip(raws, sources, decoded):
                if isinstance(m, Exhausted):
                    await self.fail(stage, raw, m.error, m.attempts,
                                    getattr(m.error, "alert_id", None) or _alert_id(raw), source)
                elif results is not None:
                    await self._emit(stage, raw, next(done), elapsed, source)
                else:  # alone, or its batch failed: one at a time
                    await self._one(stage, raw, partial(self.adapter.run_stage, stage, [m]),
                                    source)
                ended += 1
        except Exception as exc:  # noqa: BLE001 - last line of defence: record, never drop
            log.exception("unexpected error at %s", stage)
            for raw, source in zip(raws[ended:], sources[ended:]):
                await self._fail_safely(stage, raw, exc, source)

    async def _one(self, stage: str, raw: bytes, call, source: str = "") -> None:
        t0 = time.perf_counter()
        try:
            result = await self._retried(stage, call)
        except Exhausted as gave_up:  # every error ends as a failure record
            exc = gave_up.error
            await self.fail(stage, raw, exc, gave_up.attempts,
                            getattr(exc, "alert_id", None) or _alert_id(raw), source)
            return
        for one in (result if isinstance(result, list) else [result]):
            await self._emit(stage, raw, one, time.perf_counter() - t0, source)

    async def _batch(self, stage: str, msgs: list[StageMessage]) -> tuple[list | None, float]:
        """One model call for `msgs`: their results and the seconds it took, or None when the
        batch failed (its messages then run one at a time)."""
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        try:
            results = await loop.run_in_executor(self.executor_for(stage),
                                                 self.adapter.run_stage, stage, msgs)
        except Exception as exc:  # noqa: BLE001 - fall back to one at a time
            log.info("batch of %d at %s failed (%r); running them one by one", len(msgs),
                     stage, exc)
            return None, 0.0
        self.metrics.batch_size.labels(stage).observe(len(msgs))
        return results, time.perf_counter() - t0

    async def _emit(self, stage: str, raw: bytes, result, seconds: float,
                    source: str = "") -> None:
        self.metrics.seconds.labels(stage).observe(seconds)
        self.metrics.processed.labels(stage).inc()
        if result is None:
            self.metrics.duplicates.labels(stage).inc()
            return
        try:
            # Only the last stage's own input offset commits with its completion; a stored
            # result that ingest sends again for a re-published alert goes out plainly.
            where = (_source(source)
                     if self.emitter is not None and stage == self.emitter.stage else None)
            if isinstance(result, Stored) and where is not None:
                if await self._already_out(stage, raw, where[1], result.ready):
                    self.metrics.duplicates.labels(stage).inc()
                    await self._record_emitted(result.ready)
                    return
            if isinstance(result, Stored):
                result = result.ready
            if isinstance(result, AnimationReady) and where is not None:
                if await self._emit_in_transaction(stage, raw, result, where):
                    await self._record_emitted(result)
            elif isinstance(result, AnimationReady):
                await self._send(self.settings.topic_ready, result.alert_id, result.to_bytes())
                await self._answer_cap(stage, raw, result)
                await self._record_emitted(result)
            else:
                await self._send(self.settings.stage_topic(result.stage), result.alert_id,
                                 result.to_bytes())
        except SendRefused as exc:
            await self.fail(stage, raw, exc, 1, result.alert_id, source)

    async def _already_out(self, stage: str, raw: bytes, partition: int,
                           ready: AnimationReady) -> bool:
        try:  # transient errors until the deadline, then the answer that loses nothing
            async for attempt in async_retrying(self.settings, retry_on=is_transient):
                with attempt:
                    return await self.emitter.already_out(partition, ready.alert_id, ready.run,
                                                          ready.completed_at)
        except Exception as exc:  # noqa: BLE001 - unsure: sending again beats losing it
            log.warning("cannot tell whether %s's event went out (%r); sending it",
                        ready.alert_id, exc)
        return False

    async def _emit_in_transaction(self, stage: str, raw: bytes, ready: AnimationReady,
                                   where: tuple[str, int, int]) -> bool:
        """The event, its CAP answer and the input offset, in one transaction. False when the
        partition moved to another worker while this one was at it. A retry first asks whether
        the previous attempt's transaction committed after all (a commit whose answer was lost),
        so a retry never sends the event twice."""
        records = [(self.settings.topic_ready, ready.alert_id, ready.to_bytes()),
                   *await self._cap_records(raw, ready)]
        return await self._transact(
            where, records, ready.alert_id,
            went_out=partial(self._already_out, stage, raw, where[1], ready))

    async def _transact(self, where: tuple[str, int, int],
                        records: list[tuple[str, str | None, bytes]], what: str | None,
                        went_out: Callable[[], Awaitable[bool]]) -> bool:
        """`records` and the offset after the input at `where` (topic, partition, offset), in one
        transaction, retried while the broker is away. False when the partition moved to another
        worker meanwhile: the input is that worker's now (it comes to it again), so nothing is
        sent. Before trying again, `went_out()` says whether the last try committed after all."""
        topic, partition, offset = where

        def on_retry(state):
            log.warning("transaction for %s failed (attempt %d), retrying: %r", what,
                        state.attempt_number, state.outcome.exception())
        last: BaseException | None = None
        try:
            async for attempt in async_retrying(
                    self.settings, retry_on=lambda e: is_transient(e) or _fenced(e),
                    forever_if_transient=True, on_retry=on_retry):
                with attempt:
                    if last is not None:
                        if not self.owns(topic, partition):
                            log.info("%s:%d moved while %s was ending; its new owner sends it",
                                     topic, partition, what)
                            return False
                        if await went_out():
                            return True
                    try:
                        await self.committing(topic, partition, offset + 1)
                        await self.emitter.emit(topic, partition, records, offset + 1)
                    except Exception as exc:
                        last = exc
                        raise
            return True
        except Exception as exc:  # noqa: BLE001 - every non-transient error is a refusal
            raise SendRefused(f"the broker refused the records of {what}: {exc!r}") from exc

    async def _offset_passed(self, where: tuple[str, int, int]) -> bool:
        """Whether the group's offset is past the input at `where`: only a transaction that
        ended it commits that far while it is being processed."""
        topic, partition, offset = where
        try:
            async for attempt in async_retrying(self.settings, retry_on=is_transient):
                with attempt:
                    return await self.emitter.committed(topic, partition) > offset
        except Exception as exc:  # noqa: BLE001 - unsure: sending again beats losing it
            log.warning("cannot read the offset of %s:%d (%r); sending again", topic, partition,
                        exc)
        return False

    async def _answer_cap(self, stage: str, raw: bytes, ready: AnimationReady) -> None:
        """An alert that came in as CAP is answered on the cap topic with a CAP Update carrying
        its renditions. Made from what is stored, so a redelivery sends the same message."""
        for topic, key, value in await self._cap_records(raw, ready):
            if topic == self.settings.topic_failed:
                await self._send_failure(key, value)
            else:
                await self._send(topic, key, value)

    async def _cap_records(self, raw: bytes, ready: AnimationReady) -> list:
        """The CAP Update answering an alert that came in as CAP (nothing for others); one that
        cannot be made is a failure record of its own, and the event still goes out."""
        if ready.cap is None:
            return []
        try:
            update = await self._retried("cap", self.adapter.cap_answer, ready)
        except Exhausted as gave_up:
            record = await self._failure("cap", raw, gave_up.error, gave_up.attempts,
                                         ready.alert_id)
            return [(self.settings.topic_failed, ready.alert_id, record.to_bytes())]
        return [(self.settings.topic_cap, ready.alert_id, update)]

    async def _record_emitted(self, ready: AnimationReady) -> None:
        """Retried through storage blips; if it still fails the cost is at most one duplicate
        event on a later redelivery, so it is logged, not fatal."""
        try:
            await self._retried("ledger", self.adapter.ledger.mark_emitted, ready)
        except Exhausted as exc:
            log.warning("could not record that %s's completion went out: %r", ready.alert_id,
                        exc.error)

    # -- failure records ---------------------------------------------------------------------
    async def fail(self, stage: str, raw: bytes, exc: BaseException, attempts: int,
                   alert_id: str | None, source: str = "") -> None:
        """The input ends as a failure record. With an emitter and the input's place (`source`,
        "topic:partition:offset"), the record and the input's offset commit in one transaction,
        so a worker killed in between sends neither and the input's next owner sends one."""
        record = await self._failure(stage, raw, exc, attempts, alert_id)
        where = _source(source) if self.emitter is not None else None
        if where is not None:
            try:
                await self._transact(where, [(self.settings.topic_failed, alert_id,
                                              record.to_bytes())], alert_id or "an input",
                                     went_out=partial(self._offset_passed, where))
                return
            except SendRefused as refused:
                log.warning("%s; sending the failure record plainly", refused)
        await self._send_failure(alert_id, record.to_bytes())

    async def _failure(self, stage: str, raw: bytes, exc: BaseException, attempts: int,
                       alert_id: str | None) -> FailureRecord:
        record = self._record(stage, raw, exc, attempts, alert_id)
        if len(record.to_bytes()) > self.settings.max_record_bytes:
            record = await self._cut(record, raw)
        self.metrics.failed.labels(stage, record.reason).inc()
        log.warning("alert %s failed at %s after %d attempt(s): %s", alert_id, stage, attempts,
                    record.reason)
        return record

    async def _send_failure(self, alert_id: str | None, value: bytes) -> None:
        try:
            await self._send(self.settings.topic_failed, alert_id, value)
        except SendRefused:
            # The failed topic itself refuses: the log is the record of last resort.
            record = FailureRecord.from_bytes(value)
            log.error("could not send the failure record of %s (%s at %s, payload sha256 %s)",
                      alert_id, record.reason, record.stage, record.payload_sha256)

    def _record(self, stage, raw, exc, attempts, alert_id) -> FailureRecord:
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

    async def _cut(self, record: FailureRecord, raw: bytes) -> FailureRecord:
        """A record too large for the broker keeps the payload's beginning, length and hash;
        the whole payload goes to the object store when it can."""
        key = self.adapter.ledger.payload_key(record.payload_sha256)
        try:
            await self._retried("ledger", self.adapter.store.put, key, raw,
                                "application/octet-stream")
        except Exhausted as exc:  # the cut record still goes out
            log.warning("could not store the payload of a failure record: %r", exc.error)
            key = None
        head = raw[:PAYLOAD_PREFIX_BYTES]
        payload = (head.decode("utf-8", "ignore") if record.payload_encoding == "utf-8"
                   else base64.b64encode(head).decode())
        return record.model_copy(update={
            "payload": payload, "payload_truncated": True, "payload_key": key,
            "message": record.message[:500]})

    async def _fail_safely(self, stage: str, raw: bytes, exc: BaseException,
                           source: str = "") -> None:
        try:
            await self.fail(stage, raw, exc, 1, _alert_id(raw), source)
        except Exception:  # noqa: BLE001
            log.exception("could not record a failure at %s", stage)


async def _nothing(*args) -> None:
    return None


def _fenced(exc: BaseException) -> bool:
    """Another producer took this transactional id: the partition's new owner, or this worker's
    own fresh producer after the partition came back."""
    from aiokafka.errors import InvalidProducerEpoch, ProducerFenced

    return isinstance(exc, (ProducerFenced, InvalidProducerEpoch))


def _source(source: str) -> tuple[str, int, int] | None:
    """(topic, partition, offset) of a "topic:partition:offset" source, or None."""
    try:
        topic, partition, offset = source.rsplit(":", 2)
        return topic, int(partition), int(offset)
    except ValueError:
        return None


def _alert_id(raw: bytes) -> str | None:
    """The alert id of an intermediate message, when it can be read."""
    try:
        return StageMessage.from_bytes(raw).alert_id
    except Exception:  # noqa: BLE001
        return None
