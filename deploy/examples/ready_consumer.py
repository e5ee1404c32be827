"""An example `ready` consumer: what an SMS/MMS gateway or an app's push service does with
completion events. Run it beside a pipeline:

    python deploy/examples/ready_consumer.py --group sms-gateway --out ./outbox

- One consumer group per service (`--group`); run more copies with the same group to share the
  partitions. Events are keyed by `alert_id`, so one alert's events stay in order on one
  partition.
- Delivery is at least once: the same `alert_id` can arrive again (a redelivery, a re-published
  alert). Handle it idempotently: here the outbox file named after the alert id is the record of
  what was done, and an event whose file exists is skipped.
- The presigned URLs expire at `url_expires_at`; fetch the bytes when the event arrives. A late
  reader can re-publish the same alert to get fresh URLs (the result is not recomputed).
- Offsets are committed only after the event was handled, so a crash means a redelivery, not a
  lost alert.
- Unknown `schema_version`s are refused, not guessed at.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import urllib.request
from pathlib import Path

SUPPORTED_VERSION = 2
CHANNEL_TYPES = ("image/gif", "video/mp4", "image/jpeg")  # what this channel can attach, best first


def handle(event: dict, outbox: Path, budget: int) -> str:
    if event.get("schema_version") != SUPPORTED_VERSION:
        return f"skipped: schema_version {event.get('schema_version')!r} is not supported"
    done = outbox / f"{event['alert_id']}.json"
    if done.exists():
        return "skipped: already handled"
    renditions = {r["media_type"]: r for r in event["renditions"]}
    pick = next((renditions[t] for t in CHANNEL_TYPES
                 if t in renditions and renditions[t]["bytes"] <= budget), None)
    if pick is None:
        return "skipped: no rendition this channel takes"
    if pick["url_expires_at"] < time.time():
        return "skipped: the URL expired; re-publish the alert for fresh ones"
    with urllib.request.urlopen(pick["url"], timeout=30) as resp:
        data = resp.read()
    ext = {"image/gif": "gif", "video/mp4": "mp4", "image/jpeg": "jpg"}[pick["media_type"]]
    (outbox / f"{event['alert_id']}.{ext}").write_bytes(data)
    # the text goes with the picture, never replaced by it; alt_text is for screen readers
    message = {"alert_id": event["alert_id"], "attachment": f"{event['alert_id']}.{ext}",
               "media_type": pick["media_type"], "alt_text": event.get("alt_text"),
               "status": event.get("status", "Actual")}
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(message, ensure_ascii=False))
    os.replace(tmp, done)  # the record of what was done appears whole or not at all
    return f"attached {pick['media_type']} ({len(data)} bytes)"


async def consume(bootstrap: str, topic: str, group: str, outbox: Path, budget: int,
                  count: int | None, timeout: float | None) -> int:
    from aiokafka import AIOKafkaConsumer

    # read_committed: events of a transaction the worker aborted (it was killed, or fenced by
    # the worker that took its partition over) are never seen, so no alert is sent twice.
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                isolation_level="read_committed")
    await consumer.start()
    handled, deadline = 0, time.monotonic() + timeout if timeout else None
    try:
        while count is None or handled < count:
            if deadline is not None and time.monotonic() > deadline:
                break
            batch = await consumer.getmany(timeout_ms=1000)
            for messages in batch.values():
                for m in messages:
                    print(m.key.decode() if m.key else None,
                          handle(json.loads(m.value), outbox, budget), flush=True)
                    handled += 1
            if batch:
                await consumer.commit()  # after the events were handled
    finally:
        await consumer.stop()
    return handled


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP",
                                                              "localhost:9092"))
    parser.add_argument("--topic", default="ready")
    parser.add_argument("--group", default="sms-gateway")
    parser.add_argument("--out", default="outbox")
    parser.add_argument("--budget", type=int, default=300_000, help="largest attachment, bytes")
    parser.add_argument("--count", type=int, help="stop after this many events")
    parser.add_argument("--timeout", type=float, help="stop after this many seconds")
    args = parser.parse_args(argv)
    outbox = Path(args.out)
    outbox.mkdir(parents=True, exist_ok=True)
    asyncio.run(consume(args.bootstrap, args.topic, args.group, outbox, args.budget, args.count,
                        args.timeout))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
