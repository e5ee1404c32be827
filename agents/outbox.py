"""How an input's outcome leaves: every record it led to, and (with transactions) the input's
offset, together.

Without an emitter the records go out as plain sends, each waiting for the broker's ack, and
Faust commits the input's offset from its ack afterwards (at-least-once). With one, they leave in
one Kafka transaction with the offset after the input (agents/emitter.py); an input that led to
nothing (a redelivery whose event already went out) commits its offset alone. A broker that is
away is waited out either way. A try whose answer was lost may have committed: before trying
again the outbox asks (`went_out`), so a retry never sends twice, and on a partition the worker
no longer owns it sends nothing: the input is the new owner's now.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from alertanim.schemas import FailureRecord
from alertanim.schemas.errors import SendRefused

from .emitter import Emitter, Position
from .events import Headers, Out
from .retry import async_retrying, is_transient

log = logging.getLogger("alertanim")

Send = Callable[..., Awaitable[None]]  # (topic, key, value, headers=())
Records = list[Out]


class Outbox:
    def __init__(self, settings, send: Send, emitter: Emitter | None = None,
                 owns: Callable[[str, int], bool] | None = None):
        self.settings = settings
        self.send_one = send
        self.emitter = emitter
        # whether this worker still owns an input partition (topic, partition)
        self.owns = owns or (lambda topic, partition: True)

    def transactional(self, at: Position | None) -> bool:
        return self.emitter is not None and at is not None

    async def leave(self, at: Position | None, records: Records, what: str | None,
                    went_out: Callable[[], Awaitable[bool]] | None = None) -> bool:
        """`records` (and, with transactions, the offset after the input at `at`). False when
        the input's partition moved to another worker meanwhile and nothing was sent."""
        if not self.transactional(at):
            for out in records:
                await self.send(*out)
            return True
        return await self._transact(at, records, what, went_out or (lambda: self.passed(at)))

    async def send(self, topic: str, key: str | None, value: bytes, headers: Headers = ()
                   ) -> None:
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
                    await self.send_one(topic, key, value, headers)
        except Exception as exc:  # noqa: BLE001 - every non-transient send error is a refusal
            raise SendRefused(f"the broker refused a record for {topic}: {exc!r}") from exc

    async def _transact(self, at: Position, records: Records, what: str | None,
                        went_out: Callable[[], Awaitable[bool]]) -> bool:
        def on_retry(state):
            log.warning("transaction for %s failed (attempt %d), retrying: %r", what,
                        state.attempt_number, state.outcome.exception())
        tried = False
        try:
            async for attempt in async_retrying(
                    self.settings, retry_on=lambda e: is_transient(e) or _fenced(e),
                    forever_if_transient=True, on_retry=on_retry):
                with attempt:
                    if tried:
                        if not self.owns(at.topic, at.partition):
                            log.info("%s moved while %s was ending; its new owner sends it",
                                     f"{at.topic}:{at.partition}", what)
                            return False
                        if await went_out():
                            return True
                    tried = True
                    await self.emitter.emit(at.topic, at.partition, records, at.offset + 1)
            return True
        except Exception as exc:  # noqa: BLE001 - every non-transient error is a refusal
            raise SendRefused(f"the broker refused the records of {what}: {exc!r}") from exc

    async def passed(self, at: Position) -> bool:
        """Whether the group's offset is past the input at `at`: only a transaction that ended
        it commits that far while it is being processed."""
        try:
            async for attempt in async_retrying(self.settings, retry_on=is_transient):
                with attempt:
                    return await self.emitter.committed(at.topic, at.partition) > at.offset
        except Exception as exc:  # noqa: BLE001 - unsure: sending again beats losing it
            log.warning("cannot read the offset of %s:%d (%r); sending again", at.topic,
                        at.partition, exc)
        return False

    async def event_out(self, partition: int, alert_id: str, run: str,
                        since: float | None) -> bool:
        """Whether a committed `ready` event for this alert and run is on the topic (a
        completion stored without its marker: a worker stopped between the two)."""
        try:  # transient errors until the deadline, then the answer that loses nothing
            async for attempt in async_retrying(self.settings, retry_on=is_transient):
                with attempt:
                    return await self.emitter.already_out(partition, alert_id, run, since)
        except Exception as exc:  # noqa: BLE001 - unsure: sending again beats losing it
            log.warning("cannot tell whether %s's event went out (%r); sending it",
                        alert_id, exc)
        return False

    async def fail(self, at: Position | None, record: FailureRecord, headers: Headers = ()
                   ) -> None:
        """A failure record ends its input. One the transaction refuses goes out plainly; one
        the failed topic refuses too is logged, the record of last resort."""
        out = Out(self.settings.topic_failed, record.alert_id, record.to_bytes(), headers)
        if self.transactional(at):
            try:
                await self._transact(at, [out], record.alert_id or "an input",
                                     lambda: self.passed(at))
                return
            except SendRefused as refused:
                log.warning("%s; sending the failure record plainly", refused)
        try:
            await self.send(*out)
        except SendRefused:
            log.error("could not send the failure record of %s (%s at %s, payload sha256 %s)",
                      record.alert_id, record.reason, record.stage, record.payload_sha256)


def _fenced(exc: BaseException) -> bool:
    """Another producer took this transactional id: the partition's new owner, or this worker's
    own fresh producer after the partition came back."""
    from aiokafka.errors import InvalidProducerEpoch, ProducerFenced

    return isinstance(exc, (ProducerFenced, InvalidProducerEpoch))
