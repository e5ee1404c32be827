"""Chaos and load: alerts through two workers over the real broker and S3 server while workers are
SIGKILLed at random moments and replaced, counted by a consumer that reads `ready` as an SMS
service should (isolation.level=read_committed).

    python -m tests.bench.bench_chaos                       # 200 alerts, 8 kills, starts Kafka + S3
    python -m tests.bench.bench_chaos --alerts 200 --kills 0   # the burst alone: peak RSS per worker

Prints one JSON object: alerts, kills, lost, duplicated, failure records by reason (and any
input with none or more than one), seconds,
and each worker's peak RSS (VmHWM) with its RSS after the warm-up and at the end. CI runs a
smaller version (tests/stream/test_chaos.py) and requires 0 lost and 0 duplicated;
the driver itself is `tests.support.chaos.run`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--alerts", type=int, default=200)
    ap.add_argument("--kills", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    from alertanim.pipeline.models import load_models
    from deploy.local.harness import KafkaBroker, S3Proxy
    from tests.support.chaos import run
    from tests.support.deployment import Pipeline

    cache = Path(os.environ.get("ALERTANIM_CACHE") or tempfile.mkdtemp(prefix="alertanim-cache-"))
    os.environ["ALERTANIM_CACHE"] = str(cache)
    load_models("tiny", cache_dir=cache)  # written once, read by every worker
    kafka, s3 = KafkaBroker().start(), S3Proxy().start()
    pipeline = Pipeline(kafka, s3, cache)
    try:
        figures = run(pipeline, args.alerts, args.kills, args.seed)
    finally:
        pipeline.stop()
        s3.cleanup()
        kafka.cleanup()
    print(json.dumps(figures, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return figures


if __name__ == "__main__":
    main()
