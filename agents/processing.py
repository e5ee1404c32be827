"""What happens to the messages of one stage: decode → run the stage through the adapter off the
event loop, under the retry policy → the outcome leaves through the outbox: the next stage's
message, the completion event with its CAP answer, or a failure record. A batched stage runs its
messages in one model call; a batch that fails runs again one message at a time, so one bad
alert (or a batch too big for the GPU) costs only itself. Outcomes leave in input order.

Never raises: an escaped exception would end the agent, and with it the stage.
"""

from __future__ import annotations

import logging
import time

from alertanim.pipeline import graph
from alertanim.schemas import AnimationReady, StageMessage
from alertanim.schemas.errors import InvalidInput, RetriesExhausted, SendRefused

from .adapter import Adapter, Stored
from .emitter import Position
from .failures import Failures, alert_id_of
from .metrics import Metrics
from .outbox import Outbox, Records
from .retry import run_retried
from .topology import INGEST

log = logging.getLogger("alertanim")


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

    async def _retried(self, stage: str, fn, *args, executor=None):
        """`fn(*args)` under the policy: what waiting can fix is retried until the deadline;
        other errors get MAX_ATTEMPTS tries; invalid input none."""
        def on_retry(state):
            self.metrics.retries.labels(stage).inc()
            log.info("retrying %s (attempt %d): %r", stage, state.attempt_number,
                     state.outcome.exception())
        return await run_retried(self.settings, executor or self.threads.for_stage(stage), fn,
                                 *args, retry_on=lambda exc: not isinstance(exc, InvalidInput),
                                 on_retry=on_retry)

    # -- one message, several ----------------------------------------------------------------
    async def process(self, stage: str, raw: bytes, at: Position | None = None,
                      key: bytes | None = None) -> None:
        await self.process_many(stage, [raw], [at], [key])

    async def process_many(self, stage: str, raws: list[bytes],
                           positions: list[Position | None] | None = None,
                           keys: list[bytes | None] | None = None) -> None:
        positions = positions or [None] * len(raws)
        keys = keys or [None] * len(raws)
        ended = 0  # inputs whose outcome left
        try:
            if stage == INGEST:
                for raw, at, key in zip(raws, positions, keys):
                    await self._one(stage, raw, at, self.adapter.ingest, raw, at, key)
                    ended += 1
                return
            # Decoding reads the ledger (a CAP alert's cancellation): off the event loop, under
            # the retry policy, so a store blip is waited out instead of failing the batch.
            decoded: list[StageMessage | RetriesExhausted] = []
            for raw in raws:
                try:
                    decoded.append(await self._retried(stage, self.adapter.decode, stage, raw,
                                                       executor=self.threads.cpu))
                except RetriesExhausted as gave_up:
                    decoded.append(gave_up)
            msgs = [m for m in decoded if isinstance(m, StageMessage)]
            results, elapsed = (await self._batch(stage, msgs)) if len(msgs) > 1 else (None, 0.0)
            done = iter(results or [])
            # In input order: an outcome's transaction commits its input's offset, which must
            # not pass an earlier input whose outcome has not left yet.
            for raw, at, m in zip(raws, positions, decoded):
                if isinstance(m, RetriesExhausted):
                    await self.fail(stage, raw, at, m)
                elif results is not None:
                    await self._leave(stage, raw, at, next(done), elapsed)
                else:  # alone, or its batch failed: one at a time
                    await self._one(stage, raw, at, self._run_one, stage, m)
                ended += 1
        except Exception as exc:  # noqa: BLE001 - last line of defence: record, never drop
            log.exception("unexpected error at %s", stage)
            for raw, at in zip(raws[ended:], positions[ended:]):
                try:
                    await self.fail(stage, raw, at, RetriesExhausted(exc, 1))
                except Exception:  # noqa: BLE001
                    log.exception("could not record a failure at %s", stage)

    def _run_one(self, stage: str, msg: StageMessage):
        [result] = self.adapter.run_stage(stage, [msg])
        return result

    async def _one(self, stage: str, raw: bytes, at: Position | None, fn, *args) -> None:
        t0 = time.perf_counter()
        try:
            result = await self._retried(stage, fn, *args)
        except RetriesExhausted as gave_up:  # every error ends as a failure record
            await self.fail(stage, raw, at, gave_up)
            return
        await self._leave(stage, raw, at, result, time.perf_counter() - t0)

    async def _batch(self, stage: str, msgs: list[StageMessage]) -> tuple[list | None, float]:
        """One model call for `msgs`: their results and the seconds it took, or None when the
        batch failed (its messages then run one at a time)."""
        import asyncio

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
    async def _leave(self, stage: str, raw: bytes, at: Position | None,
                     result: StageMessage | AnimationReady | Stored | None,
                     seconds: float) -> None:
        self.metrics.seconds.labels(stage).observe(seconds)
        self.metrics.processed.labels(stage).inc()
        alert_id = getattr(result, "alert_id", None) or alert_id_of(raw)
        try:
            if isinstance(result, StageMessage):
                await self.outbox.leave(at, [(self.settings.stage_topic(result.stage),
                                              result.alert_id, result.to_bytes())],
                                        result.alert_id)
                return
            if result is None:  # nothing to do; with transactions, its offset still commits
                self.metrics.duplicates.labels(stage).inc()
                await self.outbox.leave(at, [], alert_id)
                return
            await self._complete(stage, raw, at, result)
        except SendRefused as exc:
            await self.fail(stage, raw, at, RetriesExhausted(exc, 1), alert_id)

    async def _complete(self, stage: str, raw: bytes, at: Position | None,
                        result: AnimationReady | Stored) -> None:
        """The `ready` event and its CAP answer. A completion found stored without its marker is
        sent again only when it is not on `ready` already (the marker is written after the
        event goes out; a worker can stop in between)."""
        ready = result.ready if isinstance(result, Stored) else result

        def out():
            return self.outbox.event_out(at.partition, ready.alert_id, ready.run,
                                         ready.completed_at)
        if isinstance(result, Stored) and self.outbox.transactional(at) and await out():
            self.metrics.duplicates.labels(stage).inc()
            await self.outbox.leave(at, [], ready.alert_id)  # its offset only
            await self._mark_emitted(ready)
            return
        records = [(self.settings.topic_ready, ready.alert_id, ready.to_bytes()),
                   *await self._cap_records(raw, ready)]
        # A completion retried after an unclear commit asks `ready` itself: the last stage's
        # own offset says nothing of a copy of the alert that came by another input.
        went_out = out if stage == graph.NAMES[-1] else None
        if await self.outbox.leave(at, records, ready.alert_id, went_out):
            await self._mark_emitted(ready)

    async def _cap_records(self, raw: bytes, ready: AnimationReady) -> Records:
        """The CAP Update answering an alert that came in as CAP (nothing for others); one that
        cannot be made is a failure record of its own, and the event still goes out."""
        if ready.cap is None:
            return []
        try:
            update = await self._retried("cap", self.adapter.completion.cap_answer, ready,
                                         executor=self.threads.cpu)
        except RetriesExhausted as gave_up:
            record = await self.failures.record("cap", raw, gave_up.error, gave_up.attempts,
                                                ready.alert_id)
            return [(self.settings.topic_failed, ready.alert_id, record.to_bytes())]
        return [(self.settings.topic_cap, ready.alert_id, update)]

    async def _mark_emitted(self, ready: AnimationReady) -> None:
        """Retried through storage blips; if it still fails the cost is at most one duplicate
        event on a later redelivery, so it is logged, not fatal."""
        try:
            await self._retried("ledger", self.adapter.ledger.mark_emitted, ready,
                                executor=self.threads.cpu)
        except RetriesExhausted as exc:
            log.warning("could not record that %s's completion went out: %r", ready.alert_id,
                        exc.error)

    # -- failure records ---------------------------------------------------------------------
    async def fail(self, stage: str, raw: bytes, at: Position | None,
                   gave_up: RetriesExhausted, alert_id: str | None = None) -> None:
        """The input ends as a failure record; with transactions, in one transaction with the
        input's offset, so a worker killed in between sends neither and the input's next owner
        sends one."""
        exc = gave_up.error
        record = await self.failures.record(stage, raw, exc, gave_up.attempts,
                                            alert_id or alert_id_of(raw, exc))
        await self.outbox.fail(at, record)
