"""Flash safety (WCAG 2.3.1, `pipeline.flash`): the figures of the photographs' animations and
of synthetic cases on either side of the thresholds, and how long measuring one takes.

    python -m tests.bench.bench_flash [--size 512] [--repeat 5] [--json F]

The key frames are made as the method makes them, from scikit-image's photographs
(`tests.support.photos.key_frames`, as tests/bench/bench_animate.py makes them), crossfaded as
the animate stage does at the default settings; every frame is measured at `--size`².

Prints two tables. First, per case: shown frames, the loop's milliseconds, general, red and
(the worse) flashes per second over an area that counts, whether that passes, and the median
wall and CPU milliseconds of `--repeat` measurements of the whole animation. Then the same
photographs crossfaded too fast on purpose (no in-betweens, 40 ms a frame) and what the animate
stage does about it (`pipeline.animate.flash_safe`): the figure as built, the remedy, the pace it
delivers and the figure as delivered.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from alertanim.pipeline.animate import crossfade, flash_safe, shown_ms
from alertanim.pipeline.config import MethodConfig
from alertanim.pipeline.flash import measure
from tests.support.photos import PHOTOS, key_frames


def solid(color, size):
    return np.full((size, size, 3), color, dtype=np.uint8)


def patch(color, fraction, size):
    a = solid((0, 0, 0), size)
    half = round(size * fraction ** 0.5 / 2)
    c = size // 2
    a[c - half:c + half, c - half:c + half] = color
    return a


def alternating(a, b, hz):
    n = 2 * max(1, round(hz))
    return [a if i % 2 == 0 else b for i in range(n)], [1000 / (2 * hz)] * n


def synthetic(size):
    black, white = solid((0, 0, 0), size), solid((255, 255, 255), size)
    fade = [solid(round(255 * abs(np.sin(np.pi * i / 40))), size) for i in range(40)]
    return {
        "black/white 4 Hz": alternating(black, white, 4),
        "black/white 3 Hz": alternating(black, white, 3),
        "black/white 2 Hz": alternating(black, white, 2),
        "red 4 Hz, 25%": alternating(black, patch((255, 0, 0), 0.25, size), 4),
        "red 4 Hz, 2%": alternating(black, patch((255, 0, 0), 0.02, size), 4),
        "dark red 4 Hz": alternating(black, solid((120, 0, 0), size), 4),
        "crossfade 4 s": (fade, [100] * 40),
        "still": ([white], [1000]),
    }


def timed(job, repeat):
    """`job()`, and the median of `repeat` runs' wall and CPU seconds (on a shared machine the
    CPU seconds are what it costs, the wall seconds include waiting for a core)."""
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = job()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return out, statistics.median(wall), statistics.median(cpu)


def figures(frames, durations, repeat) -> dict:
    got, wall, cpu = timed(lambda: measure(frames, durations), repeat)
    return {"frames": len(frames), "loop_ms": round(sum(durations)),
            "general": got.general_flashes_per_second, "red": got.red_flashes_per_second,
            "flashes": got.flashes_per_second, "safe": got.flash_safe,
            "ms": round(1000 * wall, 1), "cpu_ms": round(1000 * cpu, 1)}


COLUMNS = [("frames", "frames"), ("loop_ms", "loop ms"), ("general", "general/s"),
           ("red", "red/s"), ("flashes", "flashes/s"), ("safe", "safe"), ("ms", "wall ms"),
           ("cpu_ms", "CPU ms")]
REMEDY_COLUMNS = [("built", "built/s"), ("remedy", "remedy"), ("inbetween", "in-betw."),
                  ("frame_ms", "frame ms"), ("key_ms", "key ms"), ("delivered", "deliv./s"),
                  ("safe", "safe"), ("ms", "stage ms")]


def table(title, rows, columns):
    print(title)
    width = max(len(name) for name in rows) + 2
    print(f"{'':<{width}}" + " ".join(f"{t:>10}" for _, t in columns))
    for name, row in rows.items():
        print(f"{name:<{width}}" + " ".join(f"{str(row[k]):>10}" for k, _ in columns))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)
    c = MethodConfig()
    keys = {name: key_frames(name, c.frames, args.size, seed=i) for i, name in enumerate(PHOTOS)}

    measured = {}
    for name, frames in keys.items():
        clip = crossfade(frames, c.inbetween, c.loop)
        measured[name] = figures(clip, [shown_ms(c.frame_ms)] * len(clip), args.repeat)
    for name, (frames, durations) in synthetic(args.size).items():
        measured[name] = figures(frames, durations, args.repeat)
    photo_ms = [measured[p]["ms"] for p in PHOTOS]
    photo_cpu = [measured[p]["cpu_ms"] for p in PHOTOS]

    fast = c.model_copy(update={"inbetween": 0, "frame_ms": 40})
    remedied = {}
    for name, frames in keys.items():
        (delivered, paced, safety), wall, _ = timed(lambda: flash_safe(frames, fast),
                                                    args.repeat)
        remedied[f"{name}, fast"] = {
            "built": safety.built_flashes_per_second, "remedy": safety.remedy,
            "inbetween": paced.inbetween, "frame_ms": paced.frame_ms,
            "key_ms": (paced.inbetween + 1) * shown_ms(paced.frame_ms),
            "delivered": safety.flashes_per_second, "safe": safety.flash_safe,
            "ms": round(1000 * wall, 1)}

    print(f"{c.frames} key frames at {args.size}², {c.inbetween} in-betweens, {c.frame_ms} ms a "
          f"frame; milliseconds to measure one animation, median of {args.repeat}")
    table("flashes per second (WCAG 2.3.1: more than 3 fails)", measured, COLUMNS)
    print(f"over the photographs, median: {statistics.median(photo_ms)} ms wall, "
          f"{statistics.median(photo_cpu)} ms CPU")
    print()
    table("too fast on purpose (no in-betweens, 40 ms a frame): made safe by the animate stage",
          remedied, REMEDY_COLUMNS)
    out = {"measured": measured, "remedied": remedied,
           "photo_measure_ms_median": statistics.median(photo_ms),
           "photo_measure_cpu_ms_median": statistics.median(photo_cpu)}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return out


if __name__ == "__main__":
    main()
