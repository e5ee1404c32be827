"""The animate stage (the seed's step 4b), last in the graph: linear interpolation between the
selected frames, encoded as a GIF, an H.264 MP4 and an animated WebP, with a JPEG poster of the
best image.

The GIF and the MP4 have to ride along an MMS (300 KB is what every carrier takes), so each walks
down a ladder of cheaper settings until its bytes fit the budget: the GIF fewer colours, smaller
frames, fewer in-betweens; the MP4 a higher CRF, then smaller frames.

Before anything is encoded, the loop is measured for flashes against WCAG 2.3.1
(`pipeline.flash`); a loop that would flash is made safe first (`flash_safe`): slower, then with
fewer key frames, at worst a still. An unsafe loop is never delivered.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from av.video.reformatter import Colorspace
from PIL import Image

from . import flash
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
    duration_ms: int  # one full loop (0 for a still)
    colors: int | None = None  # GIF palette size actually used, its transparent index included


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
MIN_SIDE = 256  # the GIF's shorter side is kept at least this, while a rung that big still fits


def _palette(keys: Sequence[Image.Image], colors: int, inbetween: int, loop: bool) -> Image.Image:
    """One palette for the whole clip, from a strip of all its frames: one palette means no
    per-frame flicker, and quantizing against a fixed palette is far faster than one median cut
    per frame. The in-betweens must be in the strip, or their blended colours snap back to the
    keys' and the fade is lost. Frames are read at most PALETTE_SIDE pixels wide: a palette is a
    set of colours, and those survive downscaling. It holds `colors - 1` colours: the last
    entry of the GIF's table is the transparent index of the delta frames (see `_deltas`)."""
    w, h = keys[0].size
    scale = min(1.0, PALETTE_SIDE / max(w, h))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = [f.resize(size, Image.Resampling.BILINEAR) for f in keys] if scale < 1 else keys
    clip = crossfade(small, inbetween, loop)
    strip = Image.new("RGB", (size[0], size[1] * len(clip)))
    for i, f in enumerate(clip):
        strip.paste(f, (0, i * size[1]))
    return strip.quantize(colors=colors - 1, method=Image.Quantize.MEDIANCUT)


def _indexed(frames: Sequence[Image.Image], palette: Image.Image) -> list[np.ndarray]:
    """Each frame as palette indices, nearest colour, no dithering: a pixel that is the same in
    two frames gets the same index in both (dithering would scatter the static parts)."""
    return [np.asarray(f.quantize(palette=palette, dither=Image.Dither.NONE)) for f in frames]


def _transparent(palette: Image.Image) -> int:
    return len(palette.getpalette()) // 3  # the entry after the palette's colours


def _deltas(indexed: Sequence[np.ndarray], transparent: int) -> list[np.ndarray]:
    """What each frame draws over the one shown before it: only the pixels that change, the rest
    transparent. Between key frames only the mask changes, so the static parts cost one long
    run of a single index (next to nothing once LZW has seen it) instead of a repaint."""
    return [indexed[0]] + [np.where(cur == prev, np.uint8(transparent), cur)
                           for prev, cur in zip(indexed, indexed[1:])]


def _gif(drawn: Sequence[np.ndarray], durations: Sequence[int], palette: Image.Image) -> bytes:
    """The frames `_deltas` made, over one global colour table. Disposal 1 leaves each frame in
    place for the next to draw over. Pillow crops each frame to the box where it differs from
    the frame drawn before it; outside that box both are transparent (two deltas in a row never
    draw the same index at a pixel), so what is shown is unchanged."""
    transparent = _transparent(palette)
    table = palette.getpalette() + [0, 0, 0]
    frames = []
    for a in drawn:
        im = Image.frombytes("P", (a.shape[1], a.shape[0]), a.tobytes())
        im.putpalette(table)
        frames.append(im)
    buf = io.BytesIO()
    # `palette` makes the table global: without it Pillow repeats it in every cropped frame.
    # Pillow maps each frame's palette onto it by colour; it is the same table, so no index moves.
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:],
                   duration=list(durations), loop=0, optimize=False, disposal=1,
                   transparency=transparent, palette=bytes(table))
    return buf.getvalue()


def gif_ladder(inbetween: int, side: int = 0) -> list[tuple[int, float, int]]:
    """(colours, scale, in-betweens) from the most faithful down, ordered by what each step
    costs the viewer: colours first, then size, then smoothness. A rung that would take frames
    `side` pixels (the shorter side) below MIN_SIDE comes after every rung that keeps them that
    big: on a phone a smaller GIF is shown upscaled and blurred, a worse loss than colours or
    in-betweens."""
    ladder = [(c, s, t) for t in range(inbetween, -1, -1) for s in (1.0, 0.75, 0.5, 0.375, 0.25)
              for c in (256, 128, 64, 32)]
    ladder.sort(key=lambda cst: (round(side * cst[1]) < MIN_SIDE <= side,
                                 (1 - cst[1]) * 4 + (inbetween - cst[2]) * 2
                                 + {256: 0, 128: 0.5, 64: 1.5, 32: 3}[cst[0]]))
    return ladder


def frame_durations(frame_count: int, inbetween: int, shown: int, frame_ms: int) -> list[int]:
    """Milliseconds per frame of a clip with `shown` in-betweens per key pair where `inbetween`
    were asked for: the key frames are held for the in-betweens left out, so a rung with fewer
    of them plays at the same pace, and the loop as long, as the full clip."""
    hold = frame_ms * (1 + inbetween - shown)
    return [hold if j % (shown + 1) == 0 else frame_ms for j in range(frame_count)]


def encode_gif(
    frames: Sequence[Image.Image],
    inbetween: int,
    frame_ms: int = 120,
    max_bytes: int = MMS_BYTES,
    loop: bool = True,
) -> Animation:
    """Crossfaded GIF no larger than `max_bytes`: the first rung of `gif_ladder` that fits.

    Each frame after the first draws only what changed (`_deltas`). What the deltas cost depends
    on the rung, so each rung is first sized from PROBE_FRAMES of its deltas (and its first
    frame), and only a rung whose estimate is within ESTIMATE_SLACK of the budget is encoded
    whole (and checked). At 512² a rung encoded whole costs about a tenth of a second; the
    ladder has up to 80 of them.
    """
    if not frames:
        raise ValueError("no frames to animate")
    keys_full = [f.convert("RGB") for f in frames]
    w, h = keys_full[0].size
    palettes: dict[int, Image.Image] = {}
    resized: dict[float, list[Image.Image]] = {1.0: keys_full}
    firsts: dict[tuple[int, float], tuple[list[np.ndarray], int]] = {}
    smallest = float("inf")
    for colors, scale, t in gif_ladder(inbetween, min(w, h)):
        if colors not in palettes:
            palettes[colors] = _palette(keys_full, colors, inbetween, loop)
        palette = palettes[colors]
        size = (max(8, round(w * scale)), max(8, round(h * scale)))
        if scale not in resized:
            resized[scale] = [f.resize(size, Image.Resampling.LANCZOS) for f in keys_full]
        keys = resized[scale]
        n = clip_length(len(keys), t, loop)
        durations = frame_durations(n, inbetween, t, frame_ms)
        if n > PROBE_FRAMES + 1:
            # deltas spread over the clip and over the phases of a fade, each against the frame
            # before it in the clip; the first frame is whole, and sized apart
            if (colors, scale) not in firsts:
                first = _indexed(keys[:1], palette)
                firsts[colors, scale] = first, len(_gif(first, durations[:1], palette))
            first, first_bytes = firsts[colors, scale]
            steps = [1 + (i * n // PROBE_FRAMES + i) % (n - 1) for i in range(PROBE_FRAMES)]
            drawn = first + [_deltas(_indexed([clip_frame(keys, t, loop, j - 1),
                                               clip_frame(keys, t, loop, j)], palette),
                                     _transparent(palette))[1] for j in steps]
            per_delta = (len(_gif(drawn, durations[:len(drawn)], palette))
                         - first_bytes) / PROBE_FRAMES
            estimate = first_bytes + per_delta * (n - 1)
            if estimate > max_bytes * ESTIMATE_SLACK:
                smallest = min(smallest, estimate)
                continue
        clip = crossfade(keys, t, loop)
        data = _gif(_deltas(_indexed(clip, palette), _transparent(palette)), durations, palette)
        if len(data) <= max_bytes:
            return Animation(data, "image/gif", size[0], size[1], len(clip), sum(durations),
                             colors)
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


MP4_CRFS = (20, 23, 26, 29, 32)  # x264's constant quality from fine down (its default is 23)
MP4_SCALES = (1.0, 0.75, 0.5)
MP4_PRESET = "medium"  # "slow" saves about 1% of the bytes for 1.6× the seconds
# The picture is converted to YUV with the BT.709 matrix and says so, or each player guesses.
BT709 = "colorprim=bt709:transfer=bt709:colormatrix=bt709"


def mp4_ladder() -> list[tuple[int, float]]:
    """(CRF, scale) from the most faithful down: quality first, then size."""
    return [(crf, scale) for scale in MP4_SCALES for crf in MP4_CRFS]


def _mp4(clip: Sequence[Image.Image], frame_ms: int, crf: int) -> bytes:
    with tempfile.TemporaryDirectory(prefix="alertanim-") as tmp:
        path = os.path.join(tmp, "animation.mp4")
        # +faststart puts the index before the media, so a browser or phone starts playing
        # while it downloads; the muxer does it by reading its file back, hence a file
        with av.open(path, "w", format="mp4", options={"movflags": "+faststart"}) as out:
            stream = out.add_stream("libx264", rate=Fraction(1000, frame_ms))
            stream.width, stream.height = clip[0].size
            stream.pix_fmt = "yuv420p"
            # x264's output depends on its thread count: one thread makes it the same on every
            # machine (and the renditions already encode side by side)
            stream.codec_context.thread_count = 1
            stream.codec_context.options = {"crf": str(crf), "preset": MP4_PRESET,
                                            "x264-params": BT709}
            for i, image in enumerate(clip):
                frame = av.VideoFrame.from_image(image).reformat(
                    format="yuv420p", dst_colorspace=Colorspace.ITU709)
                frame.pts = i
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        with open(path, "rb") as fh:
            return fh.read()


def encode_mp4(
    frames: Sequence[Image.Image],
    inbetween: int,
    frame_ms: int = 120,
    max_bytes: int = MMS_BYTES,
    loop: bool = True,
) -> Animation:
    """The crossfade as H.264 (yuv420p, even sides: what every browser and phone plays), one
    pass of the loop at `frame_ms` a frame, no larger than `max_bytes`: the first rung of
    `mp4_ladder` that fits. At 512² x264 needs about a quarter of a second a rung."""
    keys_full = [f.convert("RGB") for f in frames]
    w, h = keys_full[0].size
    clips: dict[tuple[int, int], list[Image.Image]] = {}
    smallest = float("inf")
    for crf, scale in mp4_ladder():
        size = (max(2, int(w * scale) // 2 * 2), max(2, int(h * scale) // 2 * 2))
        if size not in clips:
            keys = [f.resize(size, Image.Resampling.LANCZOS) if f.size != size else f
                    for f in keys_full]
            clips[size] = crossfade(keys, inbetween, loop)
        clip = clips[size]
        data = _mp4(clip, frame_ms, crf)
        if len(data) <= max_bytes:
            return Animation(data, "video/mp4", size[0], size[1], len(clip), frame_ms * len(clip))
        smallest = min(smallest, len(data))
    raise ValueError(f"cannot fit the MP4 in {max_bytes} bytes (the smallest was {smallest})")


POSTER_QUALITY = 85  # mean error about 2 levels in 255 on photographs, about 50 KB at 512²


def encode_poster(best: Image.Image) -> Animation:
    """The best image as a JPEG: the still a player shows before the video starts."""
    buf = io.BytesIO()
    best.convert("RGB").save(buf, format="JPEG", quality=POSTER_QUALITY, optimize=True,
                             progressive=True)
    return Animation(buf.getvalue(), "image/jpeg", best.width, best.height, 1, 0)


EXTENSIONS = {"image/gif": "gif", "image/webp": "webp", "video/mp4": "mp4", "image/jpeg": "jpg"}


def encode_renditions(frames: Sequence[Image.Image], config: MethodConfig) -> list[Animation]:
    """The GIF first (the stage counts the in-betweens it shows), then the WebP, the MP4 and the
    poster the config asks for, each on a thread beside the GIF's: Pillow's encoders and x264
    run without the GIL."""
    c = config
    others: list[Callable[[], Animation]] = []
    if c.webp:
        others.append(lambda: encode_webp(frames, c.inbetween, c.frame_ms, loop=c.loop))
    if c.mp4:
        others.append(lambda: encode_mp4(frames, c.inbetween, c.frame_ms, c.mp4_max_bytes,
                                         c.loop))
    if c.poster:
        others.append(lambda: encode_poster(frames[0]))

    def gif() -> Animation:
        return encode_gif(frames, c.inbetween, c.frame_ms, c.gif_max_bytes, c.loop)

    if not others:
        return [gif()]
    with ThreadPoolExecutor(len(others), thread_name_prefix="alertanim-encode") as pool:
        futures = [pool.submit(job) for job in others]
        return [gif(), *(f.result() for f in futures)]


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


@dataclass(frozen=True)
class FlashSafety:
    """The delivered loop's flash figures (`pipeline.flash`, WCAG 2.3.1), and what was done to
    the loop the settings built when it would have flashed."""

    flashes_per_second: float  # as delivered: the worse of general and red flashes
    red_flashes_per_second: float
    flash_safe: bool  # always true: an unsafe loop is never delivered
    remedy: str  # "none", "slower", "fewer key frames" or "still" (see `flash_safe`)
    built_flashes_per_second: float  # the loop as the settings built it


# A flash is two opposing transitions, and a transition is at least one key step long (a
# crossfade's peaks and valleys are its key frames): with key frames 1000/6 ms apart or more no
# second holds seven transitions, i.e. more than three flashes. The first pace tried, 200 ms,
# leaves a transition's margin (at most 2.5 flashes a second); the slowest is last.
SAFE_KEY_MS = (200, 250, 500, 1000)
MAX_INBETWEEN = 16  # MethodConfig's bound on in-betweens
GIF_TICK_MS = 10  # a GIF stores its delays in hundredths of a second, Pillow rounding down


def shown_ms(frame_ms: int) -> int:
    """How long a frame of `frame_ms` is shown in the GIF: the fastest of the renditions (the
    WebP and the MP4 keep the milliseconds; lower rungs of the GIF's ladder hold key frames
    longer)."""
    return max(GIF_TICK_MS, frame_ms - frame_ms % GIF_TICK_MS)


def _measure(small: Sequence[Image.Image], inbetween: int, frame_ms: int, loop: bool
             ) -> flash.Flash:
    """The flashes of the crossfade of `small` (working-size key frames: box averaging commutes
    with the blend), each frame shown as long as the GIF shows it. A lower rung of the GIF's
    ladder shows the same key frames at the same moments, or later, with fewer blends between
    them (`frame_durations`): the same peaks and valleys, no faster. So this is every
    rendition's figure, or a bound on it."""
    clip = crossfade(small, inbetween, loop)
    return flash.measure(clip, [shown_ms(frame_ms)] * len(clip))


def slower(config: MethodConfig, key_ms: int) -> MethodConfig:
    """`config` with key frames at least `key_ms` apart as the GIF shows them: more in-betweens
    at the same frame rate first (the change spread over more, smaller steps), longer frames
    (whole GIF ticks) once MAX_INBETWEEN is not enough."""
    c = config
    inbetween = max(c.inbetween, min(MAX_INBETWEEN, math.ceil(key_ms / shown_ms(c.frame_ms)) - 1))
    frame_ms = c.frame_ms
    if (inbetween + 1) * shown_ms(frame_ms) < key_ms:
        frame_ms = GIF_TICK_MS * math.ceil(key_ms / (inbetween + 1) / GIF_TICK_MS)
    return c.model_copy(update={"inbetween": inbetween, "frame_ms": frame_ms})


def flash_safe(frames: Sequence[Image.Image], config: MethodConfig
               ) -> tuple[list[Image.Image], MethodConfig, FlashSafety]:
    """The key frames and settings to encode so that the loop is flash-safe (WCAG 2.3.1), with
    its figures. An unsafe loop is never delivered; it is made safe in the order that costs the
    viewer least:

    1. slower: the key frames further apart (SAFE_KEY_MS, re-measured at each), every one kept.
       The path's frames are what the alert shows; a calmer pace only spreads each change over
       more time, which is what the criterion asks for;
    2. fewer key frames, as a last resort: at the first of those paces, the key frame whose
       removal lowers the flash rate most leaves the path (never the first, the best image),
       re-measured, until the loop is safe;
    3. a still: the best image alone, which cannot flash.
    """
    keys = list(frames)
    small = [flash.working_frame(f) for f in keys]
    c = config
    built = _measure(small, c.inbetween, c.frame_ms, c.loop)

    def outcome(keys, c, figures, remedy):
        return keys, c, FlashSafety(figures.flashes_per_second, figures.red_flashes_per_second,
                                    figures.flash_safe, remedy, built.flashes_per_second)

    if built.flash_safe:
        return outcome(keys, c, built, "none")
    key_ms = (c.inbetween + 1) * shown_ms(c.frame_ms)
    paces = [slower(c, ms) for ms in SAFE_KEY_MS if ms > key_ms]
    for paced in paces:
        figures = _measure(small, paced.inbetween, paced.frame_ms, paced.loop)
        if figures.flash_safe:
            return outcome(keys, paced, figures, "slower")
    paced = paces[0] if paces else c
    kept = list(range(len(keys)))
    while len(kept) > 2:
        trials = [(i, _measure([small[j] for j in kept if j != i], paced.inbetween,
                               paced.frame_ms, paced.loop)) for i in kept[1:]]
        drop, figures = min(trials, key=lambda t: t[1].flashes_per_second)
        kept.remove(drop)
        if figures.flash_safe:
            return outcome([keys[j] for j in kept], paced, figures, "fewer key frames")
    return outcome(keys[:1], c, flash.STILL, "still")


@row_by_row
def _run(ctx: Context, row: Row) -> dict:
    # Measured before anything is encoded: every rendition shows the loop whose flashes are
    # measured here, so an unsafe loop is made safe once, for all of them (see `flash_safe`).
    frames, c, safety = flash_safe(row["frames"], ctx.config)
    animations = encode_renditions(frames, c)
    # the GIF's ladder may have dropped in-betweens to fit its budget: count what it shows
    shown = inbetween_shown(animations[0].frame_count, len(frames), c.loop)
    return {"animations": animations, "motion": motion(frames, row["mask"], shown, c.loop),
            "flash": safety}


STAGE = Stage("animate", _run, inputs=("frames", "mask"),
              outputs=(Port("animations", Kind.ANIMATIONS), Port("motion", Kind.VALUE, Motion),
                       Port("flash", Kind.VALUE, FlashSafety)),
              doc="linear crossfade between the key frames, made flash-safe (WCAG 2.3.1); GIF "
                  "and MP4 within their budgets, WebP, JPEG poster; how much it moves and "
                  "flashes")
