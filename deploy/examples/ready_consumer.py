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
- Unknown `schema_version`s are refused, not guessed at; every event is validated with the
  pipeline's own model (`alertanim.schemas.AnimationReady`) before anything is done with it.
- A URL is fetched only when it is http(s) on the store's host (`--store-host`, by default the
  local harness's: localhost, 127.0.0.1, ::1), without following redirects, and at most the
  rendition's `bytes` are read (and its `sha256` checked when the event has one): an event that
  names another host, or a body larger than it says, is refused.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import time
import urllib.request
from collections.abc import Collection
from pathlib import Path
from urllib.parse import urlsplit

from alertanim.schemas import AnimationReady

SUPPORTED_VERSION = 2
CHANNEL_TYPES = ("image/gif", "video/mp4", "image/jpeg")  # what this channel can attach, best first
LOCAL_STORE = ("localhost", "127.0.0.1", "[::1]")


class Refused(Exception):
    """A rendition this consumer will not fetch, or whose body is not what the event says."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise Refused(f"the store answered {code} to elsewhere; redirects are not followed")


_OPENER = urllib.request.build_opener(_NoRedirects)


def on_store(url: str, store_hosts: Collection[str]) -> bool:
    """Whether `url` is http(s) on one of `store_hosts` ("host" for any port, "host:port" for
    that port only; IPv6 addresses in brackets)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        return False
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname.lower()
    default = 443 if parts.scheme == "https" else 80
    return any(h.lower() in (host, f"{host}:{port or default}") for h in store_hosts)


def fetch(url: str, size: int, store_hosts: Collection[str], sha256: str | None = None,
          timeout: float = 30) -> bytes:
    """The body at `url`, of at most `size` bytes, from the store only."""
    if not on_store(url, store_hosts):
        raise Refused(f"not a URL on the store ({', '.join(store_hosts)})")
    with _OPENER.open(url, timeout=timeout) as resp:
        declared = resp.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > size:
            raise Refused(f"the store says {declared} bytes; the event says {size}")
        data = resp.read(size + 1)
    if len(data) > size:
        raise Refused(f"more than the {size} bytes the event says")
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise Refused("the bytes do not match the event's sha256")
    return data


def handle(value: bytes, outbox: Path, budget: int,
           store_hosts: Collection[str] = LOCAL_STORE) -> str:
    try:
        version = json.loads(value).get("schema_version")
    except (ValueError, AttributeError):
        return "skipped: not a JSON object"
    if version != SUPPORTED_VERSION:
        return f"skipped: schema_version {version!r} is not supported"
    try:
        event = AnimationReady.from_bytes(value)
    except ValueError as exc:
        return f"skipped: not a valid AnimationReady ({str(exc).splitlines()[0]})"
    done = outbox / f"{event.alert_id}.json"  # the model's pattern: no path in an alert id
    if done.exists():
        return "skipped: already handled"
    renditions = {r.media_type: r for r in event.renditions}
    pick = next((renditions[t] for t in CHANNEL_TYPES
                 if t in renditions and renditions[t].bytes <= budget), None)
    if pick is None:
        return "skipped: no rendition this channel takes"
    if pick.url_expires_at < time.time():
        return "skipped: the URL expired; re-publish the alert for fresh ones"
    try:
        data = fetch(pick.url, pick.bytes, store_hosts, pick.sha256)
    except Refused as exc:  # the event itself is wrong: fetching again would not help
        return f"refused: {exc}"
    # (a store that does not answer raises: nothing is committed, the event comes again)
    ext = {"image/gif": "gif", "video/mp4": "mp4", "image/jpeg": "jpg"}[pick.media_type]
    (outbox / f"{event.alert_id}.{ext}").write_bytes(data)
    # the text goes with the picture, never replaced by it; alt_text is for screen readers
    message = {"alert_id": event.alert_id, "attachment": f"{event.alert_id}.{ext}",
               "media_type": pick.media_type, "alt_text": event.alt_text,
               "status": event.status}
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(message, ensure_ascii=False))
    os.replace(tmp, done)  # the record of what was done appears whole or not at all
    return f"attached {pick.media_type} ({len(data)} bytes)"


async def consume(bootstrap: str, topic: str, group: str, outbox: Path, budget: int,
                  count: int | None, timeout: float | None,
                  store_hosts: Collection[str] = LOCAL_STORE) -> int:
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
                          handle(m.value, outbox, budget, store_hosts), flush=True)
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
    parser.add_argument("--store-host", default=os.environ.get("STORE_HOST",
                                                               ",".join(LOCAL_STORE)),
                        help="the object store's host names (comma-separated, host or "
                             "host:port): the only ones fetched from (default: %(default)s)")
    args = parser.parse_args(argv)
    outbox = Path(args.out)
    outbox.mkdir(parents=True, exist_ok=True)
    hosts = tuple(h.strip() for h in args.store_host.split(",") if h.strip())
    asyncio.run(consume(args.bootstrap, args.topic, args.group, outbox, args.budget, args.count,
                        args.timeout, hosts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
