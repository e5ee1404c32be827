"""Static parts stay still: each variant keeps the best image's pixels outside the mask.

Masked sampling repaints inside the mask, but a variant comes back through the VAE whole, so
outside the mask it is a reconstruction of the best image, not the image itself: cut between
frames, the background would shimmer. The composite takes the variant inside the mask and the
best image's own pixels outside it. The edge is feathered *inward*: the variant's weight rises
from 1/(w+1) on the mask's border to 1 at w pixels in (Chebyshev distance), so no seam shows and
every pixel outside the mask is the best image's, bit for bit. The figure that checks it,
`static_change`, is the mean absolute change between consecutive key frames outside the mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image


def feathered_alpha(mask: np.ndarray, width: int) -> np.ndarray:
    """The variant's weight per pixel (float32 H×W in [0, 1]): 0 outside `mask` (bool H×W),
    ramping over `width` pixels inside it. The image's own border is not an edge."""
    inside = mask.astype(bool)
    if width <= 0 or not inside.any():
        return inside.astype(np.float32)
    outside = torch.from_numpy((~inside).astype(np.float32))[None, None]
    depth = torch.zeros_like(outside)
    for r in range(1, width + 1):  # pixels further than r from every outside pixel
        near = torch.nn.functional.max_pool2d(outside, 2 * r + 1, stride=1, padding=r)
        depth += near < 0.5
    alpha = (depth[0, 0].numpy() + 1.0) / (width + 1.0)
    return np.where(inside, alpha, 0.0).astype(np.float32)


def keep_static(best: Image.Image, variants: Sequence[Image.Image], alpha: np.ndarray
                ) -> list[Image.Image]:
    """Each variant inside the mask, the best image outside, blended by `alpha`."""
    base = np.asarray(best.convert("RGB"), dtype=np.float32)
    a = alpha[..., None]
    out = []
    for v in variants:
        mixed = base + a * (np.asarray(v.convert("RGB"), dtype=np.float32) - base)
        out.append(Image.fromarray(np.rint(mixed).clip(0, 255).astype(np.uint8), "RGB"))
    return out


def static_change(frames: Sequence[Image.Image], mask: np.ndarray, closed: bool) -> float:
    """Mean absolute pixel change (0-255, over channels) between consecutive frames, outside
    `mask`; with `closed`, the last frame back to the first too. 0.0 when nothing is outside."""
    outside = ~mask.astype(bool)
    if len(frames) < 2 or not outside.any():
        return 0.0
    arrays = [np.asarray(f.convert("RGB"), dtype=np.int16)[outside] for f in frames]
    pairs = list(zip(arrays, arrays[1:]))
    if closed and len(frames) > 2:
        pairs.append((arrays[-1], arrays[0]))
    return float(np.mean([np.abs(a - b).mean() for a, b in pairs]))
