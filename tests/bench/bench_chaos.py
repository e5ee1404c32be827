"""Chaos and load: alerts through two workers over the real broker and S3 server while workers are
SIGKILLed at random moments and replaced, counted by a consumer that reads `ready` as an SMS
service should (isolation.level=read_committed).

    python -m tests.bench.bench_chaos                       # 200 alerts, 8 kills, starts Kafka + S3
    python -m tests.bench.bench_chaos --alerts 200 --kills 0   # the burst alone: peak RSS per worker

Prints one JSON object: alerts, kills, lost, duplicated, failure records by reason, seconds,
and each worker's peak RSS (VmHWM) with its RSS after the warm-up and at the end. CI runs a
smaller version (tests/stream/test_chaos.py) and requires 0 lost and 0 duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TEXTS = ["A fire has broken out in the building",
         "Flash flood warning for the river district, move to higher ground",
         "서울 강남구 화재 발생, 인근 주민은 대피하세요",
         "Tornado warning: take shelter in a basement now",
         "Magnitude 5.1 earthquake: expect aftershocks"]
HOSTILE = [b"\xff\xfe not utf-8", b"{not json", b'{"id": "hostile-empty", "text": ""}',
           b"[" * 5000]


def _kib(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def read_committed(settings, topics: list[str], until, timeout: float) -> list:
    """Every committed record on `topics`, from the beginning, until `until(records)`."""
    async def run():
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(*topics, group_id=None, auto_offset_reset="earliest",
                                    isolation_level="read_committed",
                                    **settings.kafka_client_kwargs())
        await consumer.start()
        records, deadline = [], time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and not until(records):
                for msgs in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(msgs)
        finally:
            await consumer.stop()
        return records
    return asyncio.run(run())


def run(pipeline, alerts: int, kills: int, seed: int = 0, hostile: bool = True,
        settle_s: float = 10.0, timeout: float = 900.0) -> dict:
    """Drive `pipeline` (tests.stream.conftest.Pipeline) through the chaos; return the figures."""
    from tests.stream.conftest import alert_bytes, publish

    rng = random.Random(seed)
    settings = pipeline.settings
    workers = [pipeline.start_worker(), pipeline.start_worker()]
    warm = {w.proc.pid: _kib(w.proc.pid, "VmRSS") for w in workers}
    ids = [f"chaos-{seed}-{i:04d}" for i in range(alerts)]
    records = [(i, alert_bytes(i, TEXTS[n % len(TEXTS)])) for n, i in enumerate(ids)]
    bad = [(None, raw) for raw in HOSTILE] if hostile else []
    t0 = time.monotonic()
    publish(settings, records[: alerts // 2] + bad + records[alerts // 2:])

    ready_ids: set[str] = set()

    def progress(rs):
        ready_ids.update(r.key.decode() for r in rs if r.topic == settings.topic_ready)
        return len(ready_ids) >= alerts

    done_kills, rss = 0, {}
    while done_kills < kills and time.monotonic() - t0 < timeout:
        time.sleep(rng.uniform(2.0, 10.0))
        victim = rng.choice([w for w in workers if w.proc.poll() is None])
        rss[victim.proc.pid] = (warm.get(victim.proc.pid), _kib(victim.proc.pid, "VmHWM"),
                                _kib(victim.proc.pid, "VmRSS"))
        victim.kill()
        done_kills += 1
        workers.remove(victim)
        workers.append(pipeline.start_worker(wait=False))  # the replacement joins, a rebalance
    for w in workers:
        if w.proc.poll() is None:
            w.wait_ready()
    left = max(60.0, timeout - (time.monotonic() - t0))
    got = read_committed(settings, [settings.topic_ready, settings.topic_failed],
                         until=progress, timeout=left)
    seconds = time.monotonic() - t0
    time.sleep(settle_s)  # anything late (a duplicate) arrives now
    got = read_committed(settings, [settings.topic_ready, settings.topic_failed],
                         until=lambda rs: False, timeout=settle_s)
    for w in workers:
        if w.proc.poll() is None:
            rss[w.proc.pid] = (warm.get(w.proc.pid), _kib(w.proc.pid, "VmHWM"),
                               _kib(w.proc.pid, "VmRSS"))
    ready = collections.Counter(r.key.decode() for r in got if r.topic == settings.topic_ready)
    failures = [json.loads(r.value) for r in got if r.topic == settings.topic_failed]
    return {
        "alerts": alerts, "hostile_inputs": len(bad), "kills": done_kills,
        "completed": len(set(ready) & set(ids)),
        "lost": sorted(set(ids) - set(ready)),
        "duplicated": {k: n for k, n in ready.items() if n > 1},
        "failure_records_by_reason": dict(collections.Counter(f["reason"] for f in failures)),
        "failed_good_alerts": sorted({f.get("alert_id") for f in failures} & set(ids)),
        "seconds": round(seconds, 1),
        "alerts_per_minute": round(alerts / seconds * 60, 1),
        "workers_rss_kib": [{"warm": a, "peak": b, "end": c} for a, b, c in rss.values()],
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--alerts", type=int, default=200)
    ap.add_argument("--kills", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    from deploy.local.harness import KafkaBroker, S3Server
    from pipeline.models import load_models
    from tests.stream.conftest import Pipeline

    cache = Path(os.environ.get("ALERTANIM_CACHE") or tempfile.mkdtemp(prefix="alertanim-cache-"))
    os.environ["ALERTANIM_CACHE"] = str(cache)
    load_models("tiny", cache_dir=cache)  # written once, read by every worker
    kafka, s3 = KafkaBroker().start(), S3Server().start()
    pipeline = Pipeline(kafka, s3, cache)
    try:
        figures = run(pipeline, args.alerts, args.kills, args.seed)
    finally:
        pipeline.stop()
        s3.stop()
        kafka.cleanup()
    print(json.dumps(figures, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return figures


if __name__ == "__main__":
    main()
