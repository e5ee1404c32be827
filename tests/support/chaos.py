"""Chaos and load: alerts through two workers over the real broker and S3 server while workers are
SIGKILLed at random moments and replaced, counted by a consumer that reads `ready` as an SMS
service should (isolation.level=read_committed). `run` returns the figures; the benchmark
(`python -m tests.bench.bench_chaos`) and the test (tests/stream/test_chaos.py) both call it."""

from __future__ import annotations

import collections
import hashlib
import json
import random
import threading
import time
from pathlib import Path

from tests.support.kafka import alert_bytes, consume, publish

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


class RssSampler:
    """Each worker's resident memory once a second, from /proc: its peak, its RSS when the
    warm-up ended (a tenth of the alerts done) and at the end, and the growth in between."""

    def __init__(self, workers):
        self.workers = list(workers)
        self.samples: dict[int, list[tuple[float, int, int]]] = collections.defaultdict(list)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> None:
        for w in list(self.workers):
            rss, peak = _kib(w.proc.pid, "VmRSS"), _kib(w.proc.pid, "VmHWM")
            if rss is not None and peak is not None:
                self.samples[w.proc.pid].append((time.monotonic(), rss, peak))

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.sample()

    def stop(self) -> None:
        self.sample()
        self._stop.set()
        self._thread.join(5)

    def figures(self, warmed_at: float | None) -> list[dict]:
        out = []
        for pid, samples in self.samples.items():
            warm = next((s for s in samples if warmed_at and s[0] >= warmed_at), None)
            end = samples[-1]
            out.append({"pid": pid, "peak_kib": max(s[2] for s in samples),
                        "after_warm_up_kib": warm[1] if warm else None, "end_kib": end[1],
                        "growth_after_warm_up_kib": end[1] - warm[1] if warm else None,
                        "seconds_sampled": round(end[0] - samples[0][0], 1),
                        # the RSS at ten even steps through the worker's life, for a trend
                        "rss_mib_trend": [round(samples[i * (len(samples) - 1) // 9][1] / 1024)
                                          for i in range(10)]})
        return out


def run(pipeline, alerts: int, kills: int, seed: int = 0, hostile: bool = True,
        settle_s: float = 10.0, timeout: float = 900.0) -> dict:
    """Drive `pipeline` (a `tests.support.deployment.Pipeline`) through the chaos; return the
    figures."""
    rng = random.Random(seed)
    settings = pipeline.settings
    workers = [pipeline.start_worker(), pipeline.start_worker()]
    sampler = RssSampler(workers)
    ids = [f"chaos-{seed}-{i:04d}" for i in range(alerts)]
    records = [(i, alert_bytes(i, TEXTS[n % len(TEXTS)])) for n, i in enumerate(ids)]
    bad = [(None, raw) for raw in HOSTILE] if hostile else []
    t0 = time.monotonic()
    publish(settings, records[: alerts // 2] + bad + records[alerts // 2:])

    ready_ids: set[str] = set()
    warmed_at: list[float] = []

    def progress(rs):
        ready_ids.update(r.key.decode() for r in rs if r.topic == settings.topic_ready)
        if not warmed_at and len(ready_ids) >= max(1, alerts // 10):
            warmed_at.append(time.monotonic())  # a tenth done: the warm-up is over
        return len(ready_ids) >= alerts

    done_kills = 0
    while done_kills < kills and time.monotonic() - t0 < timeout:
        time.sleep(rng.uniform(2.0, 10.0))
        victim = rng.choice([w for w in workers if w.proc.poll() is None])
        sampler.sample()
        victim.kill()
        done_kills += 1
        workers.remove(victim)
        workers.append(pipeline.start_worker(wait=False))  # the replacement joins, a rebalance
        sampler.workers = list(workers)
    for w in workers:
        if w.proc.poll() is None:
            w.wait_ready()
    left = max(60.0, timeout - (time.monotonic() - t0))
    consume(settings, [settings.topic_ready, settings.topic_failed], until=progress,
            timeout=left)
    seconds = time.monotonic() - t0
    time.sleep(settle_s)  # anything late (a duplicate) arrives now
    got = consume(settings, [settings.topic_ready, settings.topic_failed],
                  until=lambda rs: False, timeout=settle_s)
    sampler.stop()
    ready = collections.Counter(r.key.decode() for r in got if r.topic == settings.topic_ready)
    failures = [json.loads(r.value) for r in got if r.topic == settings.topic_failed]
    per_input = collections.Counter(f.get("payload_sha256") for f in failures)
    hostile_shas = {hashlib.sha256(raw).hexdigest() for _, raw in bad}
    return {
        "alerts": alerts, "hostile_inputs": len(bad), "kills": done_kills,
        "completed": len(set(ready) & set(ids)),
        "lost": sorted(set(ids) - set(ready)),
        "duplicated": {k: n for k, n in ready.items() if n > 1},
        "failure_records_by_reason": dict(collections.Counter(f["reason"] for f in failures)),
        # each hostile input ends in exactly one failure record
        "hostile_without_record": len(hostile_shas - set(per_input)),
        "duplicated_failure_records": {sha[:12]: n for sha, n in per_input.items() if n > 1},
        "failed_good_alerts": sorted({f.get("alert_id") for f in failures} & set(ids)),
        "seconds": round(seconds, 1),
        "alerts_per_minute": round(alerts / seconds * 60, 1),
        "workers_rss_kib": sampler.figures(warmed_at[0] if warmed_at else None),
    }
