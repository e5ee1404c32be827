"""What the report costs a worker: `render_report` for one alert at 512² (the reference size).

    python -m tests.bench.bench_report          # tiny models, every image scaled to 512², 1 thread

The tiny preset's images are small; the report's cost is in thumbnails and plots, so the run's
images are scaled to 512² first. Prints the median seconds of 5 renders and the page's size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)

    import torch
    from PIL import Image

    from alertanim.pipeline.config import MethodConfig
    from alertanim.pipeline.models import load_models
    from alertanim.pipeline.report import render_report
    from alertanim.pipeline.workflow import AlertRun, run_workflow

    torch.set_num_threads(1)
    cache = Path(os.environ.get("ALERTANIM_CACHE") or tempfile.mkdtemp(prefix="alertanim-cache-"))
    config = MethodConfig(steps=2)
    run = run_workflow(load_models("tiny", cache_dir=cache),
                       "A fire has broken out in the building", seed=1, config=config)

    def scaled(v):
        if isinstance(v, Image.Image):
            return v.resize((args.size, args.size))
        if isinstance(v, list) and v and isinstance(v[0], Image.Image):
            return [x.resize((args.size, args.size)) for x in v]
        return v
    big = AlertRun({k: scaled(v) for k, v in run.values.items()}, run.seconds)
    times, page = [], ""
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        page = render_report(big, config)
        times.append(time.perf_counter() - t0)
    figures = {"size": args.size, "candidates": len(big.candidates),
               "variants": len(big.variants), "median_s": round(statistics.median(times), 3),
               "page_mb": round(len(page.encode()) / 1e6, 2)}
    print(figures)
    return figures


if __name__ == "__main__":
    main()
