"""Stream benchmark: alerts through a real Kafka broker and S3-compatible server against the
in-process run of the same alerts, the instant tier's latency, and throughput with one and two
workers.

    python -m tests.bench.bench_stream            # tiny preset on CPU, starts Kafka and S3 itself
    python -m tests.bench.bench_stream --burst 100 --no-scale-out   # the instant tier in a burst
    python -m tests.bench.bench_stream --burst 0 --no-reports   # a lone alert without its report
    python -m tests.bench.bench_stream --front-only --burst 100  # the front role alone: instant
    python -m tests.bench.bench_stream --burst 100 --no-scale-out --burst-until instant
                                                # every stage on one worker, until the instants

The scene library's `fire` entry is built first (`alertanim library build --only fire`), so each
alert gets its `instant` event from ingest (with its hand-over) and its `ready` event at the end.
Latency is measured per alert from the publish to its events: `ready` by the clock of the waiting
consumer, `instant` by its record's timestamp (sequential alerts, so queueing does not count);
in a burst of alerts sent at once, each alert's events by their record timestamps from the
moment the burst was published, and when ingest handed each over to the subject stage
(`ingested_*`). Each stage's seconds (median) are printed as the worker measured them (with its
inputs read from the store and its outputs written there) beside the in-process run's.
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
    ap.add_argument("--no-scale-out", action="store_true",
                    help="burst one worker only (no second worker, no second burst)")
    ap.add_argument("--front-only", action="store_true",
                    help="the worker runs the front role only (ingest, subject): instant events "
                         "alone, no generated animation, no in-process run")
    ap.add_argument("--burst-until", choices=("ready", "instant"), default="ready",
                    help="a burst ends when every alert's ready event (or instant event) is in: "
                         "instant measures the instant tier beside the GPU stages in minutes")
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    from alertanim.pipeline import graph
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
    if not args.front_only:
        run_workflow(models, text, seed=0, config=config)
    inproc = []

    broker = KafkaBroker().start()
    s3 = S3Proxy().start()  # the tests' S3 server: on disk, with auth
    figures: dict = {"steps": args.steps}
    try:
        p = Pipeline(broker, s3, cache, method={"steps": args.steps},
                     **({"reports": False} if args.no_reports else {}))
        p.build_library("fire")
        worker = p.start_worker("ingest,subject" if args.front_only else "all")
        figures["stages"] = "ingest,subject" if args.front_only else "all"
        # the event that ends an alert here: the generated one, or the instant one alone
        last = p.settings.topic_instant if args.front_only else p.settings.topic_ready
        publish(p.settings, [("warm", alert_bytes("warm", text))])
        consume(p.settings, [last], until=lambda r: len(r) >= 1, timeout=300)
        both = [p.settings.topic_instant, p.settings.topic_ready]
        stream, instant, stages, inproc_stages = [], [], {}, {}
        for i in range(args.alerts):
            # each alert in-process, then through the stream, one after the other: both under
            # the same load (the broker and S3 up, the worker idle), so the ratio does not move
            # with what else this machine runs from one minute to the next
            if not args.front_only:
                t0 = time.perf_counter()
                run = run_workflow(models, text, seed=i, config=config)
                inproc.append(time.perf_counter() - t0)
                for name, sec in run.seconds.items():
                    inproc_stages.setdefault(name, []).append(sec)
            aid = f"lat-{i}"
            t0, t0_epoch = time.perf_counter(), time.time()
            publish(p.settings, [(aid, alert_bytes(aid, text))])
            got = consume(p.settings, both, until=lambda r: any(
                x.key == aid.encode() and x.topic == last for x in r), timeout=300)
            stream.append(time.perf_counter() - t0)
            mine = [x for x in got if x.key == aid.encode()]
            instant += [x.timestamp / 1000 - t0_epoch for x in mine if x.topic == both[0]]
            for event in [AnimationReady.from_bytes(x.value) for x in mine if x.topic == both[1]]:
                for name, sec in event.stage_seconds.items():
                    stages.setdefault(name, []).append(sec)
        if args.front_only:
            figures["latency"] = {"instant_events": len(instant)}
            if instant:
                figures["latency"].update(
                    instant_median_s=round(statistics.median(instant), 3),
                    instant_p95_s=round(pct(instant, 0.95), 3))
        elif args.alerts:
            figures["latency"] = {
                "in_process_median_s": round(statistics.median(inproc), 3),
                "in_process_p95_s": round(pct(inproc, 0.95), 3),
                "stream_median_s": round(statistics.median(stream), 3),
                "stream_p95_s": round(pct(stream, 0.95), 3),
            }
            lat = figures["latency"]
            lat["median_ratio"] = round(lat["stream_median_s"] / lat["in_process_median_s"], 2)
            lat["p95_ratio"] = round(lat["stream_p95_s"] / lat["in_process_p95_s"], 2)
            lat["paired_ratio_median"] = round(statistics.median(
                st / ip for st, ip in zip(stream, inproc)), 2)
            lat["instant_events"] = len(instant)
            if instant:
                lat["instant_median_s"] = round(statistics.median(instant), 3)
                lat["instant_p95_s"] = round(pct(instant, 0.95), 3)
            # where a lone alert's time goes in the stream: each stage's own seconds, median
            figures["stream_stage_seconds_median"] = {
                name: round(statistics.median(secs), 3) for name, secs in stages.items()}
            # and in-process (the stream's also read the stage's inputs from the store and
            # write its outputs there)
            figures["in_process_stage_seconds_median"] = {
                name: round(statistics.median(secs), 3) for name, secs in inproc_stages.items()
                if name != "total"}

        upto = p.settings.topic_instant if args.burst_until == "instant" else last

        def burst(pipeline, tag):
            ids = [f"{tag}-{i}" for i in range(args.burst)]
            wanted = {i.encode() for i in ids}
            topics = [pipeline.settings.topic_instant, pipeline.settings.topic_ready,
                      pipeline.settings.topic_alerts, pipeline.settings.stage_topic(graph.NAMES[0])]
            t0, t0_epoch = time.perf_counter(), time.time()
            # sent at once, as a warning system sends a burst (each acknowledged)
            publish(pipeline.settings, [(i, alert_bytes(i, text)) for i in ids], together=True)
            published = time.perf_counter() - t0
            records = consume(pipeline.settings, topics, until=lambda r: len(
                {x.key for x in r if x.topic == upto} & wanted) >= len(ids), timeout=3600)
            elapsed = time.perf_counter() - t0
            ours = [r for r in records if r.key in wanted]
            sent_at = {r.key: r.timestamp / 1000 for r in ours if r.topic == topics[2]}
            out = {"alerts": len(ids), "alerts_per_s": round(len(ids) / elapsed, 3),
                   "publish_s": round(published, 3)}
            # ingest's hand-overs to the subject stage (in the instant event's transaction)
            for name, topic in (("ready", topics[1]), ("instant", topics[0]),
                                ("ingested", topics[3])):
                got = [r for r in ours if r.topic == topic]
                if name == "instant":
                    out["instant_events"] = len(got)
                if not got:
                    continue
                # from the burst's publication: what its consumers wait, queueing included;
                # and from each alert's own record on `alerts` (its publisher's timestamp)
                since_burst = [r.timestamp / 1000 - t0_epoch for r in got]
                since_own = [r.timestamp / 1000 - sent_at[r.key] for r in got if r.key in sent_at]
                out.update({f"{name}_p50_s": round(statistics.median(since_burst), 3),
                            f"{name}_p95_s": round(pct(since_burst, 0.95), 3),
                            f"{name}_own_p50_s": round(statistics.median(since_own), 3),
                            f"{name}_own_p95_s": round(pct(since_own, 0.95), 3)})
            return out

        workers = [worker]
        if args.burst:
            figures["one_worker"] = burst(p, "one")
        if args.burst and not (args.no_scale_out or args.front_only):
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
