"""Stream benchmark: alerts through a real Kafka broker and S3-compatible server against the
in-process run of the same alerts, and throughput with one and two workers.

    python -m tests.bench.bench_stream            # tiny preset on CPU, starts Kafka and S3 itself
    python -m tests.bench.bench_stream --burst 0 --no-reports   # a lone alert without its report

Latency is measured per alert from the publish to the arrival of its AnimationReady event
(sequential alerts, so queueing does not count); throughput from a burst of alerts sent at once.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--alerts", type=int, default=10, help="sequential alerts for latency")
    ap.add_argument("--burst", type=int, default=30, help="alerts sent at once for throughput")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--no-reports", action="store_true",
                    help="workers store no report.html (what the report costs a lone alert)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    from alertanim.pipeline.config import MethodConfig
    from alertanim.pipeline.models import load_models
    from alertanim.pipeline.workflow import run_workflow
    from alertanim.schemas import AnimationReady
    from deploy.local.harness import KafkaBroker, S3Proxy
    from tests.support.deployment import Pipeline
    from tests.support.kafka import alert_bytes, consume, publish
    from tests.support.stats import pct

    cache = Path(os.environ.get("ALERTANIM_CACHE") or tempfile.mkdtemp(prefix="alertanim-cache-"))
    os.environ["ALERTANIM_CACHE"] = str(cache)
    text = "A fire has broken out in the building"
    config = MethodConfig(steps=args.steps)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)  # the same thread budget a worker process gets
    models = load_models("tiny", cache_dir=cache)
    run_workflow(models, text, seed=0, config=config)
    inproc = []
    for i in range(args.alerts):
        t0 = time.perf_counter()
        run_workflow(models, text, seed=i, config=config)
        inproc.append(time.perf_counter() - t0)

    broker = KafkaBroker().start()
    s3 = S3Proxy().start()  # the tests' S3 server: on disk, with auth
    figures: dict = {"steps": args.steps}
    try:
        p = Pipeline(broker, s3, cache, method={"steps": args.steps},
                     **({"reports": False} if args.no_reports else {}))
        worker = p.start_worker()
        publish(p.settings, [("warm", alert_bytes("warm", text))])
        consume(p.settings, [p.settings.topic_ready], until=lambda r: len(r) >= 1, timeout=300)
        stream, stages = [], {}
        for i in range(args.alerts):
            aid = f"lat-{i}"
            t0 = time.perf_counter()
            publish(p.settings, [(aid, alert_bytes(aid, text))])
            got = consume(p.settings, [p.settings.topic_ready],
                          until=lambda r: any(x.key == aid.encode() for x in r), timeout=300)
            stream.append(time.perf_counter() - t0)
            [event] = [AnimationReady.from_bytes(x.value) for x in got if x.key == aid.encode()]
            for name, sec in event.stage_seconds.items():
                stages.setdefault(name, []).append(sec)
        figures["latency"] = {
            "in_process_median_s": round(statistics.median(inproc), 3),
            "in_process_p95_s": round(pct(inproc, 0.95), 3),
            "stream_median_s": round(statistics.median(stream), 3),
            "stream_p95_s": round(pct(stream, 0.95), 3),
        }
        lat = figures["latency"]
        lat["median_ratio"] = round(lat["stream_median_s"] / lat["in_process_median_s"], 2)
        lat["p95_ratio"] = round(lat["stream_p95_s"] / lat["in_process_p95_s"], 2)
        # where a lone alert's time goes in the stream: each stage's own seconds, median
        figures["stream_stage_seconds_median"] = {
            name: round(statistics.median(secs), 3) for name, secs in stages.items()}

        def burst(pipeline, tag):
            ids = [f"{tag}-{i}" for i in range(args.burst)]
            t0 = time.perf_counter()
            publish(pipeline.settings, [(i, alert_bytes(i, text)) for i in ids])
            records = consume(pipeline.settings, [pipeline.settings.topic_ready],
                              until=lambda r: len({x.key for x in r} & {i.encode() for i in ids})
                              >= len(ids), timeout=900)
            elapsed = time.perf_counter() - t0
            lats = [AnimationReady.from_bytes(r.value).latency_seconds for r in records
                    if r.key.decode() in ids]
            return {"alerts_per_s": round(len(ids) / elapsed, 3),
                    "p50_latency_s": round(statistics.median(lats), 3),
                    "p95_latency_s": round(pct(lats, 0.95), 3)}

        workers = [worker]
        if args.burst:
            figures["one_worker"] = burst(p, "one")
            workers.append(p.start_worker())
            figures["two_workers"] = burst(p, "two")
            figures["two_worker_speedup"] = round(figures["two_workers"]["alerts_per_s"]
                                                  / figures["one_worker"]["alerts_per_s"], 2)
        for w in workers:
            w.stop()
    finally:
        s3.cleanup()
        broker.cleanup()

    print(f"alertanim stream benchmark (tiny preset, CPU, {args.steps} steps, "
          f"{os.cpu_count()} cores)")
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
