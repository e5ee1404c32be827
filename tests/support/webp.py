"""An animated WebP as libwebp's decoder (Pillow's) shows it, and a still of one frame at the
animation's own settings: what the WebP tests compare the animation's frames with."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageSequence

from alertanim.pipeline.animate import WEBP_METHOD, WEBP_QUALITY


def shown(data: bytes) -> list[tuple[np.ndarray, int]]:
    """Every frame as a viewer shows it (RGB, as floats), with its duration in milliseconds."""
    image = Image.open(io.BytesIO(data))
    assert image.format == "WEBP" and image.is_animated == (image.n_frames > 1)
    return [(np.asarray(f.convert("RGB"), dtype=float), f.info["duration"])
            for f in ImageSequence.Iterator(image)]


def still(frame: Image.Image) -> np.ndarray:
    """`frame` encoded alone as a lossy WebP at the animation's quality and method, decoded."""
    buf = io.BytesIO()
    frame.save(buf, format="WEBP", quality=WEBP_QUALITY, method=WEBP_METHOD)
    return np.asarray(Image.open(buf).convert("RGB"), dtype=float)
