"""Kafka transactions: what an input led to (the next stage's message, the `ready` event and its
CAP answer, or a failure record) leaves with the input's offset, together or not at all, so a
worker killed in between leaves neither, and the input comes again to whoever owns its
partition. With transactions on, these are the only commits of the worker group's offsets: the
stage topics are consumed without Faust's acks (`acks=False`), so no consumer commit can move a
partition back below a transaction's.

One transactional producer per input partition that needed one, with a transactional id made
from its topic and partition (`<app id>.emit.<topic>.<partition>`): whichever worker owns the
partition after a crash or a rebalance starts its producer with the same id, which fences the old
owner and aborts whatever it left open. A consumer that reads `ready` and `failed` with
`isolation.level=read_committed` never sees an aborted record.

The one case left is a worker killed after its transaction committed and before the ledger's
`emitted` marker was written, with the input offset not (or no longer) committed: the new owner
finds the stored completion without a marker. Before sending it again, it reads the tail of
`ready` (committed records only, after its own producer fenced the old one) and sends nothing if
the event is there. Per partition the last stage runs one message at a time, so at most one event
per partition can be in that state. The read starts at the time the completion was stored (less
a margin for clocks), so it holds the event whatever else was written to `ready` since.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import NamedTuple

from .threads import WorkerStopping

log = logging.getLogger("alertanim")

TAIL = 64  # records read back per partition of `ready` when a completion may already be out
STOP_S = 10.0  # how long a producer being dropped may take to stop before it is left behind


class Position(NamedTuple):
    """Where an input was read. Its transaction commits `offset + 1` for (topic, partition)."""

    topic: str
    partition: int
    offset: int

    @classmethod
    def of(cls, message) -> "Position":
        """The position of a consumed Kafka message (Faust's or aiokafka's)."""
        return cls(message.topic, message.partition, message.offset)

    def __str__(self) -> str:  # as the ledger records where an alert came from
        return f"{self.topic}:{self.partition}:{self.offset}"


class Emitter:
    def __init__(self, settings, stage: str):
        self.settings = settings
        self.stage = stage  # the last stage: its input offsets commit with its completions
        self.source_topic = settings.stage_topic(stage)
        # keyed by input (topic, partition)
        self._producers: dict[tuple[str, int], object] = {}
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}
        self._closed = False

    @property
    def _bound_s(self) -> float:
        """The longest a producer's start or one transaction may take: past the transaction
        timeout the broker aborts it anyway. A client that hangs (a fenced producer waiting
        on a coordinator in the middle of a rebalance) then ends as a TimeoutError, which is
        retried with a fresh producer, instead of holding its partition's lock for good."""
        return self.settings.transaction_timeout_ms / 1000

    def transactional_id(self, topic: str, partition: int) -> str:
        return f"{self.settings.app_id}.emit.{topic}.{partition}"

    async def _producer(self, tp: tuple[str, int]):
        if self._closed:  # shutting down: what is in flight commits nothing from here on
            raise WorkerStopping("the transactional producers are closed")
        producer = self._producers.get(tp)
        if producer is None:
            from aiokafka import AIOKafkaProducer

            producer = AIOKafkaProducer(
                **self.settings.kafka_client_kwargs(), acks="all", enable_idempotence=True,
                transactional_id=self.transactional_id(*tp),
                transaction_timeout_ms=self.settings.transaction_timeout_ms,
                max_request_size=self.settings.max_record_bytes + 64_000)
            try:  # registers the id: fences and aborts an earlier owner's
                await _within(producer.start(), self._bound_s, "starting a producer")
            except BaseException:
                await _stop(producer)
                raise
            self._producers[tp] = producer
        return producer

    def _lock(self, tp: tuple[str, int]) -> asyncio.Lock:
        return self._locks.setdefault(tp, asyncio.Lock())

    async def _fence(self, tp: tuple[str, int]) -> None:
        """Start the input partition's producer: registering its transactional id settles
        whatever an earlier producer under it left open, so what is read next is final."""
        async with self._lock(tp):
            await self._producer(tp)

    async def _drop(self, tp: tuple[str, int]) -> None:
        producer = self._producers.pop(tp, None)
        if producer is not None:
            await _stop(producer)

    def revoked(self, tps) -> None:
        """The worker lost these input partitions ((topic, partition) pairs): their producers
        go (once a transaction in flight is done), so that if a partition comes back, a fresh
        producer fences whoever had it meanwhile."""
        for tp in tps:
            asyncio.ensure_future(self._drop_when_free(tuple(tp)))

    async def _drop_when_free(self, tp: tuple[str, int]) -> None:
        async with self._lock(tp):
            await self._drop(tp)

    async def emit(self, topic: str, partition: int, records: list[tuple[str, str | None, bytes]],
                   next_offset: int) -> None:
        """Send `records` and commit `next_offset` for the input partition, atomically. A
        producer that was fenced or broke is dropped, so a retry starts a fresh one."""
        from aiokafka.structs import TopicPartition

        tp = (topic, partition)
        async with self._lock(tp):
            producer = await self._producer(tp)
            delivered: list[asyncio.Future] = []

            async def transaction() -> None:
                async with producer.transaction():
                    for out_topic, key, value, *headers in records:
                        delivered.append(await producer.send(
                            out_topic, value=value, key=key.encode() if key else None,
                            headers=list(headers[0]) if headers else None))
                    await producer.send_offsets_to_transaction(
                        {TopicPartition(topic, partition): next_offset}, self.settings.app_id)
            try:
                await _within(transaction(), self._bound_s, "a transaction")
            except BaseException:
                await self._drop(tp)
                raise
            finally:
                # a record's outcome is its transaction's: each is read, so that a fenced
                # producer's failed deliveries are not reported as never retrieved
                for fut in delivered:
                    fut.add_done_callback(_read_outcome)

    async def committed(self, topic: str, partition: int) -> int:
        """The group's committed offset of an input partition (-1 for none). A transaction that
        committed an input's offset leaves it past that input: what a retry asks when the
        answer to a commit was lost. A failed try dropped its producer, so this starts a fresh
        one first, which settles whatever that try (or an earlier owner) left open: committed
        or aborted, never pending."""
        from aiokafka.admin import AIOKafkaAdminClient
        from aiokafka.structs import TopicPartition

        await self._fence((topic, partition))
        tp = TopicPartition(topic, partition)
        admin = AIOKafkaAdminClient(**self.settings.kafka_client_kwargs())
        await admin.start()
        try:
            found = await admin.list_consumer_group_offsets(self.settings.app_id,
                                                            partitions=[tp])
        finally:
            await admin.close()
        meta = found.get(tp)
        return meta.offset if meta is not None else -1

    async def already_out(self, partition: int, alert_id: str, run: str,
                          since: float | None = None) -> bool:
        """Whether a committed `ready` event for this alert and run is on the topic, read from
        `since` (epoch seconds: when the completion was stored; an event for it can only be
        later) or, without it, the last TAIL records of each partition. Starts the partition's
        producer first, so no earlier owner's transaction is still open."""
        from aiokafka import AIOKafkaConsumer
        from aiokafka.structs import TopicPartition

        await self._fence((self.source_topic, partition))
        topic = self.settings.topic_ready
        consumer = AIOKafkaConsumer(**self.settings.kafka_client_kwargs(), group_id=None,
                                    enable_auto_commit=False, isolation_level="read_committed")
        try:
            await consumer.start()
            from aiokafka.admin import AIOKafkaAdminClient

            admin = AIOKafkaAdminClient(**self.settings.kafka_client_kwargs())
            await admin.start()
            try:
                [meta] = await admin.describe_topics([topic])
            finally:
                await admin.close()
            tps = [TopicPartition(topic, p["partition"]) for p in meta["partitions"]]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)  # read_committed: the last stable offset
            begins = await consumer.beginning_offsets(tps)
            todo = {tp for tp in tps if ends[tp] > begins[tp]}
            starts = ({tp: max(begins[tp], ends[tp] - TAIL) for tp in todo} if since is None
                      else await self._offsets_since(consumer, todo, since))
            for tp in list(todo):
                if starts.get(tp) is None:
                    todo.discard(tp)  # nothing written since then
                else:
                    consumer.seek(tp, starts[tp])
            deadline = time.monotonic() + 30
            while todo and time.monotonic() < deadline:
                batches = await consumer.getmany(*todo, timeout_ms=500)
                for tp, records in batches.items():
                    for r in records:
                        if r.key == alert_id.encode() and _names(r.value, alert_id, run):
                            return True
                # A tail that holds only an aborted transaction yields no records: the
                # position passing the end is what says the partition was read.
                for tp in list(todo):
                    if await consumer.position(tp) >= ends[tp]:
                        todo.discard(tp)
            if todo:
                raise TimeoutError("could not read the tail of the ready topic")
            return False
        finally:
            try:
                await consumer.stop()
            except Exception:  # noqa: BLE001 - it may never have started
                pass

    @staticmethod
    async def _offsets_since(consumer, tps, since: float) -> dict:
        # a little before: the broker's clock and the worker's may differ
        found = await consumer.offsets_for_times({tp: int((since - 30) * 1000) for tp in tps})
        return {tp: (o.offset if o is not None else None) for tp, o in found.items()}

    async def close(self) -> None:
        self._closed = True
        for tp in list(self._producers):
            await self._drop(tp)


async def _within(aw, seconds: float, what: str):
    """`aw`'s result, or TimeoutError once `seconds` have passed. Unlike asyncio.wait_for, it
    does not wait for a timed-out call to finish cancelling: a wedged client's abort may never
    end either."""
    task = asyncio.ensure_future(aw)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        task.add_done_callback(_read_outcome)
        raise
    if not done:
        task.cancel()
        task.add_done_callback(_read_outcome)
        raise TimeoutError(f"{what} took more than {seconds:.0f} s")
    return task.result()


async def _stop(producer) -> None:
    try:
        await _within(producer.stop(), STOP_S, "stopping a producer")
    except TimeoutError as exc:
        log.warning("a transactional producer was left behind: %s", exc)
    except Exception:  # noqa: BLE001 - a fenced or half-started producer may not stop cleanly
        pass


def _read_outcome(fut: asyncio.Future) -> None:
    if not fut.cancelled():
        fut.exception()


def _names(value: bytes | None, alert_id: str, run: str) -> bool:
    try:
        event = json.loads(value or b"")
    except ValueError:
        return False
    return isinstance(event, dict) and event.get("alert_id") == alert_id and event.get("run") == run
