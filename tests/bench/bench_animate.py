"""The CPU end of an alert: crossfade and encode 8 key frames at 512² into the GIF (within the
MMS budget) and the WebP.

    python -m tests.bench.bench_animate

The frames are smooth random fields (blurred noise, mixed 30% per frame): like generated images,
too rich for 32 frames of 512² to fit 300 KB, so the GIF walks down its ladder.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from PIL import Image, ImageFilter

from pipeline.animate import encode_gif, encode_renditions, encode_webp
from pipeline.config import MethodConfig


def frames(n: int = 8, size: int = 512, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)

    def field():
        noise = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        return Image.fromarray(noise).filter(ImageFilter.GaussianBlur(6))
    base = field()
    return [Image.blend(base, field(), 0.3) for _ in range(n)]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    keys, c = frames(size=args.size), MethodConfig()
    jobs = {
        "gif": lambda: encode_gif(keys, c.inbetween, c.frame_ms, c.gif_max_bytes, c.loop),
        "webp": lambda: encode_webp(keys, c.inbetween, c.frame_ms, loop=c.loop),
        "animate (both)": lambda: encode_renditions(keys, c),
    }
    figures = {}
    for name, job in jobs.items():
        seconds = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            out = job()
            seconds.append(time.perf_counter() - t0)
        figures[name] = round(statistics.median(seconds), 3)
        gif = out[0] if isinstance(out, tuple) else out
        print(f"{name:>15}: median {figures[name]:.3f} s of {args.repeat}; {len(gif.data)} bytes, "
              f"{gif.width}², {gif.frame_count} frames")
    return figures


if __name__ == "__main__":
    main()
