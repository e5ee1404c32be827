"""The completion leaves in a Kafka transaction: the `ready` event (and the CAP answer, when there
is one) and the input offset of the last stage commit together or not at all.

One transactional producer per partition of the last stage's topic, with a transactional id made
from that topic and partition (`<app id>.emit.<topic>.<partition>`): whichever worker owns the partition after a
crash or a rebalance starts its producer with the same id, which fences the old owner and aborts
whatever it left open. A consumer that reads `ready` with `isolation.level=read_committed` never
sees an aborted event.

The one case left is a worker killed after its transaction committed and before the ledger's
`emitted` marker was written, with the input offset not (or no longer) committed: the new owner
finds the stored completion without a marker. Before sending it again, it reads the tail of
`ready` (committed records only, after its own producer fenced the old one) and sends nothing if
the event is there. Per partition the last stage runs one message at a time, so at most one event
per partition can be in that state: the tail always holds it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

log = logging.getLogger("alertanim")

TAIL = 64  # records read back per partition of `ready` when a completion may already be out


class Emitter:
    def __init__(self, settings, stage: str):
        self.settings = settings
        self.stage = stage  # the last stage: its input offsets commit with its completions
        self.source_topic = settings.stage_topic(stage)
        self._producers: dict[int, object] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    def transactional_id(self, partition: int) -> str:
        return f"{self.settings.app_id}.emit.{self.source_topic}.{partition}"

    async def _producer(self, partition: int):
        producer = self._producers.get(partition)
        if producer is None:
            from aiokafka import AIOKafkaProducer

            producer = AIOKafkaProducer(
                **self.settings.kafka_client_kwargs(), acks="all", enable_idempotence=True,
                transactional_id=self.transactional_id(partition),
                transaction_timeout_ms=self.settings.transaction_timeout_ms,
                max_request_size=self.settings.max_record_bytes + 64_000)
            await producer.start()  # registers the id: fences and aborts an earlier owner's
            self._producers[partition] = producer
        return producer

    async def _drop(self, partition: int) -> None:
        producer = self._producers.pop(partition, None)
        if producer is not None:
            try:
                await producer.stop()
            except Exception:  # noqa: BLE001 - a fenced producer may not stop cleanly
                pass

    async def emit(self, partition: int, records: list[tuple[str, str | None, bytes]],
                   next_offset: int) -> None:
        """Send `records` and commit `next_offset` for the input partition, atomically. A
        producer that was fenced or broke is dropped, so a retry starts a fresh one."""
        from aiokafka.structs import TopicPartition

        lock = self._locks.setdefault(partition, asyncio.Lock())
        async with lock:
            producer = await self._producer(partition)
            try:
                async with producer.transaction():
                    for topic, key, value in records:
                        await producer.send(topic, value=value,
                                            key=key.encode() if key else None)
                    await producer.send_offsets_to_transaction(
                        {TopicPartition(self.source_topic, partition): next_offset},
                        self.settings.app_id)
            except BaseException:
                await self._drop(partition)
                raise

    async def already_out(self, partition: int, alert_id: str, run: str) -> bool:
        """Whether a committed `ready` event for this alert and run is on the topic. Starts the
        partition's producer first, so no earlier owner's transaction is still open."""
        from aiokafka import AIOKafkaConsumer
        from aiokafka.structs import TopicPartition

        async with self._locks.setdefault(partition, asyncio.Lock()):
            await self._producer(partition)
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
            for tp in todo:
                consumer.seek(tp, max(begins[tp], ends[tp] - TAIL))
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

    async def close(self) -> None:
        for partition in list(self._producers):
            await self._drop(partition)


def _names(value: bytes | None, alert_id: str, run: str) -> bool:
    try:
        event = json.loads(value or b"")
    except ValueError:
        return False
    return isinstance(event, dict) and event.get("alert_id") == alert_id and event.get("run") == run
