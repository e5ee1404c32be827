"""Talking to the real broker as a producer of alerts and as a consumer of what comes out."""

from __future__ import annotations

import asyncio
import json
import time


def alert_bytes(alert_id: str, text: str, **extra) -> bytes:
    """A JSON alert as a publisher sends it."""
    return json.dumps({"schema_version": 1, "id": alert_id, "text": text, **extra},
                      ensure_ascii=False).encode()


def publish(settings, records: list[tuple[str | None, bytes]], together: bool = False) -> None:
    """Send `(key, value)` records to the alerts topic, each acknowledged by the broker: one
    after the other, or (`together`) all sent at once and then waited for, as a publisher
    sends a burst."""
    async def run():
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), acks="all")
        await producer.start()
        try:
            if together:
                sent = [await producer.send(settings.topic_alerts, value=value,
                                            key=key.encode() if key else None)
                        for key, value in records]
                await asyncio.gather(*sent)
                return
            for key, value in records:
                await producer.send_and_wait(settings.topic_alerts, value=value,
                                             key=key.encode() if key else None)
        finally:
            await producer.stop()
    asyncio.run(run())


def consume(settings, topics: list[str], until, timeout: float) -> list:
    """Every committed record on `topics`, from the beginning, until `until(records)` is true or
    time runs out. Read as a consumer of the service reads (isolation.level=read_committed): the
    records of an aborted or still open transaction are never seen."""
    async def run():
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(*topics, group_id=None, auto_offset_reset="earliest",
                                    isolation_level="read_committed",
                                    **settings.kafka_client_kwargs())
        await consumer.start()
        records = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and not until(records):
                for msgs in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(msgs)
        finally:
            await consumer.stop()
        return records
    return asyncio.run(run())


def stamped_before(records, moment: float) -> set[str]:
    """The keys of `records` whose Kafka timestamp (the producer's CreateTime or the broker's
    LogAppendTime, epoch ms) is before `moment` (epoch seconds). A record committed by `moment`
    was stamped before it, so this holds every key committed by then (and maybe some that
    committed later): fewer keys here than expected means some were not committed by then."""
    return {r.key.decode() for r in records if r.timestamp / 1000 < moment}
