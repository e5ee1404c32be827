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

import heapq
import io
import itertools
import math
import os
import struct
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from av.video.reformatter import Colorspace
from PIL import Image, ImageChops

from . import flash, webp
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
GIF_COLOURS = (256, 128, 64, 32)  # the ladder's palette sizes, the transparent index included


def _strip(keys: Sequence[Image.Image], inbetween: int, loop: bool) -> np.ndarray:
    """Every pixel of the clip, its frames read at most PALETTE_SIDE pixels wide (box averages),
    as rows of RGB. The in-betweens must be in it, or their blended colours snap back to the
    keys' and the fade is lost; a palette is a set of colours, and those survive downscaling."""
    factor = -(-max(keys[0].size) // PALETTE_SIDE)  # box averages of factor² pixels
    small = [f.reduce(factor) for f in keys] if factor > 1 else keys
    return np.concatenate([np.asarray(f.convert("RGB")).reshape(-1, 3)
                           for f in crossfade(small, inbetween, loop)])


def _median_cut(pixels: np.ndarray, sizes: Sequence[int]) -> dict[int, np.ndarray]:
    """A palette of at most k colours for `pixels` (rows of RGB), for each k of `sizes`, from one
    median cut. The colours are counted in cells of 8 levels a channel, each cell keeping the
    mean of its colours; the box of cells with the largest squared error is split at the
    weighted median of the channel where that error is largest, and the palette of k colours is
    the boxes' mean colours once there are k boxes: the smaller palettes are the larger one's
    coarser boxes, all from one count."""
    q = (pixels >> 3).astype(np.uint16)
    code = q[:, 0] << 10 | q[:, 1] << 5 | q[:, 2]
    weight = np.bincount(code, minlength=1 << 15)
    cells = np.flatnonzero(weight)
    weight = weight[cells].astype(np.float64)
    sums = np.stack([np.bincount(code, weights=pixels[:, ch], minlength=1 << 15)[cells]
                     for ch in range(3)], axis=1)  # per cell: its pixels' sum of each channel
    mean = sums / weight[:, None]
    # per cell: its weight, its sums, and weight × mean² (a box's squared error is the sum of
    # those less its weight × its mean²), so that a box's figures are one sum of rows
    stats = np.column_stack([weight, sums, sums * mean])
    boxes: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # id -> (its cells, its mean colour)
    heap: list[tuple[float, int, int]] = []  # (-squared error, id, channel to split)
    palettes: dict[int, np.ndarray] = {}
    ids = itertools.count()

    def add(idx: np.ndarray, row: np.ndarray) -> None:
        """A box of the cells `idx`, `row` the sum of their `stats`."""
        key = next(ids)
        boxes[key] = idx, row[1:4] / row[0]
        if len(idx) > 1:
            error = row[4:7] - row[1:4] * row[1:4] / row[0]  # per channel
            heapq.heappush(heap, (-float(error.sum()), key, int(error.argmax())))

    add(np.arange(len(cells)), stats.sum(axis=0))
    wanted = sorted(set(sizes))
    while wanted:
        if len(boxes) >= wanted[0] or not heap:
            palettes[wanted.pop(0)] = np.array([boxes[k][1] for k in sorted(boxes)])
            continue
        _, key, ch = heapq.heappop(heap)
        idx = boxes.pop(key)[0]
        idx = idx[np.argsort(mean[idx, ch], kind="stable")]
        cum = np.cumsum(stats[idx], axis=0)
        cut = min(int(np.searchsorted(cum[:, 0], cum[-1, 0] / 2)), len(idx) - 2)  # left's last
        add(idx[:cut + 1], cum[cut])
        add(idx[cut + 1:], cum[-1] - cum[cut])
    return {k: np.clip(np.rint(v), 0, 255).astype(np.uint8) for k, v in palettes.items()}


def _palettes(keys: Sequence[Image.Image], colors: Sequence[int], inbetween: int, loop: bool
              ) -> dict[int, Image.Image]:
    """One palette for the whole clip, for each palette size of `colors`, from one strip of all
    its frames (`_strip`, `_median_cut`): one palette means no per-frame flicker, and quantizing
    against a fixed palette is far faster than one median cut per frame. Each holds `colors - 1`
    colours: the last entry of the GIF's table is the transparent index of the delta frames
    (see `_deltas`)."""
    cut = _median_cut(_strip(keys, inbetween, loop), [c - 1 for c in colors])
    palettes = {}
    for c in colors:
        palette = Image.new("P", (1, 1))
        palette.putpalette(cut[c - 1].reshape(-1).tolist())
        palettes[c] = palette
    return palettes


def _palette(keys: Sequence[Image.Image], colors: int, inbetween: int, loop: bool) -> Image.Image:
    """The palette of `colors` entries (the transparent one included) that `encode_gif` uses."""
    return _palettes(keys, GIF_COLOURS if colors in GIF_COLOURS else (colors,), inbetween,
                     loop)[colors]


def _indexed(frames: Sequence[Image.Image], palette: Image.Image) -> list[np.ndarray]:
    """Each frame as palette indices, nearest colour, no dithering: a pixel that is the same in
    two frames gets the same index in both (dithering would scatter the static parts)."""
    return [np.asarray(f.quantize(palette=palette, dither=Image.Dither.NONE)) for f in frames]


def _transparent(palette: Image.Image) -> int:
    return len(palette.getpalette()) // 3  # the entry after the palette's colours


def _deltas(indexed: Sequence[np.ndarray], transparent: int) -> list[np.ndarray]:
    """What each frame draws over the one shown before it: only the pixels that change, the rest
    transparent. Between key frames only the mask changes, so the static parts cost next to
    nothing: runs of one index, and each delta is stored cropped to the box of the pixels it
    draws (`_gif_frame`)."""
    return [indexed[0]] + [_delta(prev, cur, transparent)
                           for prev, cur in zip(indexed, indexed[1:])]


def _delta(prev: np.ndarray, cur: np.ndarray, transparent: int) -> np.ndarray:
    return np.where(cur == prev, np.uint8(transparent), cur)


def _code_size(palette: Image.Image) -> int:
    """The LZW minimum code size of a table of the palette and its transparent entry."""
    return max(2, _transparent(palette).bit_length())


def _gif_frame(a: np.ndarray, duration: int, transparent: int, code_size: int,
               whole: bool) -> bytes:
    """One frame of the GIF: its graphic control extension (drawn in place, disposal 1, for the
    next to draw over; `transparent` is the transparent index), its image descriptor and its
    LZW data (Pillow's encoder). A delta (`whole` false) is cropped to the box of the pixels it
    draws, a 1×1 transparent pixel when it draws none."""
    x0 = y0 = 0
    if not whole:
        drawn = a != transparent
        rows, cols = np.flatnonzero(drawn.any(axis=1)), np.flatnonzero(drawn.any(axis=0))
        if len(rows):
            y0, x0 = int(rows[0]), int(cols[0])
            a = a[y0:rows[-1] + 1, x0:cols[-1] + 1]
        else:
            a = a[:1, :1]
    h, w = a.shape
    image = Image.frombytes("P", (w, h), np.ascontiguousarray(a).tobytes())
    return b"".join([
        struct.pack("<4BHBB", 0x21, 0xF9, 4, 1 << 2 | 1, int(duration / 10), transparent, 0),
        struct.pack("<BHHHHBB", 0x2C, x0, y0, w, h, 0, code_size),
        image.tobytes("gif", "P", code_size), b"\0"])


def _gif_header(width: int, height: int, palette: Image.Image) -> bytes:
    """GIF89a, one global colour table (the palette, then black for the transparent entry, up
    to a power of two), looping for ever."""
    table = palette.getpalette() + [0, 0, 0]
    bits = _code_size(palette)
    table += [0] * (3 * (1 << bits) - len(table))
    return b"".join([b"GIF89a", struct.pack("<HHBBB", width, height, 0x80 | bits - 1, 0, 0),
                     bytes(table), b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"])


def _gif(drawn: Sequence[np.ndarray], durations: Sequence[int], palette: Image.Image) -> bytes:
    """The frames `_deltas` made, over one global colour table: the first whole, each one after
    drawing only its pixels over the frames before it (disposal 1)."""
    transparent, code_size = _transparent(palette), _code_size(palette)
    h, w = drawn[0].shape
    return b"".join([_gif_header(w, h, palette),
                     *(_gif_frame(a, d, transparent, code_size, j == 0)
                       for j, (a, d) in enumerate(zip(drawn, durations))), b";"])


def gif_ladder(inbetween: int, side: int = 0) -> list[tuple[int, float, int]]:
    """(colours, scale, in-betweens) from the most faithful down, ordered by what each step
    costs the viewer: colours first, then size, then smoothness. A rung that would take frames
    `side` pixels (the shorter side) below MIN_SIDE comes after every rung that keeps them that
    big: on a phone a smaller GIF is shown upscaled and blurred, a worse loss than colours or
    in-betweens."""
    ladder = [(c, s, t) for t in range(inbetween, -1, -1) for s in (1.0, 0.75, 0.5, 0.375, 0.25)
              for c in GIF_COLOURS]
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


class _Rungs:
    """What the ladder's rungs are made of, each made once and only when a rung needs it: the
    key frames at each scale, the clip's frames at each scale and in-betweens, and those frames
    as indices of each palette."""

    def __init__(self, keys: Sequence[Image.Image], palettes: dict[int, Image.Image],
                 loop: bool):
        self.keys_full, self.palettes, self.loop = list(keys), palettes, loop
        self.w, self.h = keys[0].size
        self._keys: dict[tuple[float, int], Image.Image] = {}
        self._frames: dict[tuple[float, int, int], Image.Image] = {}
        self._indexed: dict[tuple[int, float, int, int], np.ndarray] = {}
        self._first: dict[tuple[int, float], int] = {}  # header, first frame and trailer bytes

    def size(self, scale: float) -> tuple[int, int]:
        return max(8, round(self.w * scale)), max(8, round(self.h * scale))

    def key(self, scale: float, i: int) -> Image.Image:
        if (scale, i) not in self._keys:
            f = self.keys_full[i]
            self._keys[scale, i] = f if scale == 1.0 else f.resize(self.size(scale),
                                                                  Image.Resampling.LANCZOS)
        return self._keys[scale, i]

    def frame(self, scale: float, t: int, j: int) -> Image.Image:
        """Frame `j` of the clip with `t` in-betweens (`clip_frame`), at `scale`."""
        pair, step = divmod(j, t + 1)
        n = len(self.keys_full)
        if step == 0 or pair + 1 >= n and not self.loop:
            return self.key(scale, min(pair, n - 1))
        if (scale, t, j) not in self._frames:
            self._frames[scale, t, j] = Image.blend(self.key(scale, pair),
                                                    self.key(scale, (pair + 1) % n),
                                                    step / (t + 1))
        return self._frames[scale, t, j]

    def indexed(self, colors: int, scale: float, t: int, j: int) -> np.ndarray:
        pair, step = divmod(j, t + 1)
        n = len(self.keys_full)
        at = (colors, scale, -1, min(pair, n - 1)) if (
            step == 0 or pair + 1 >= n and not self.loop) else (colors, scale, t, j)
        if at not in self._indexed:
            self._indexed[at] = _indexed([self.frame(scale, t, j)], self.palettes[colors])[0]
        return self._indexed[at]

    def estimate(self, colors: int, scale: float, t: int, inbetween: int, frame_ms: int
                 ) -> tuple[float, float]:
        """The bytes of the rung's GIF as (the header and its first frame, the mean delta), from
        PROBE_FRAMES of its deltas, spread over the clip and over the phases of a fade, each
        against the frame before it in the clip: each frame of the GIF is stored alone, so the
        probes' bytes are what those frames cost in the whole GIF."""
        palette = self.palettes[colors]
        transparent, code_size = _transparent(palette), _code_size(palette)
        n = clip_length(len(self.keys_full), t, self.loop)
        durations = frame_durations(n, inbetween, t, frame_ms)
        if (colors, scale) not in self._first:  # the same for every t: key frame 0 whole
            self._first[colors, scale] = len(_gif_header(*self.size(scale), palette)) + 1 + len(
                _gif_frame(self.indexed(colors, scale, t, 0), 0, transparent, code_size, True))
        first = self._first[colors, scale]
        steps = [1 + (i * n // PROBE_FRAMES + i) % (n - 1) for i in range(PROBE_FRAMES)]
        deltas = [len(_gif_frame(_delta(self.indexed(colors, scale, t, j - 1),
                                        self.indexed(colors, scale, t, j), transparent),
                                 durations[j], transparent, code_size, False)) for j in steps]
        return first, sum(deltas) / PROBE_FRAMES

    def encode(self, colors: int, scale: float, t: int, inbetween: int, frame_ms: int) -> bytes:
        palette = self.palettes[colors]
        n = clip_length(len(self.keys_full), t, self.loop)
        indexed = [self.indexed(colors, scale, t, j) for j in range(n)]
        return _gif(_deltas(indexed, _transparent(palette)),
                    frame_durations(n, inbetween, t, frame_ms), palette)


# How a rung's bytes go with its settings, about, on photographs: only to choose which rungs to
# size (`encode_gif`), never to decide one. Against the 256-colour palette's bytes:
COLOUR_BYTES = {256: 1.0, 128: 0.8, 64: 0.63, 32: 0.48}
AREA_POWER = 0.8  # bytes grow about as the frames' area to this power
PREDICTED_OVER = 1.15  # a rung predicted this far past the budget and slack is worth sizing


def encode_gif(
    frames: Sequence[Image.Image],
    inbetween: int,
    frame_ms: int = 120,
    max_bytes: int = MMS_BYTES,
    loop: bool = True,
) -> Animation:
    """Crossfaded GIF no larger than `max_bytes`: the first rung of `gif_ladder` that fits.

    Each frame after the first draws only what changed (`_deltas`). What the deltas cost depends
    on the rung, so a rung is first sized from PROBE_FRAMES of its deltas and its first frame
    (`_Rungs.estimate`), and only a rung whose estimate is within ESTIMATE_SLACK of the budget
    is encoded whole (and checked).

    Fewer colours, smaller frames or fewer in-betweens do not cost more bytes (the walk takes
    that as given), so a rung sized over the budget rules out every rung with at least its
    colours, scale and in-betweens, and those are never sized. Before a rung is sized, the
    rungs below it (no more colours, scale or in-betweens) are predicted from the rungs sized so
    far (COLOUR_BYTES, AREA_POWER), and the cheapest predicted well over the budget is sized
    instead: over, it rules out the rung and many more at once, at the price of one small
    probe. The prediction only chooses what to size; whether a rung fits is always its own
    estimate and then its whole encode. At 512² the walk sizes seven to ten of the 80 rungs,
    most at 256², and encodes one or two whole.
    """
    if not frames:
        raise ValueError("no frames to animate")
    keys_full = [f.convert("RGB") for f in frames]
    w, h = keys_full[0].size
    rungs = _Rungs(keys_full, _palettes(keys_full, GIF_COLOURS, inbetween, loop), loop)
    ladder = gif_ladder(inbetween, min(w, h))
    over: list[tuple[int, float, int]] = []  # rungs found to cost more than the budget
    sized: dict[tuple[int, float, int], tuple[float, bytes | None]] = {}
    parts: dict[tuple[int, float, int], tuple[float, float]] = {}  # (first frame, a delta)
    smallest = float("inf")

    def frames_of(t: int) -> int:
        return clip_length(len(keys_full), t, loop)

    def ruled_out(rung: tuple[int, float, int]) -> bool:
        return any(rung[0] >= c and rung[1] >= s and rung[2] >= u for c, s, u in over)

    def size(rung: tuple[int, float, int]) -> None:
        """The rung's bytes, estimated (no data yet) or, for a short clip, encoded whole."""
        nonlocal smallest
        colors, scale, t = rung
        n = frames_of(t)
        if n > PROBE_FRAMES + 1:
            first, delta = parts[rung] = rungs.estimate(colors, scale, t, inbetween, frame_ms)
            sized[rung] = first + delta * (n - 1), None
        else:
            data = rungs.encode(colors, scale, t, inbetween, frame_ms)
            sized[rung] = len(data), data
            parts[rung] = len(data) / n, len(data) / n
        estimate, data = sized[rung]
        smallest = min(smallest, estimate)
        if estimate > (max_bytes if data is not None else max_bytes * ESTIMATE_SLACK):
            over.append(rung)

    def predict(rung: tuple[int, float, int]) -> float:
        """The rung's bytes, from the sized rung most like it."""
        c, s, t = rung
        (pc, ps, pt), (first, delta) = min(
            parts.items(), key=lambda p: ((p[0][0] != c) + (p[0][1] != s) + (p[0][2] != t)))
        k = COLOUR_BYTES.get(c, 1.0) / COLOUR_BYTES.get(pc, 1.0) * (s / ps) ** (2 * AREA_POWER)
        return k * (first + delta * (frames_of(t) - 1))

    keep = [s for _, s, _ in ladder if round(min(w, h) * s) >= MIN_SIDE]
    anchor = min(keep) if keep and min(w, h) >= MIN_SIDE else min(s for _, s, _ in ladder)

    def probe_for(rung: tuple[int, float, int]) -> tuple[int, float, int]:
        """What to size next on the way to `rung`: the cheapest rung below it predicted well
        over the budget, else the rung itself (the first: the cheapest rung at the smallest
        scale that keeps MIN_SIDE, as many in-betweens)."""
        if not parts:
            return min(GIF_COLOURS), min(anchor, rung[1]), rung[2]
        below = [(predict(r), i, r) for i, r in enumerate(ladder) if r not in sized
                 and r[0] <= rung[0] and r[1] <= rung[1] and r[2] <= rung[2]]
        likely = [b for b in below if b[0] > max_bytes * ESTIMATE_SLACK * PREDICTED_OVER]
        return min(likely)[2] if likely else rung

    for rung in ladder:
        while not ruled_out(rung) and rung not in sized:
            size(probe_for(rung))
        if ruled_out(rung):
            continue
        colors, scale, t = rung
        data = sized[rung][1]
        if data is None:
            data = rungs.encode(colors, scale, t, inbetween, frame_ms)
            sized[rung] = len(data), data
            smallest = min(smallest, len(data))
        if len(data) <= max_bytes:
            width, height = rungs.size(scale)
            n = frames_of(t)
            return Animation(data, "image/gif", width, height, n,
                             sum(frame_durations(n, inbetween, t, frame_ms)), colors)
        over.append(rung)
    raise ValueError(f"cannot fit the animation in {max_bytes} bytes "
                     f"(the smallest was about {round(smallest)})")


# libwebp's fastest method: at 512² a third of method 4's time (the default before) for the same
# error, at about 15% more bytes. Quality 77 here gives the bytes and the mean error that
# libwebp's own animation encoder gave at 80, the frames' blends being exact (see `encode_webp`).
WEBP_METHOD = 0
WEBP_QUALITY = 77


def _changed(keys: Sequence[Image.Image]) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """The box (x0, y0, x1, y1; x0 and y0 even) around every pixel where a key frame differs
    from the first, and which pixels in it those are: outside them every frame is the first, bit
    for bit (the method composites its static parts)."""
    first = np.asarray(keys[0])
    changed = np.zeros(first.shape[:2], bool)
    for k in keys[1:]:
        changed |= (np.asarray(k) != first).any(axis=2)
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    if not len(rows):  # nothing moves: the frames after the first draw one transparent pixel
        return (0, 0, 1, 1), changed[:1, :1]
    x0, y0, x1, y1 = int(cols[0]) & ~1, int(rows[0]) & ~1, int(cols[-1]) + 1, int(rows[-1]) + 1
    return (x0, y0, x1, y1), changed[y0:y1, x0:x1]


def blend_levels(inbetween: int) -> list[int]:
    """The alpha (of 255) at which in-between `s` (1 to `inbetween`) draws the next key frame
    over the one shown before it so that the canvas is the crossfade's blend s/(inbetween+1):
    each draws 1/(inbetween+2-s) of what is left of the way."""
    return [round(255 / (inbetween + 2 - s)) for s in range(1, inbetween + 1)]


def encode_webp(
    frames: Sequence[Image.Image], inbetween: int, frame_ms: int = 120,
    quality: int = WEBP_QUALITY, loop: bool = True,
) -> Animation:
    """The crossfade as a lossy animated WebP at the frames' own size, the blends drawn by the
    decoder. A WebP frame may be alpha-blended over the canvas, and a crossfade's in-between s
    of a key pair is the next key drawn over the frame before it at one alpha (`blend_levels`).
    So every frame of a key pair stores the same bitstream, that key inside the changed region
    (`_changed`; transparent outside it, which libwebp flattens to next to nothing), behind the
    ALPH chunk of its alpha over the changed pixels (0 elsewhere): one lossy encode per key
    frame and one alpha plane per in-between position. libwebp's animation encoder (Pillow's
    `save_all`, used before) encoded every blended frame, twice (once over the frame before,
    once over a cleared canvas), one after another. Here the encodes are independent and run
    side by side (libwebp releases the GIL). The first frame is whole; outside the changed
    region nothing is drawn again, so the static parts stay the first frame's decode exactly."""
    keys = [f.convert("RGB") for f in frames]
    w, h = keys[0].size
    n, count = len(keys), clip_length(len(keys), inbetween, loop)
    box, inside = _changed(keys)

    def alpha(level: int) -> Image.Image:
        return Image.fromarray(np.where(inside, np.uint8(level), np.uint8(0)))

    opaque = alpha(255)  # every drawn key's own alpha: the changed pixels

    def drawn(key: Image.Image) -> bytes:
        rgba = key.crop(box).convert("RGBA")
        rgba.putalpha(opaque)
        return webp.encode_still(rgba, quality, WEBP_METHOD)

    levels = blend_levels(inbetween)
    # the keys drawn after the first frame: each in its turn, and the first again as the last
    # pair's target when the loop fades back to it
    shown = [*range(1, n), *([0] if loop and n > 1 and inbetween else [])] if count > 1 else []
    alphas = sorted({255, *levels}) if count > 1 else []
    jobs: list[Callable[[], bytes]] = [lambda: webp.encode_still(keys[0], quality, WEBP_METHOD)]
    jobs += [lambda i=i: drawn(keys[i]) for i in shown]
    jobs += [lambda level=level: webp.alpha_chunk(alpha(level)) for level in alphas]
    with ThreadPoolExecutor(min(len(jobs), os.cpu_count() or 1),
                            thread_name_prefix="alertanim-webp") as pool:
        done = list(pool.map(lambda job: job(), jobs))
    stored = dict(zip(shown, done[1:1 + len(shown)]))
    planes = dict(zip(alphas, done[1 + len(shown):]))
    out = [webp.Frame(0, 0, w, h, frame_ms, False, done[0])]
    for j in range(1, count):
        pair, step = divmod(j, inbetween + 1)
        if step == 0 or pair + 1 >= n and not loop:
            data = planes[255] + stored[min(pair, n - 1)]
        else:
            data = planes[levels[step - 1]] + stored[(pair + 1) % n]
        out.append(webp.Frame(box[0], box[1], box[2] - box[0], box[3] - box[1], frame_ms, True,
                              data))
    return Animation(webp.animation(w, h, out, alpha=count > 1), "image/webp", w, h, count,
                     frame_ms * count)


MP4_CRFS = (20, 23, 26, 29, 32)  # x264's constant quality from fine down (its default is 23)
MP4_SCALES = (1.0, 0.75, 0.5)
# x264's preset: at 512² and CRF 20, "superfast" takes about a third of "medium"'s time for
# about 10% more bytes and a tenth more error; "ultrafast" (no CABAC) about three times the
# bytes, "veryfast" as many bytes as "medium" in 40% of its time
MP4_PRESET = "superfast"
# The picture is converted to YUV with the BT.709 matrix and says so, or each player guesses.
BT709 = "colorprim=bt709:transfer=bt709:colormatrix=bt709"


def mp4_ladder() -> list[tuple[int, float]]:
    """(CRF, scale) from the most faithful down: quality first, then size."""
    return [(crf, scale) for scale in MP4_SCALES for crf in MP4_CRFS]


def _yuv_clip(keys: Sequence[Image.Image], inbetween: int, loop: bool) -> list[np.ndarray]:
    """The crossfade of `keys` (even sides) as Y'CbCr 4:2:0 (BT.709), each frame laid out as
    PyAV lays out yuv420p, (height × 3/2, width). Only the key frames are converted; the
    in-betweens are blended from them, as `clip_frame` blends RGB: Y'CbCr is an affine function
    of R'G'B', and its 4:2:0 chroma an average of it, so blending after the conversion is
    blending before it, up to rounding, for an eighth of the conversions."""
    yuv = [Image.fromarray(av.VideoFrame.from_image(k).reformat(
        format="yuv420p", dst_colorspace=Colorspace.ITU709).to_ndarray()) for k in keys]
    return [np.asarray(clip_frame(yuv, inbetween, loop, j))
            for j in range(clip_length(len(keys), inbetween, loop))]


def _mp4(clip: Sequence[np.ndarray], frame_ms: int, crf: int) -> bytes:
    """The frames of `_yuv_clip` as H.264 in an MP4."""
    with tempfile.TemporaryDirectory(prefix="alertanim-") as tmp:
        path = os.path.join(tmp, "animation.mp4")
        # +faststart puts the index before the media, so a browser or phone starts playing
        # while it downloads; the muxer does it by reading its file back, hence a file
        with av.open(path, "w", format="mp4", options={"movflags": "+faststart"}) as out:
            stream = out.add_stream("libx264", rate=Fraction(1000, frame_ms))
            stream.height, stream.width = clip[0].shape[0] * 2 // 3, clip[0].shape[1]
            stream.pix_fmt = "yuv420p"
            # x264's output depends on its thread count: one thread makes it the same on every
            # machine (and the renditions already encode side by side)
            stream.codec_context.thread_count = 1
            stream.codec_context.options = {"crf": str(crf), "preset": MP4_PRESET,
                                            "x264-params": BT709}
            for i, planes in enumerate(clip):
                frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
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
    `mp4_ladder` that fits. At 512² x264 ("superfast") needs about a sixth of a second a rung
    on one core of the CI machine."""
    keys_full = [f.convert("RGB") for f in frames]
    w, h = keys_full[0].size
    clips: dict[tuple[int, int], list[np.ndarray]] = {}
    smallest = float("inf")
    for crf, scale in mp4_ladder():
        size = (max(2, int(w * scale) // 2 * 2), max(2, int(h * scale) // 2 * 2))
        if size not in clips:
            keys = [f.resize(size, Image.Resampling.LANCZOS) if f.size != size else f
                    for f in keys_full]
            clips[size] = _yuv_clip(keys, inbetween, loop)
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


def _mean_changes(frames: Sequence[Image.Image], where: Sequence[Image.Image | None],
                  loop: bool) -> list[float]:
    """`composite.static_change` outside each mask of `where`, to the same bits: for each, the
    pixels where that L image is not 0 (None: everywhere). Each pair's absolute differences
    (ImageChops, in C) are counted in a histogram per channel, so their sum is an exact integer,
    as numpy's float sum of them is; a pair's mean is that sum over the count, and the figure
    the mean of the pairs' means, as there."""
    counts = [3 * (frames[0].width * frames[0].height if m is None
                   else int(np.count_nonzero(np.asarray(m)))) for m in where]
    if len(frames) < 2:
        return [0.0] * len(where)
    rgb = [f.convert("RGB") for f in frames]
    pairs = list(zip(rgb, rgb[1:]))
    if loop and len(frames) > 2:
        pairs.append((rgb[-1], rgb[0]))
    levels = np.tile(np.arange(256, dtype=np.int64), 3)
    means: list[list[float]] = [[] for _ in where]
    for a, b in pairs:
        difference = ImageChops.difference(a, b)
        for m, count, out in zip(where, counts, means):
            if count:
                out.append(int(levels @ np.array(difference.histogram(m), np.int64)) / count)
    return [float(np.mean(m)) if m else 0.0 for m in means]


def motion(frames: Sequence[Image.Image], mask: Image.Image, inbetween: int, loop: bool
           ) -> Motion:
    """A linear crossfade of `inbetween` frames splits each key step into inbetween+1 equal
    steps, so the change per shown frame is the key step's over inbetween+1 (up to rounding).
    The static change is outside the mask (`composite.static_change`, `_mean_changes`)."""
    outside = mask.convert("L").resize(frames[0].size, Image.NEAREST).point(
        lambda v: 255 if v < 128 else 0)
    key_step, static = _mean_changes(frames, [None, outside], loop)
    return Motion(per_inbetween=key_step / (inbetween + 1), key_step=key_step, static=static)


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
