"""Stage 4b: linear interpolation between the selected frames, encoded as GIF and animated WebP.

The GIF has to ride along an MMS (300 KB is what every carrier takes), so encoding walks down a
ladder of cheaper settings (fewer colours, then smaller frames, then fewer in-betweens) until the
bytes fit the budget.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .composite import static_change
from .config import MMS_BYTES, MethodConfig
from .stage import Context, Kind, Port, Row, Stage, row_by_row

ESTIMATE_SLACK = 1.1  # a rung estimated up to 10% over the budget is still tried whole


@dataclass(frozen=True)
class Animation:
    data: bytes
    content_type: str
    width: int
    height: int
    frame_count: int
    duration_ms: int  # one full loop
    colors: int | None = None  # GIF palette size actually used


def clip_length(keys: int, inbetween: int, loop: bool = True) -> int:
    pairs = keys if loop and keys > 1 else keys - 1
    return pairs * (inbetween + 1) + (0 if loop and keys > 1 else 1)


def inbetween_shown(frame_count: int, keys: int, loop: bool = True) -> int:
    """The in-betweens per key pair in a clip of `frame_count` frames (`clip_length` inverted)."""
    pairs = keys if loop and keys > 1 else keys - 1
    if pairs <= 0:
        return 0
    return (frame_count - (0 if loop and keys > 1 else 1)) // pairs - 1


def clip_frame(keys: Sequence[Image.Image], inbetween: int, loop: bool, j: int) -> Image.Image:
    """Frame `j` of `crossfade(keys, inbetween, loop)`, computed alone."""
    pair, step = divmod(j, inbetween + 1)
    if step == 0 or pair + 1 >= len(keys) and not loop:
        return keys[min(pair, len(keys) - 1)]
    return Image.blend(keys[pair], keys[(pair + 1) % len(keys)], step / (inbetween + 1))


def crossfade(frames: Sequence[Image.Image], inbetween: int, loop: bool = True) -> list[Image.Image]:
    """Key frames with `inbetween` linear blends between each consecutive pair (and back to the
    first when `loop`, so a looping GIF has no jump)."""
    keys = [f.convert("RGB") for f in frames]
    return [clip_frame(keys, inbetween, loop, j)
            for j in range(clip_length(len(keys), inbetween, loop))]


PROBE_FRAMES = 4  # frames a ladder rung is sized by before it is encoded whole
PALETTE_SIDE = 128  # frames are read at most this large to choose the palette


def _palette(keys: Sequence[Image.Image], colors: int, inbetween: int, loop: bool) -> Image.Image:
    """One palette for the whole clip, from a strip of all its frames: one palette means no
    per-frame flicker, and quantizing against a fixed palette is far faster than one median cut
    per frame. The in-betweens must be in the strip, or their blended colours snap back to the
    keys' and the fade is lost. Frames are read at most PALETTE_SIDE pixels wide: a palette is a
    set of colours, and those survive downscaling."""
    w, h = keys[0].size
    scale = min(1.0, PALETTE_SIDE / max(w, h))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = [f.resize(size, Image.Resampling.BILINEAR) for f in keys] if scale < 1 else keys
    clip = crossfade(small, inbetween, loop)
    strip = Image.new("RGB", (size[0], size[1] * len(clip)))
    for i, f in enumerate(clip):
        strip.paste(f, (0, i * size[1]))
    return strip.quantize(colors=colors, method=Image.Quantize.MEDIANCUT)


def _gif(frames: Sequence[Image.Image], frame_ms: int, palette: Image.Image) -> bytes:
    indexed = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    buf = io.BytesIO()
    indexed[0].save(buf, format="GIF", save_all=True, append_images=indexed[1:],
                    duration=frame_ms, loop=0, optimize=False, disposal=1)
    return buf.getvalue()


def gif_ladder(inbetween: int) -> list[tuple[int, float, int]]:
    """(colours, scale, in-betweens) from the most faithful down, ordered by what each step
    costs the viewer: colours first, then size, then smoothness."""
    ladder = [(c, s, t) for t in range(inbetween, -1, -1) for s in (1.0, 0.75, 0.5, 0.375, 0.25)
              for c in (256, 128, 64, 32)]
    ladder.sort(key=lambda cst: ((1 - cst[1]) * 4 + (inbetween - cst[2]) * 2
                                 + {256: 0, 128: 0.5, 64: 1.5, 32: 3}[cst[0]]))
    return ladder


def encode_gif(
    frames: Sequence[Image.Image],
    inbetween: int,
    frame_ms: int = 120,
    max_bytes: int = MMS_BYTES,
    loop: bool = True,
) -> Animation:
    """Crossfaded GIF no larger than `max_bytes`: the first rung of `gif_ladder` that fits.

    Every frame of a crossfade changes every pixel, so a GIF's size is close to proportional to
    its frame count: each rung is first sized from PROBE_FRAMES of its frames, and only a rung
    whose estimate is within ESTIMATE_SLACK of the budget is encoded whole (and checked). At
    512² a rung encoded whole costs about a tenth of a second; the ladder has up to 80 of them.
    """
    if not frames:
        raise ValueError("no frames to animate")
    keys_full = [f.convert("RGB") for f in frames]
    w, h = keys_full[0].size
    palettes: dict[int, Image.Image] = {}
    resized: dict[float, list[Image.Image]] = {1.0: keys_full}
    smallest = float("inf")
    for colors, scale, t in gif_ladder(inbetween):
        if colors not in palettes:
            palettes[colors] = _palette(keys_full, colors, inbetween, loop)
        size = (max(8, round(w * scale)), max(8, round(h * scale)))
        if scale not in resized:
            resized[scale] = [f.resize(size, Image.Resampling.LANCZOS) for f in keys_full]
        keys = resized[scale]
        n = clip_length(len(keys), t, loop)
        if n > PROBE_FRAMES:
            # frames spread over the clip and over the phases of a fade
            probe = [clip_frame(keys, t, loop, (i * n // PROBE_FRAMES + i) % n)
                     for i in range(PROBE_FRAMES)]
            estimate = len(_gif(probe, frame_ms, palettes[colors])) * n / PROBE_FRAMES
            if estimate > max_bytes * ESTIMATE_SLACK:
                smallest = min(smallest, estimate)
                continue
        clip = crossfade(keys, t, loop)
        data = _gif(clip, frame_ms, palettes[colors])
        if len(data) <= max_bytes:
            return Animation(data, "image/gif", size[0], size[1], len(clip),
                             frame_ms * len(clip), colors)
        smallest = min(smallest, len(data))
    raise ValueError(f"cannot fit the animation in {max_bytes} bytes "
                     f"(the smallest was about {round(smallest)})")


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


EXTENSIONS = {"image/gif": "gif", "image/webp": "webp"}


def encode_renditions(frames: Sequence[Image.Image], config: MethodConfig) -> list[Animation]:
    """The GIF, and the WebP beside it on a second thread (Pillow encodes without the GIL)."""
    def gif() -> Animation:
        return encode_gif(frames, config.inbetween, config.frame_ms, config.gif_max_bytes,
                          config.loop)

    if not config.webp:
        return [gif()]
    with ThreadPoolExecutor(1, thread_name_prefix="alertanim-webp") as pool:
        webp = pool.submit(encode_webp, frames, config.inbetween, config.frame_ms,
                           loop=config.loop)
        return [gif(), webp.result()]


@dataclass(frozen=True)
class Motion:
    """How much the animation moves, mean absolute pixel change on the 0-255 scale."""

    per_inbetween: float  # from one shown frame to the next (a crossfade step)
    key_step: float  # from one key frame to the next
    static: float  # from one key frame to the next, outside the mask (0 when composited)


def motion(frames: Sequence[Image.Image], mask: Image.Image, inbetween: int, loop: bool
           ) -> Motion:
    """A linear crossfade of `inbetween` frames splits each key step into inbetween+1 equal
    steps, so the change per shown frame is the key step's over inbetween+1 (up to rounding)."""
    everywhere = np.zeros((frames[0].height, frames[0].width), dtype=bool)
    key_step = static_change(frames, everywhere, loop)
    inside = np.asarray(mask.convert("L").resize(frames[0].size, Image.NEAREST)) >= 128
    return Motion(per_inbetween=key_step / (inbetween + 1), key_step=key_step,
                  static=static_change(frames, inside, loop))


@row_by_row
def _run(ctx: Context, row: Row) -> dict:
    c, frames = ctx.config, row["frames"]
    animations = encode_renditions(frames, c)
    # the GIF's ladder may have dropped in-betweens to fit its budget: count what it shows
    shown = inbetween_shown(animations[0].frame_count, len(frames), c.loop)
    return {"animations": animations, "motion": motion(frames, row["mask"], shown, c.loop)}


STAGE = Stage("animate", _run, inputs=("frames", "mask"),
              outputs=(Port("animations", Kind.ANIMATIONS), Port("motion", Kind.VALUE, Motion)),
              doc="linear crossfade between the key frames; GIF within its budget, WebP; how "
                  "much it moves")
