"""What happens to the messages of one stage: decode → run the stage through the adapter off the
event loop, under the retry policy → the outcome leaves through the outbox: the next stage's
message (from ingest, with the alert's instant event), the completion event with its
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
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from alertanim.pipeline import graph
from alertanim.schemas import (AnimationReady, FailureRecord, InstantAnimation, StageMessage,
                               is_cap)
from alertanim.schemas.errors import InvalidInput, RetriesExhausted, SendRefused

from .adapter import Adapter, Stored
from .emitter import Position
from .events import Out, event_headers, source_of, stage_headers, trace_id
from .failures import Failures, alert_id_of
from .ingest import Started
from .metrics import Metrics
from .outbox import Outbox, Records
from .retry import is_transient, run_retried
from .threads import WorkerStopping
from .topology import INGEST, front

# A batch with an input larger than this is worked out in input order: its order key would be
# read on the event loop.
ORDER_KEY_BYTES = 64 * 1024

log = logging.getLogger("alertanim")
outcomes = logging.getLogger("alertanim.outcome")  # one JSON line per alert that ended


class Input(NamedTuple):
    raw: bytes
    at: Position | None = None  # where it was read (its transaction commits past it)
    key: bytes | None = None  # the record's key; None when it did not come from Kafka
    traceparent: str | None = None  # the record's, when valid (ingest); stages carry their own


class Leaving(NamedTuple):
    """An input's outcome before it leaves: its records, and what follows once they went out.
    `alone`: an outcome that leaves by itself, in its place (a stored completion sent again)."""

    one: Input
    records: list[Out]
    alert_id: str | None
    after: Callable[[bool], Awaitable[None]] | None = None  # with whether they went out
    failure: FailureRecord | None = None  # the records are this failure record's
    alone: Callable[[], Awaitable[None]] | None = None


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

    async def _retried(self, stage: str, fn, *args, executor=None, transient_only=False):
        """`fn(*args)` under the policy: what waiting can fix is retried until the deadline;
        other errors get MAX_ATTEMPTS tries (none with `transient_only`); invalid input none."""
        def on_retry(state):
            self.metrics.retries.labels(stage).inc()
            log.info("retrying %s (attempt %d): %r", stage, state.attempt_number,
                     state.outcome.exception())
        try:
            return await run_retried(
                self.settings, executor or self.threads.for_stage(stage), fn, *args,
                retry_on=lambda exc: (not isinstance(exc, InvalidInput) and not self.stopping
                                      and (is_transient(exc) or not transient_only)),
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
        if front(stage) and len(inputs) > 1:
            await self._front(stage, inputs)
            return
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
        if isinstance(result, Started):
            one = one._replace(traceparent=result.message.traceparent)
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

    # -- the front stages: a batch at a time, one transaction per input partition -----------
    async def _front(self, stage: str, inputs: list[Input]) -> None:
        """Ingest or the subject stage over what arrived together: each input's outcome is
        worked out (concurrently, except where their order can matter), and each input
        partition's outcomes leave in one transaction with the partition's last offset as soon
        as they are all known, so a burst costs a commit per partition and batch instead of one
        per alert. A transaction refused as a whole (a record the broker will not take) is tried
        again one input at a time, so one bad outcome costs only itself."""
        ended: set[int] = set()  # inputs whose outcome left
        self.metrics.batch_size.labels(stage).observe(len(inputs))
        outcomes, working = self._work_out(stage, inputs)
        try:
            groups: dict[tuple[str, int] | None, list[int]] = {}
            for i, one in enumerate(inputs):
                at = one.at
                groups.setdefault((at.topic, at.partition) if at is not None else None,
                                  []).append(i)

            async def partition(order: list[int]) -> None:  # in input order
                run: list[Leaving] = []
                for i in order:
                    leaving = await outcomes[i]
                    if leaving.alone is None:
                        run.append(leaving)
                        continue
                    await self._leave_together(stage, run)
                    ended.update(order[:order.index(i)])
                    run = []
                    await leaving.alone()
                    ended.add(i)
                await self._leave_together(stage, run)
                ended.update(order)
            # partitions are independent (a producer each): their transactions run side by side
            done = await asyncio.gather(*(partition(o) for o in groups.values()),
                                        return_exceptions=True)
            for outcome in done:
                if isinstance(outcome, asyncio.CancelledError):  # the worker is stopping
                    raise outcome
            for outcome in done:
                if isinstance(outcome, BaseException):
                    raise outcome
        except Exception as exc:  # noqa: BLE001 - last line of defence: record, never drop
            log.exception("unexpected error at %s", stage)
            for i, one in enumerate(inputs):
                if i not in ended:
                    try:
                        await self.fail(stage, one, RetriesExhausted(exc, 1))
                    except Exception:  # noqa: BLE001
                        log.exception("could not record a failure at %s", stage)
        finally:
            await asyncio.gather(*working, return_exceptions=True)
            for outcome in outcomes:  # each failed outcome's error is read
                if outcome.done() and not outcome.cancelled():
                    outcome.exception()

    def _work_out(self, stage: str, inputs: list[Input]
                  ) -> tuple[list[asyncio.Future], list[asyncio.Task]]:
        """Every input's outcome, a future each (in input order), and the tasks that work them
        out. Inputs whose order can matter are worked out one after the other in input order:
        at ingest, CAP documents (a Cancel before the alert it names) and alerts under one id
        (the first claims it); at a stage, one alert's messages. The rest run side by side on
        the IO threads: their time is the store's."""
        chains: dict[object, list[int]] = {}
        if any(len(one.raw) > ORDER_KEY_BYTES for one in inputs):
            chains[0] = list(range(len(inputs)))  # not read on the event loop: all in order
        else:
            for i, one in enumerate(inputs):
                chains.setdefault(_order_key(stage, one, i), []).append(i)
        loop = asyncio.get_running_loop()
        outcomes = [loop.create_future() for _ in inputs]

        async def chain(indices: list[int]) -> None:
            for at, i in enumerate(indices):
                try:
                    outcomes[i].set_result(await self._working_out(stage, inputs[i]))
                except BaseException as exc:  # noqa: BLE001 - handed to whoever waits
                    for j in indices[at:]:
                        if isinstance(exc, asyncio.CancelledError):
                            outcomes[j].cancel()
                        else:
                            outcomes[j].set_exception(exc)
                    return
        return outcomes, [asyncio.ensure_future(chain(c)) for c in chains.values()]

    async def _working_out(self, stage: str, one: Input) -> Leaving:
        io = self.threads.io
        t0 = time.perf_counter()
        try:
            if stage == INGEST:
                result = await self._retried(stage, self.adapter.ingest, one.raw, one.at,
                                             one.key, one.traceparent, executor=io)
            else:
                msg = await self._retried(stage, self.adapter.decode, stage, one.raw,
                                          executor=io)
                one = one._replace(traceparent=msg.traceparent)
                result = await self._retried(stage, self._run_one, stage, msg, executor=io)
        except RetriesExhausted as gave_up:
            return await self._failing(stage, one, gave_up)
        seconds = time.perf_counter() - t0
        first = False
        if isinstance(result, Started):
            one = one._replace(traceparent=result.message.traceparent)
            result, first = result
        alert_id = getattr(result, "alert_id", None) or alert_id_of(one.raw)
        if not isinstance(result, StageMessage) and result is not None:
            # a stored completion, answered again: by itself, as one input always did
            async def alone() -> None:
                await self._leave(stage, one, result, seconds)
            return Leaving(one, [], alert_id, alone=alone)
        self.metrics.seconds.labels(stage).observe(seconds)
        self.metrics.processed.labels(stage).inc()
        if result is None:  # nothing to do; its offset still commits with the others
            self.metrics.duplicates.labels(stage).inc()
            return Leaving(one, [], alert_id)
        return await self._handing_over(stage, one, result, first)

    async def _leave_together(self, stage: str, leavings: list[Leaving]) -> None:
        if not leavings:
            return
        records = [r for leaving in leavings for r in leaving.records]
        try:
            sent = await self.outbox.leave(leavings[-1].one.at, records,
                                           f"{len(leavings)} inputs at {stage}")
        except SendRefused as refused:
            log.warning("%s; sending them one at a time", refused)
            for leaving in leavings:
                await self._leave_alone(stage, leaving)
            return
        await asyncio.gather(*(leaving.after(sent) for leaving in leavings
                               if leaving.after is not None))

    async def _leave_alone(self, stage: str, leaving: Leaving) -> None:
        """One input's outcome in a transaction of its own (or plainly): a failure record one
        the transaction refuses still goes out plainly; other records the broker refuses end as
        the input's failure record."""
        one = leaving.one
        if leaving.failure is not None:
            await self.outbox.fail(one.at, leaving.failure, leaving.records[0].headers)
            sent = True
        else:
            try:
                sent = await self.outbox.leave(one.at, leaving.records, leaving.alert_id)
            except SendRefused as exc:
                alone = [r for r in leaving.records if r.topic != self.settings.topic_instant]
                if len(alone) == len(leaving.records):
                    await self.fail(stage, one, RetriesExhausted(exc, 1), leaving.alert_id)
                    return
                # the instant event never costs the alert: its hand-over leaves without it
                log.warning("%s; %s's hand-over leaves without its instant event", exc,
                            leaving.alert_id)
                await self._leave_alone(stage, leaving._replace(records=alone, after=None))
                return
        if leaving.after is not None:
            await leaving.after(sent)

    # -- the outcome -------------------------------------------------------------------------
    async def _leave(self, stage: str, one: Input,
                     result: Started | StageMessage | AnimationReady | Stored | None,
                     seconds: float) -> None:
        self.metrics.seconds.labels(stage).observe(seconds)
        self.metrics.processed.labels(stage).inc()
        first = False
        if isinstance(result, Started):
            result, first = result
        alert_id = getattr(result, "alert_id", None) or alert_id_of(one.raw)
        try:
            if isinstance(result, StageMessage):
                await self._hand_over(stage, one, result, first)
            elif result is None:  # nothing to do; with transactions, its offset still commits
                self.metrics.duplicates.labels(stage).inc()
                await self.outbox.leave(one.at, [], alert_id)
            else:
                await self._complete(stage, one, result)
        except SendRefused as exc:
            await self.fail(stage, one, RetriesExhausted(exc, 1), alert_id)

    async def _hand_over(self, stage: str, one: Input, msg: StageMessage,
                         first: bool = False) -> None:
        await self._leave_alone(stage, await self._handing_over(stage, one, msg, first))

    async def _handing_over(self, stage: str, one: Input, msg: StageMessage,
                            first: bool = False) -> Leaving:
        """The next stage's message and, from ingest's record that claimed the alert's id
        (`first`), the alert's instant event with it (both leave, or neither)."""
        records = [Out(self.settings.stage_topic(msg.stage), msg.alert_id, msg.to_bytes(),
                       stage_headers(msg.traceparent))]
        instant = await self._instant(msg, one.at) if stage == INGEST and first else None
        if instant is not None:
            records.append(Out(self.settings.topic_instant, instant.alert_id, instant.to_bytes(),
                               event_headers("instant", f"{instant.alert_id}.{instant.run}"
                                             ".instant", instant.alert_id, self.source,
                                             msg.traceparent, instant.sent_at)))

        async def after(sent: bool) -> None:
            if not sent or instant is None:
                return
            self._log_outcome("instant", instant.alert_id, msg.traceparent, {
                "tier": "library", "entry": instant.entry, "subject": instant.subject,
                "hazard": instant.hazard, "latency_seconds": instant.latency_seconds})
            if not self.outbox.transactional(one.at):  # it may be read again: marked
                await self._mark("instant", self.adapter.ledger.mark_instant_sent,
                                 instant.alert_id, instant.run)
        return Leaving(one, records, msg.alert_id, after)

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

    async def _instant(self, msg: StageMessage, at: Position | None
                       ) -> InstantAnimation | None:
        """The instant event of an alert ingest starts (None when instant events are off or the
        library lacks the entry). Never costs the alert: a store blip is waited out, any other
        error only logged, and the hand-over leaves without it."""
        if not self.settings.instant:
            return None
        try:
            return await self._retried("instant", self.adapter.instant, msg,
                                       not self.outbox.transactional(at),
                                       executor=self.threads.io, transient_only=True)
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
        await self._leave_alone(stage, await self._failing(stage, one, gave_up, alert_id))

    async def _failing(self, stage: str, one: Input, gave_up: RetriesExhausted,
                       alert_id: str | None = None) -> Leaving:
        if self.stopping:
            raise WorkerStopping(f"{stage} stopped with the worker; the input is read again by "
                                 f"its partition's next owner") from gave_up.error
        exc = gave_up.error
        record = await self.failures.record(stage, one.raw, exc, gave_up.attempts,
                                            alert_id or alert_id_of(one.raw, exc))

        async def after(sent: bool) -> None:
            self._log_outcome("failed", record.alert_id, one.traceparent, {
                "stage": stage, "reason": record.reason, "attempts": record.attempts})
        return Leaving(one, [self._failure_out(record, one.traceparent)], record.alert_id,
                       after, failure=record)


def _order_key(stage: str, one: Input, index: int) -> object:
    """What an input's outcome must keep its place among (inputs with one key are worked out in
    input order); a key of its own when nothing can depend on it."""
    if stage == INGEST:
        if is_cap(one.raw):
            return "cap"
        try:
            body = json.loads(one.raw.decode("utf-8-sig"))
        except Exception:  # noqa: BLE001 - not JSON (or too deep): ingest refuses it, alone
            return index
        alert_id = body.get("id") if isinstance(body, dict) else None
        return ("id", alert_id) if isinstance(alert_id, str) else index
    return ("key", one.key) if one.key else index
