"""Key frames as the method makes them, from scikit-image's photographs: frame 0 is the
photograph (the best image); every other frame repaints a mask, a wobbly disc over a quarter of
the image united with 15% random 8-px cells (`pipeline.mask.random_mask`), with content of its
own (the photograph shifted, blended with another photograph at a random offset), composited back
with the method's feathered edge (`pipeline.composite`): outside the mask every frame is frame 0,
bit for bit."""

from __future__ import annotations

import numpy as np
from PIL import Image

from alertanim.pipeline.composite import feathered_alpha, keep_static
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
