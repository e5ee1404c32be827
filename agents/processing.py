"""What happens to the messages of one stage: decode → run the stage through the adapter off the
event loop, under the retry policy → the outcome leaves through the outbox: the next stage's
message (from the subject stage, with the alert's instant event), the completion event with its
CAP answer, or a failure record. A batched stage runs its messages in one model call; a batch
that fails runs again one message at a time, so one bad alert (or a batch too big for the GPU)
costs only itself. Outcomes leave in input order. What no consumer needs before an event (the
report, the outcome's log line, ledger markers) happens after it.

Never raises: an escaped exception would end the agent, and with it the stage.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import NamedTuple

from alertanim.pipeline import graph
from alertanim.schemas import AnimationReady, FailureRecord, InstantAnimation, StageMessage
from alertanim.schemas.errors import InvalidInput, RetriesExhausted, SendRefused

from .adapter import Adapter, Stored
from .emitter import Position
from .events import Out, event_headers, source_of, stage_headers, trace_id
from .failures import Failures, alert_id_of
from .metrics import Metrics
from .outbox import Outbox, Records
from .retry import run_retried
from .threads import WorkerStopping
from .topology import INGEST

log = logging.getLogger("alertanim")
outcomes = logging.getLogger("alertanim.outcome")  # one JSON line per alert that ended


class Input(NamedTuple):
    raw: bytes
    at: Position | None = None  # where it was read (its transaction commits past it)
    key: bytes | None = None  # the record's key; None when it did not come from Kafka
    traceparent: str | None = None  # the record's, when valid (ingest); stages carry their own


class StageProcessor:
    def __init__(self, settings, adapter: Adapter, outbox: Outbox,
                 metrics: Metrics | None = None):
        self.settings = settings
        self.adapter = adapter
        self.outbox = outbox
        self.metrics = metrics or Metrics()
        self.threads = adapter.threads
        self.failures = Failures(settings, adapter.store, adapter.ledger, self.metrics,
                                 self.threads.cpu)
        self.source = source_of(settings)
        self.last_input = time.monotonic()  # when a stage message last came in (idle work)

    async def _retried(self, stage: str, fn, *args, executor=None):
        """`fn(*args)` under the policy: what waiting can fix is retried until the deadline;
        other errors get MAX_ATTEMPTS tries; invalid input none."""
        def on_retry(state):
            self.metrics.retries.labels(stage).inc()
            log.info("retrying %s (attempt %d): %r", stage, state.attempt_number,
                     state.outcome.exception())
        try:
            return await run_retried(
                self.settings, executor or self.threads.for_stage(stage), fn, *args,
                retry_on=lambda exc: not isinstance(exc, InvalidInput) and not self.stopping,
                on_retry=on_retry)
        except RetriesExhausted as gave_up:
            if self.stopping:  # the pools went away under it: not the input's fault
                raise WorkerStopping(f"{stage} stopped with the worker") from gave_up.error
            raise

    @property
    def stopping(self) -> bool:
        """Whether the worker is shutting down (its pools are closed)."""
        return self.threads.closed

    # -- one message, several ----------------------------------------------------------------
    async def process(self, stage: str, raw: bytes, at: Position | None = None,
                      key: bytes | None = None, traceparent: str | None = None) -> None:
        await self.process_inputs(stage, [Input(raw, at, key, traceparent)])

    async def process_many(self, stage: str, raws: list[bytes],
                           positions: list[Position | None] | None = None) -> None:
        positions = positions or [None] * len(raws)
        await self.process_inputs(stage, [Input(r, at) for r, at in zip(raws, positions)])

    async def process_inputs(self, stage: str, inputs: list[Input]) -> None:
        self.last_input = time.monotonic()
        ended = 0  # inputs whose outcome left
        try:
            if stage == INGEST:
                for one in inputs:
                    await self._one(stage, one, self.adapter.ingest, one.raw, one.at, one.key,
                                    one.traceparent)
                    ended += 1
                return
            # Decoding reads the ledger (a CAP alert's cancellation): off the event loop, under
            # the retry policy, so a store blip is waited out instead of failing the batch.
            decoded: list[StageMessage | RetriesExhausted] = []
            for one in inputs:
                try:
                    decoded.append(await self._retried(stage, self.adapter.decode, stage,
                                                       one.raw, executor=self.threads.cpu))
                except RetriesExhausted as gave_up:
                    decoded.append(gave_up)
            msgs = [m for m in decoded if isinstance(m, StageMessage)]
            results, elapsed = (await self._batch(stage, msgs)) if len(msgs) > 1 else (None, 0.0)
            done = iter(results or [])
            # In input order: an outcome's transaction commits its input's offset, which must
            # not pass an earlier input whose outcome has not left yet.
            for one, m in zip(inputs, decoded):
                if isinstance(m, RetriesExhausted):
                    await self.fail(stage, one, m)
                    ended += 1
                    continue
                one = one._replace(traceparent=m.traceparent)
                if results is not None:
                    await self._leave(stage, one, next(done), elapsed)
                else:  # alone, or its batch failed: one at a time
                    await self._one(stage, one, self._run_one, stage, m)
                ended += 1
        except Exception as exc:  # noqa: BLE001 - last line of defence: record, never drop
            log.exception("unexpected error at %s", stage)
            for one in inputs[ended:]:
                try:
                    await self.fail(stage, one, RetriesExhausted(exc, 1))
                except Exception:  # noqa: BLE001
                    log.exception("could not record a failure at %s", stage)

    def _run_one(self, stage: str, msg: StageMessage):
        [result] = self.adapter.run_stage(stage, [msg])
        return result

    async def _one(self, stage: str, one: Input, fn, *args) -> None:
        t0 = time.perf_counter()
        try:
            result = await self._retried(stage, fn, *args)
        except RetriesExhausted as gave_up:  # every error ends as a failure record
            await self.fail(stage, one, gave_up)
            return
        if isinstance(result, StageMessage) and stage == INGEST:
            one = one._replace(traceparent=result.traceparent)
        await self._leave(stage, one, result, time.perf_counter() - t0)

    async def _batch(self, stage: str, msgs: list[StageMessage]) -> tuple[list | None, float]:
        """One model call for `msgs`: their results and the seconds it took, or None when the
        batch failed (its messages then run one at a time)."""
        t0 = time.perf_counter()
        try:
            results = await asyncio.get_running_loop().run_in_executor(
                self.threads.for_stage(stage), self.adapter.run_stage, stage, msgs)
        except Exception as exc:  # noqa: BLE001 - fall back to one at a time
            log.info("batch of %d at %s failed (%r); running them one by one", len(msgs),
                     stage, exc)
            return None, 0.0
        self.metrics.batch_size.labels(stage).observe(len(msgs))
        return results, time.perf_counter() - t0

    # -- the outcome -------------------------------------------------------------------------
    async def _leave(self, stage: str, one: Input,
                     result: StageMessage | AnimationReady | Stored | None,
                     seconds: float) -> None:
        self.metrics.seconds.labels(stage).observe(seconds)
        self.metrics.processed.labels(stage).inc()
        alert_id = getattr(result, "alert_id", None) or alert_id_of(one.raw)
        try:
            if isinstance(result, StageMessage):
                await self._hand_over(stage, one, result)
            elif result is None:  # nothing to do; with transactions, its offset still commits
                self.metrics.duplicates.labels(stage).inc()
                await self.outbox.leave(one.at, [], alert_id)
            else:
                await self._complete(stage, one, result)
        except SendRefused as exc:
            await self.fail(stage, one, RetriesExhausted(exc, 1), alert_id)

    async def _hand_over(self, stage: str, one: Input, msg: StageMessage) -> None:
        records = [Out(self.settings.stage_topic(msg.stage), msg.alert_id, msg.to_bytes(),
                       stage_headers(msg.traceparent))]
        instant = await self._instant(stage, msg)
        if instant is not None:  # with the hand-over: both leave, or neither
            records.append(Out(self.settings.topic_instant, instant.alert_id, instant.to_bytes(),
                               event_headers("instant", f"{instant.alert_id}.{instant.run}"
                                             ".instant", instant.alert_id, self.source,
                                             msg.traceparent, instant.sent_at)))
        if await self.outbox.leave(one.at, records, msg.alert_id) and instant is not None:
            self._log_outcome("instant", instant.alert_id, msg.traceparent, {
                "tier": "library", "entry": instant.entry, "subject": instant.subject,
                "hazard": instant.hazard, "latency_seconds": instant.latency_seconds})
            await self._mark("instant", self.adapter.ledger.mark_instant_sent,
                             instant.alert_id, instant.run)

    async def _complete(self, stage: str, one: Input, result: AnimationReady | Stored) -> None:
        """The `ready` event and its CAP answer. A completion found stored without its marker is
        sent again only when it is not on `ready` already (the marker is written after the
        event goes out; a worker can stop in between)."""
        ready = result.ready if isinstance(result, Stored) else result
        at = one.at

        def out():
            return self.outbox.event_out(at.partition, ready.alert_id, ready.run,
                                         ready.completed_at)
        if isinstance(result, Stored) and self.outbox.transactional(at) and await out():
            self.metrics.duplicates.labels(stage).inc()
            await self.outbox.leave(at, [], ready.alert_id)  # its offset only
            await self._mark_emitted(ready)
            return
        records = [Out(self.settings.topic_ready, ready.alert_id, ready.to_bytes(),
                       event_headers("ready", f"{ready.alert_id}.{ready.run}.ready",
                                     ready.alert_id, self.source, one.traceparent,
                                     ready.completed_at or time.time())),
                   *await self._cap_records(one, ready)]
        # A completion retried after an unclear commit asks `ready` itself: the last stage's
        # own offset says nothing of a copy of the alert that came by another input.
        went_out = out if stage == graph.NAMES[-1] else None
        sent = await self.outbox.leave(at, records, ready.alert_id, went_out)
        if not isinstance(result, Stored):  # after the event: its report
            self.adapter.completion.after_event(ready, sent)
        if sent:
            self._log_outcome("ready", ready.alert_id, one.traceparent, {
                "tier": "generated", "subject": ready.subject, "hazard": ready.hazard,
                "latency_seconds": ready.latency_seconds, "seconds": ready.stage_seconds})
            await self._mark_emitted(ready)

    async def _cap_records(self, one: Input, ready: AnimationReady) -> Records:
        """The CAP Update answering an alert that came in as CAP (nothing for others); one that
        cannot be made is a failure record of its own, and the event still goes out."""
        if ready.cap is None:
            return []
        try:
            update = await self._retried("cap", self.adapter.completion.cap_answer, ready,
                                         executor=self.threads.cpu)
        except RetriesExhausted as gave_up:
            record = await self.failures.record("cap", one.raw, gave_up.error, gave_up.attempts,
                                                ready.alert_id)
            return [self._failure_out(record, one.traceparent)]
        return [Out(self.settings.topic_cap, ready.alert_id, update,
                    stage_headers(one.traceparent))]

    async def _instant(self, stage: str, msg: StageMessage) -> InstantAnimation | None:
        """The instant event, once the subject stage knows the hazard (None when instant events
        are off, the library lacks the entry, or it already went out). Never costs the alert."""
        if stage != graph.NAMES[0] or not self.settings.instant:
            return None
        try:
            return await self._retried("instant", self.adapter.library.instant, msg,
                                       executor=self.threads.cpu)
        except RetriesExhausted as exc:
            log.warning("no instant event for %s: %r", msg.alert_id, exc.error)
            return None

    async def _mark_emitted(self, ready: AnimationReady) -> None:
        await self._mark("completion", self.adapter.ledger.mark_emitted, ready)

    async def _mark(self, what: str, mark, *args) -> None:
        """A ledger marker that an event went out. Retried through storage blips; if it still
        fails the cost is at most one duplicate event on a later redelivery, so it is logged,
        not fatal."""
        try:
            await self._retried("ledger", mark, *args, executor=self.threads.cpu)
        except RetriesExhausted as exc:
            log.warning("could not record that a %s event went out: %r", what, exc.error)

    def _log_outcome(self, event: str, alert_id: str | None, traceparent: str | None,
                     fields: dict) -> None:
        outcomes.info(json.dumps({"event": event, "alert_id": alert_id,
                                  "trace_id": trace_id(traceparent), **fields},
                                 ensure_ascii=False, separators=(",", ":")))

    # -- failure records ---------------------------------------------------------------------
    def _failure_out(self, record: FailureRecord, traceparent: str | None) -> Out:
        return Out(self.settings.topic_failed, record.alert_id, record.to_bytes(),
                   event_headers("failed", f"{record.payload_sha256[:32]}.{record.stage}."
                                 f"{record.reason}", record.alert_id, self.source, traceparent,
                                 record.failed_at))

    async def fail(self, stage: str, one: Input, gave_up: RetriesExhausted,
                   alert_id: str | None = None) -> None:
        """The input ends as a failure record; with transactions, in one transaction with the
        input's offset, so a worker killed in between sends neither and the input's next owner
        sends one."""
        if self.stopping:
            raise WorkerStopping(f"{stage} stopped with the worker; the input is read again by "
                                 f"its partition's next owner") from gave_up.error
        exc = gave_up.error
        record = await self.failures.record(stage, one.raw, exc, gave_up.attempts,
                                            alert_id or alert_id_of(one.raw, exc))
        out = self._failure_out(record, one.traceparent)
        await self.outbox.fail(one.at, record, out.headers)
        self._log_outcome("failed", record.alert_id, one.traceparent, {
            "stage": stage, "reason": record.reason, "attempts": record.attempts})
