"""Frame selection (stage 4a): the time of the exact path at the method's size, and what the
earlier fixed-order DP gave up.

    python -m tests.bench.bench_select [--json F]

Timing: `select_path` at n = 17 (the best image and 16 variants), k = 8, open and looped, on
Euclidean distances between random 768-D vectors (ViT-B/16 CLS width), after a warm-up call that
builds the subset index; the first (cold) call is reported apart.

Quality: the cost of `select_path_in_order` (the order fixed by distance from the best image)
over the exact cost, on three kinds of point sets: uniform 4-D points, isotropic 768-D Gaussian
vectors (their distances concentrate, so order matters least), and 768-D "variants": one base
vector moved along 8 shared directions plus noise, closer to how inpainted variants of one image
spread in feature space.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from alertanim.pipeline.select import _subset_layers, select_path, select_path_in_order

WIDTH = 768  # ViT-B/16 hidden size


def distances(x: np.ndarray) -> np.ndarray:
    sq = (x * x).sum(1)
    return np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0))


def points(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "4-D uniform":
        return rng.random((n, 4))
    if kind == "768-D gaussian":
        return rng.normal(size=(n, WIDTH))
    if kind == "768-D variants":
        base, axes = rng.normal(size=WIDTH), rng.normal(size=(8, WIDTH))
        return base + rng.normal(size=(n, 8)) @ axes + 0.3 * rng.normal(size=(n, WIDTH))
    raise ValueError(kind)


def timing(n: int, k: int, cases: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    mats = [distances(points("768-D gaussian", n, rng)) for _ in range(cases)]
    out = {}
    for closed in (False, True):
        _subset_layers.cache_clear()
        t0 = time.perf_counter()
        select_path(mats[0], k, closed=closed)
        cold = time.perf_counter() - t0
        for d in mats[:3]:  # warm-up
            select_path(d, k, closed=closed)
        seconds, in_order = [], []
        for d in mats:
            t0 = time.perf_counter()
            select_path(d, k, closed=closed)
            seconds.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            select_path_in_order(d, k, closed=closed)
            in_order.append(time.perf_counter() - t0)
        name = "closed" if closed else "open"
        out[name] = {
            "median_ms": round(1e3 * statistics.median(seconds), 3),
            "p95_ms": round(1e3 * float(np.percentile(seconds, 95)), 3),
            "max_ms": round(1e3 * max(seconds), 3),
            "cold_ms": round(1e3 * cold, 3),
            "in_order_median_ms": round(1e3 * statistics.median(in_order), 3),
        }
        f = out[name]
        print(f"select_path n={n} k={k} {name:>6}: median {f['median_ms']:.2f} ms, "
              f"p95 {f['p95_ms']:.2f} ms, max {f['max_ms']:.2f} ms over {cases}; "
              f"first call {f['cold_ms']:.2f} ms; "
              f"in-order DP median {f['in_order_median_ms']:.2f} ms")
    return out


def quality(n: int, k: int, cases: int, seed: int) -> dict:
    out = {}
    for kind in ("4-D uniform", "768-D gaussian", "768-D variants"):
        for closed in (False, True):
            rng = np.random.default_rng(seed)
            ratios, cheaper = [], 0
            for _ in range(cases):
                d = distances(points(kind, n, rng))
                exact = select_path(d, k, closed=closed).cost
                approx = select_path_in_order(d, k, closed=closed).cost
                assert exact <= approx * (1 + 1e-12), (kind, closed, exact, approx)
                ratios.append(approx / exact)
                cheaper += exact < approx * (1 - 1e-9)
            name = f"{kind}, {'closed' if closed else 'open'}"
            out[name] = {
                "mean_ratio": round(statistics.fmean(ratios), 4),
                "max_ratio": round(max(ratios), 4),
                "exact_cheaper_share": round(cheaper / cases, 4),
            }
            f = out[name]
            print(f"in-order / exact cost, {name:>22}: mean {f['mean_ratio']:.4f}, "
                  f"max {f['max_ratio']:.4f}; exact strictly cheaper in "
                  f"{100 * f['exact_cheaper_share']:.1f}% of {cases}")
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=17, help="frames to choose from, start included")
    ap.add_argument("--k", type=int, default=8, help="frames in the path")
    ap.add_argument("--timing-cases", type=int, default=50)
    ap.add_argument("--quality-cases", type=int, default=500, help="per kind of points and mode")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)
    figures = {
        "n": args.n, "k": args.k,
        "timing": timing(args.n, args.k, args.timing_cases, args.seed),
        "quality": quality(args.n, args.k, args.quality_cases, args.seed),
    }
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
