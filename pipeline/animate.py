"""Stage 4b: linear interpolation between the selected frames, encoded as GIF and animated WebP.

The GIF has to ride along an MMS (300 KB is what every carrier takes), so encoding walks down a
ladder of cheaper settings (fewer colours, then smaller frames, then fewer in-betweens) until the
bytes fit the budget.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

MMS_BYTES = 300_000


@dataclass(frozen=True)
class Animation:
    data: bytes
    content_type: str
    width: int
    height: int
    frame_count: int
    duration_ms: int  # one full loop
    colors: int | None = None  # GIF palette size actually used


def crossfade(frames: Sequence[Image.Image], inbetween: int, loop: bool = True) -> list[Image.Image]:
    """Key frames with `inbetween` linear blends between each consecutive pair (and back to the
    first when `loop`, so a looping GIF has no jump)."""
    keys = [f.convert("RGB") for f in frames]
    pairs = list(zip(keys, keys[1:] + keys[:1] if loop and len(keys) > 1 else keys[1:]))
    out: list[Image.Image] = []
    for a, b in pairs:
        out.append(a)
        out.extend(Image.blend(a, b, t / (inbetween + 1)) for t in range(1, inbetween + 1))
    if not (loop and len(keys) > 1):
        out.append(keys[-1])
    return out


def _gif(frames: Sequence[Image.Image], frame_ms: int, colors: int) -> bytes:
    # One palette for the whole clip, taken from a strip of every frame: no per-frame flicker, and
    # quantizing against a fixed palette is much faster than one median cut per frame.
    strip = Image.new("RGB", (frames[0].width, frames[0].height * len(frames)))
    for i, f in enumerate(frames):
        strip.paste(f, (0, i * f.height))
    palette = strip.quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    indexed = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    buf = io.BytesIO()
    indexed[0].save(buf, format="GIF", save_all=True, append_images=indexed[1:],
                    duration=frame_ms, loop=0, optimize=False, disposal=1)
    return buf.getvalue()


def encode_gif(
    frames: Sequence[Image.Image],
    inbetween: int,
    frame_ms: int = 120,
    max_bytes: int = MMS_BYTES,
    loop: bool = True,
) -> Animation:
    """Crossfaded GIF no larger than `max_bytes`, as faithful as the budget allows."""
    if not frames:
        raise ValueError("no frames to animate")
    w, h = frames[0].size
    ladder = [(c, s, t) for t in range(inbetween, -1, -1) for s in (1.0, 0.75, 0.5, 0.375, 0.25)
              for c in (256, 128, 64, 32)]
    # Keep the budget walk short: order by how much each step costs the viewer.
    ladder.sort(key=lambda cst: ((1 - cst[1]) * 4 + (inbetween - cst[2]) * 2
                                 + {256: 0, 128: 0.5, 64: 1.5, 32: 3}[cst[0]]))
    data = b""
    for colors, scale, t in ladder:
        size = (max(8, round(w * scale)), max(8, round(h * scale)))
        keys = [f.convert("RGB").resize(size, Image.Resampling.LANCZOS) if scale != 1 else f
                for f in frames]
        clip = crossfade(keys, t, loop)
        data = _gif(clip, frame_ms, colors)
        if len(data) <= max_bytes:
            return Animation(data, "image/gif", size[0], size[1], len(clip),
                             frame_ms * len(clip), colors)
    raise ValueError(f"cannot fit the animation in {max_bytes} bytes (smallest was {len(data)})")


def encode_webp(
    frames: Sequence[Image.Image], inbetween: int, frame_ms: int = 120, quality: int = 80,
    loop: bool = True,
) -> Animation:
    clip = crossfade(frames, inbetween, loop)
    buf = io.BytesIO()
    clip[0].save(buf, format="WEBP", save_all=True, append_images=clip[1:], duration=frame_ms,
                 loop=0, quality=quality, method=4)
    return Animation(buf.getvalue(), "image/webp", clip[0].width, clip[0].height, len(clip),
                     frame_ms * len(clip))
