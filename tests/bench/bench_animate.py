"""The CPU end of an alert: crossfade 8 key frames at 512² and encode the GIF and the MP4 (each
within the MMS budget), the animated WebP and the poster.

    python -m tests.bench.bench_animate [--size 512] [--repeat 3] [--json F] [--baseline REV]

The key frames are made as the method makes them, from scikit-image's photographs
(`tests.support.photos.key_frames`): the photograph, then variants composited back with the
method's feathered edge, so that outside the mask every frame is frame 0, bit for bit.

Prints, per photograph and from one run: the GIF's side, colours, in-betweens shown, bytes and
encode seconds; the MP4's side, bytes and seconds; the WebP's bytes and seconds; the poster's
bytes and seconds; the whole last stage as the worker runs it (`animate.STAGE` on the key frames
and their mask: the flash check, the four renditions side by side, the motion figures) and its
seconds; then the CPU seconds of each (the stage's: all its threads together); and the medians
over the photographs. Seconds are the median of `--repeat` runs.

`--baseline REV` also runs `pipeline/animate.py` as it was at the git revision REV (read with
`git show`, imported beside the current one), in the same run, each of its measurements right
after the current one's, and prints its figures and how many times longer it takes. On a shared
machine the seconds move with the load; the ratios, measured side by side, move less.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
from PIL import Image

from alertanim.pipeline import animate
from alertanim.pipeline.config import MethodConfig
from alertanim.pipeline.stage import Context
from tests.support.photos import PHOTOS, key_frames

ROOT = Path(__file__).resolve().parents[2]


def baseline(rev: str) -> types.ModuleType:
    """`pipeline/animate.py` at git revision `rev`, imported as a module of the package beside
    the current one (its relative imports read the current flash, config and stage modules)."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:pipeline/animate.py"],
                            capture_output=True, text=True, check=True).stdout
    name = "alertanim.pipeline._animate_baseline"
    module = types.ModuleType(name)
    module.__package__, module.__file__ = "alertanim.pipeline", f"{rev}:pipeline/animate.py"
    sys.modules[name] = module  # dataclasses look their module up
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def changed(keys: list[Image.Image]) -> Image.Image:
    """Where any key frame differs from the first: the mask the variants were composited in."""
    first = np.asarray(keys[0])
    inside = np.any([(np.asarray(k) != first).any(axis=2) for k in keys[1:]], axis=0)
    return Image.fromarray(np.where(inside, 255, 0).astype(np.uint8))


def jobs(a: types.ModuleType, keys: list[Image.Image], c: MethodConfig) -> dict:
    """What is timed, by name: each rendition alone, then the stage."""
    mask = changed(keys)
    return {
        "gif": lambda: a.encode_gif(keys, c.inbetween, c.frame_ms, c.gif_max_bytes, c.loop),
        "mp4": lambda: a.encode_mp4(keys, c.inbetween, c.frame_ms, c.mp4_max_bytes, c.loop),
        "webp": lambda: a.encode_webp(keys, c.inbetween, c.frame_ms, loop=c.loop),
        "poster": lambda: a.encode_poster(keys[0]),
        "stage": lambda: a.STAGE.run(Context(None, c), [{"frames": keys, "mask": mask}])[0],
    }


def measure(keys: list[Image.Image], c: MethodConfig, repeat: int,
            modules: dict[str, types.ModuleType]) -> dict[str, dict]:
    """Each module's figures for these key frames; every job is run by each module in turn,
    `repeat` times, so that both see the same load."""
    work = {label: jobs(m, keys, c) for label, m in modules.items()}
    out: dict[str, dict] = {label: {} for label in modules}
    seconds: dict[str, dict[str, list[float]]] = {label: {} for label in modules}
    for job in ("gif", "mp4", "webp", "poster", "stage"):
        for _ in range(repeat):
            for label in modules:
                t0, c0 = time.perf_counter(), time.process_time()
                out[label][job] = work[label][job]()
                seconds[label].setdefault(job, []).append(time.perf_counter() - t0)
                seconds[label].setdefault(job + "_cpu", []).append(time.process_time() - c0)
    figures = {}
    for label in modules:
        o, s = out[label], {k: round(statistics.median(v), 3) for k, v in seconds[label].items()}
        gif, mp4, webp, poster, stage = (o[k] for k in ("gif", "mp4", "webp", "poster", "stage"))
        assert stage["animations"][0].data == gif.data, "the stage's GIF is the GIF encoded alone"
        figures[label] = {
            "gif_side": gif.width, "gif_colors": gif.colors,
            "gif_inbetween": animate.inbetween_shown(gif.frame_count, len(keys), c.loop),
            "gif_bytes": len(gif.data), "gif_seconds": s["gif"],
            "mp4_side": mp4.width, "mp4_bytes": len(mp4.data), "mp4_seconds": s["mp4"],
            "webp_bytes": len(webp.data), "webp_seconds": s["webp"],
            "poster_bytes": len(poster.data), "poster_seconds": s["poster"],
            "stage_seconds": s["stage"],
            **{f"{job}_cpu_seconds": s[f"{job}_cpu"]
               for job in ("gif", "mp4", "webp", "poster", "stage")},
        }
    return figures


FIGURES = [("gif_side", "GIF side"), ("gif_colors", "colours"), ("gif_inbetween", "in-betw."),
           ("gif_bytes", "GIF bytes"), ("gif_seconds", "GIF s"), ("mp4_side", "MP4 side"),
           ("mp4_bytes", "MP4 bytes"), ("mp4_seconds", "MP4 s"), ("webp_bytes", "WebP bytes"),
           ("webp_seconds", "WebP s"), ("poster_bytes", "JPEG bytes"),
           ("poster_seconds", "JPEG s"), ("stage_seconds", "stage s")]
CPU = [("gif_cpu_seconds", "GIF"), ("mp4_cpu_seconds", "MP4"), ("webp_cpu_seconds", "WebP"),
       ("poster_cpu_seconds", "JPEG"), ("stage_cpu_seconds", "stage")]
COLUMNS = FIGURES + CPU
SECONDS = [k for k, _ in COLUMNS if k.endswith("seconds")]


def table(figures: dict) -> None:
    for columns, title in ((FIGURES, "seconds: wall clock"),
                           (CPU, "CPU seconds (all the process's threads)")):
        print(f"{title}\n{'':>10} " + " ".join(f"{name:>11}" for _, name in columns))
        for row in (*PHOTOS, "median"):
            print(f"{row:>10} " + " ".join(f"{figures[row][k]:>11.10g}" for k, _ in columns))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--baseline", metavar="REV",
                    help="also time pipeline/animate.py as it was at this git revision")
    args = ap.parse_args(argv)
    c = MethodConfig()
    modules = {"current": animate}
    if args.baseline:
        modules["baseline"] = baseline(args.baseline)
    runs = {name: measure(key_frames(name, c.frames, args.size, seed=i), c, args.repeat, modules)
            for i, name in enumerate(PHOTOS)}
    figures = {label: {name: runs[name][label] for name in PHOTOS} for label in modules}
    for f in figures.values():
        f["median"] = {k: round(statistics.median(f[p][k] for p in PHOTOS), 3)
                       for k, _ in COLUMNS}
    print(f"{c.frames} key frames at {args.size}², {c.inbetween} in-betweens, budgets "
          f"GIF {c.gif_max_bytes} B, MP4 {c.mp4_max_bytes} B; seconds: median of {args.repeat}")
    table(figures["current"])
    result = dict(figures["current"])
    if args.baseline:
        print(f"\nbaseline: pipeline/animate.py at {args.baseline}, in the same run")
        table(figures["baseline"])
        ratio = {k: round(figures["baseline"]["median"][k] / figures["current"]["median"][k], 1)
                 for k in SECONDS if figures["current"]["median"][k] > 0}
        names = {**{k: n for k, n in FIGURES}, **{k: f"{n} CPU" for k, n in CPU}}
        print("\nbaseline's median seconds over the current's: "
              + ", ".join(f"{names[k]} {v}×" for k, v in ratio.items()))
        result.update(baseline=figures["baseline"], ratio=ratio)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return result


if __name__ == "__main__":
    main()
