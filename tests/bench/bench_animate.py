"""The CPU end of an alert: crossfade 8 key frames at 512² and encode the GIF and the MP4 (each
within the MMS budget), the animated WebP and the poster.

    python -m tests.bench.bench_animate [--size 512] [--repeat 3] [--json F]

The key frames are made as the method makes them, from scikit-image's photographs: frame 0 is
the photograph (the best image); every other frame repaints a mask, a wobbly disc over a quarter
of the image united with 15% random 8-px cells (`pipeline.mask.random_mask`), with content of its
own (the photograph shifted, blended with another photograph at a random offset), composited back
with the method's feathered edge (`pipeline.composite`): outside the mask every frame is frame 0,
bit for bit.

Prints, per photograph and from one run: the GIF's side, colours, in-betweens shown, bytes and
encode seconds; the MP4's side, bytes and seconds; the WebP's bytes and seconds; the poster's
bytes; all four encoded together as the stage does; and the medians over the photographs.
Seconds are the median of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from PIL import Image

from alertanim.pipeline.animate import (encode_gif, encode_mp4, encode_poster, encode_renditions,
                              encode_webp, inbetween_shown)
from alertanim.pipeline.composite import feathered_alpha, keep_static
from alertanim.pipeline.config import MethodConfig
from alertanim.pipeline.mask import random_mask

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def photograph(name: str, size: int) -> Image.Image:
    """A scikit-image photograph, centre-cropped square and resized to `size`²."""
    from skimage import data

    image = Image.fromarray(getattr(data, name)()).convert("RGB")
    w, h = image.size
    side = min(w, h)
    box = ((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2)
    return image.crop(box).resize((size, size), Image.Resampling.LANCZOS)


def subject_region(size: int, coverage: float, rng: np.random.Generator) -> np.ndarray:
    """A disc over `coverage` of the image, its radius wobbling with the angle like an
    object's outline."""
    y, x = np.mgrid[:size, :size] / size
    cy, cx = rng.uniform(0.35, 0.65, 2)
    angle = np.arctan2(y - cy, x - cx)
    k = np.arange(1, 5)[:, None, None]
    wobble = 1 + (rng.uniform(-0.15, 0.15, (4, 1, 1))
                  * np.cos(k * angle + rng.uniform(0, 2 * np.pi, (4, 1, 1)))).sum(0)
    return np.hypot(y - cy, x - cx) < np.sqrt(coverage / np.pi) * wobble


def key_frames(name: str, n: int = 8, size: int = 512, seed: int = 0) -> list[Image.Image]:
    """`n` key frames from the photograph `name`: itself, then `n - 1` composited variants."""
    rng = np.random.default_rng(seed)
    best = photograph(name, size)
    mask = subject_region(size, 0.25, rng) | random_mask((size, size), 0.15, seed)
    others = [photograph(p, size) for p in PHOTOS if p != name]
    base = np.asarray(best, dtype=np.float32)
    variants = []
    for i in range(n - 1):
        shifted = np.roll(base, tuple(int(v) for v in rng.integers(-24, 25, 2)), axis=(0, 1))
        other = np.roll(np.asarray(others[i % len(others)], dtype=np.float32),
                        tuple(int(v) for v in rng.integers(0, size, 2)), axis=(0, 1))
        variants.append(Image.fromarray((0.6 * shifted + 0.4 * other).astype(np.uint8)))
    return [best, *keep_static(best, variants, feathered_alpha(mask, round(4 * size / 512)))]


def timed(job, repeat: int):
    seconds = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = job()
        seconds.append(time.perf_counter() - t0)
    return out, round(statistics.median(seconds), 3)


def measure(keys: list[Image.Image], c: MethodConfig, repeat: int) -> dict:
    gif, gif_s = timed(lambda: encode_gif(keys, c.inbetween, c.frame_ms, c.gif_max_bytes,
                                          c.loop), repeat)
    mp4, mp4_s = timed(lambda: encode_mp4(keys, c.inbetween, c.frame_ms, c.mp4_max_bytes,
                                          c.loop), repeat)
    webp, webp_s = timed(lambda: encode_webp(keys, c.inbetween, c.frame_ms, loop=c.loop), repeat)
    _, all_s = timed(lambda: encode_renditions(keys, c), repeat)
    return {
        "gif_side": gif.width, "gif_colors": gif.colors,
        "gif_inbetween": inbetween_shown(gif.frame_count, len(keys), c.loop),
        "gif_bytes": len(gif.data), "gif_seconds": gif_s,
        "mp4_side": mp4.width, "mp4_bytes": len(mp4.data), "mp4_seconds": mp4_s,
        "webp_bytes": len(webp.data), "webp_seconds": webp_s,
        "poster_bytes": len(encode_poster(keys[0]).data), "all_seconds": all_s,
    }


COLUMNS = [("gif_side", "GIF side"), ("gif_colors", "colours"), ("gif_inbetween", "in-betw."),
           ("gif_bytes", "GIF bytes"), ("gif_seconds", "GIF s"), ("mp4_side", "MP4 side"),
           ("mp4_bytes", "MP4 bytes"), ("mp4_seconds", "MP4 s"), ("webp_bytes", "WebP bytes"),
           ("webp_seconds", "WebP s"), ("poster_bytes", "JPEG bytes"), ("all_seconds", "all s")]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)
    c = MethodConfig()
    figures = {name: measure(key_frames(name, c.frames, args.size, seed=i), c, args.repeat)
               for i, name in enumerate(PHOTOS)}
    figures["median"] = {k: round(statistics.median(figures[p][k] for p in PHOTOS), 3)
                         for k, _ in COLUMNS}
    print(f"{c.frames} key frames at {args.size}², {c.inbetween} in-betweens, budgets "
          f"GIF {c.gif_max_bytes} B, MP4 {c.mp4_max_bytes} B; seconds: median of {args.repeat}")
    print(f"{'':>10} " + " ".join(f"{title:>10}" for _, title in COLUMNS))
    for row in (*PHOTOS, "median"):
        print(f"{row:>10} " + " ".join(f"{figures[row][k]:>10.10g}" for k, _ in COLUMNS))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=2)
    return figures


if __name__ == "__main__":
    main()
