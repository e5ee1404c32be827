"""Flash safety: an animation as it is shown (its frames, each for its duration, in its loop)
measured against WCAG 2.x Success Criterion 2.3.1, *Three Flashes or Below Threshold*.

The definitions implemented (WCAG 2.2, glossary):

- **general flash and red flash thresholds**: content passes if "there are no more than three
  general flashes and / or no more than three red flashes within any one-second period; or the
  combined area of flashes occurring concurrently occupies no more than a total of .006
  steradians within any 10 degree visual field on the screen (25% of any 10 degree visual field
  on the screen) at typical viewing distance". A *general flash* is "a pair of opposing changes
  in relative luminance of 10% or more of the maximum relative luminance where the relative
  luminance of the darker image is below 0.80"; a *red flash* is "any pair of opposing
  transitions involving a saturated red". Its notes: "A transition is the change in relative
  luminance (or relative luminance/color for red flashing) between adjacent peaks and valleys
  in a plot of relative luminance ... against time. A flash consists of two opposing
  transitions"; and the "current working definition in the field" that this module uses
  (cited there to Harding and Binnie): a pair of opposing transitions involves a saturated red
  where "for either or both states involved in each transition, R/(R+G+B) >= 0.8,
  and the change in the value of (R-G-B)x320 is > 20 (negative values of (R-G-B)x320 are set to
  zero) for both transitions", R, G, B linearised as for relative luminance. For a 10° field
  the note takes "a 341 x 256 pixel rectangle anywhere on the displayed screen area when the
  content is viewed at 1024 x 768 pixels".
- **relative luminance**: L = 0.2126 R + 0.7152 G + 0.0722 B, each channel linearised from
  sRGB as C/12.92 when C = C8bit/255 <= 0.03928, else ((C + 0.055)/1.055)^2.4. Its note on
  dithering: "the average values of the colors that are dithered should be used".

How they are measured (frame by frame, cell by cell, as flash analysers such as PEAT and
Harding FPA read a video, here on a coarse grid):

1. **Where.** Each frame is box-averaged in sRGB to at most `WORK` pixels a side (4×4-pixel
   blocks at 512², about 0.23° at the viewing assumed below: averaging colours as WCAG's
   dithering note does, over blocks a little over twice the 0.1° of the criterion's
   fine-pattern exception; a block holding a sharp edge reads a little dark), linearised, and
   averaged again in linear light over 2×2 of those: a grid of at most `GRID`×`GRID` cells
   (64×64), each with its linear R, G, B, its relative luminance L, its red value
   V = max(0, R − G − B) × 320 and whether it is a saturated red, R/(R+G+B) ≥ 0.8.
2. **Transitions.** Each cell's L and V, frame by frame for as long as each frame is shown,
   are plotted against time and cut into transitions between adjacent peaks and valleys: a
   peak (valley) is confirmed once the value has fallen (risen) from it by the threshold,
   10% of the maximum luminance for L, more than 20 for V, so a ripple smaller than that
   makes no peak. A luminance transition counts when its darker end is below 0.80; a red one
   when either end is a saturated red. A transition is dated when its far end is first shown.
3. **When.** Flashes in a one-second window are the transitions in it over two (a flash is
   two opposing transitions; more than three flashes, i.e. seven or more transitions, fails).
   The animation loops, as every rendition does: each cell's plot is read from its lowest
   value (in a loop always a valley) once round the loop, and every window that starts when
   a frame is shown is counted, across the loop's seam and over as many loops as a second
   spans.
4. **How much.** A window fails when the cells flashing more than three times in it cover
   more than 25% of some 10° field. The image is taken to fill the screen it is viewed on
   (an alert animation is shown full-screen on a phone), and that screen to be WCAG's
   reference 1024×768 one: a 10° field is then a 341×256 rectangle, a third of the image's
   width by a third of its height, and 25% of it is 21,824 px of 786,432, 2.8% of the image,
   for any image size. (On a phone at a typical 30 cm a 10° field covers more of the screen,
   so the reference screen is the stricter reading.) Flashes in the same window count as
   concurrent, which can only overstate the flashing area.

`flashes_per_second` is the highest flash rate that cells over more than a quarter of some 10°
field reach together in one window (general and red each; the figure is the worse of the two):
above 3 fails. A fast flicker over a small spot reads low, as the criterion means it to.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

GRID = 64  # cells a side at most
WORK = 2 * GRID  # frames are box-averaged in sRGB to at most this many pixels a side
WINDOW_MS = 1000  # "within any one-second period"
MAX_FLASHES = 3  # "no more than three ... flashes"
LUMINANCE_STEP = 0.10  # "10% or more of the maximum relative luminance" (which is 1.0)
DARKER_BELOW = 0.80  # "where the relative luminance of the darker image is below 0.80"
RED_RATIO = 0.8  # a saturated red: R/(R+G+B) >= 0.8
RED_SCALE = 320.0  # red value (R-G-B) x 320, negatives set to 0
RED_STEP = 20.0  # a red transition changes the red value by more than this
FIELD = (256 / 768, 341 / 1024)  # a 10° field as a share of the screen's height and width
FIELD_SHARE = 0.25  # "25% of any 10 degree visual field"
AREA_SHARE = FIELD_SHARE * FIELD[0] * FIELD[1]  # of the whole image: 21,824 / 786,432 ≈ 2.8%

_S = np.arange(256) / 255
LINEAR = np.where(_S <= 0.03928, _S / 12.92, ((_S + 0.055) / 1.055) ** 2.4).astype(np.float32)
LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
# a red transition is "> 20": the same test as the luminance's ">=", one float step up
_RED_STEP = np.nextafter(np.float32(RED_STEP), np.float32(np.inf))


@dataclass(frozen=True)
class Flash:
    """Flashes per second, the most in any one-second window over an area that counts (more than
    25% of a 10° field flashing together), and whether that is within WCAG 2.3.1."""

    flashes_per_second: float  # the worse of the general and the red flashes
    red_flashes_per_second: float
    general_flashes_per_second: float
    flash_safe: bool  # neither is more than three


STILL = Flash(0.0, 0.0, 0.0, True)


def working_size(size: tuple[int, int]) -> tuple[int, int]:
    """The size (w, h) frames are box-averaged to before they are linearised."""
    w, h = size
    return min(w, WORK), min(h, WORK)


def working_frame(frame) -> Image.Image:
    """`frame` (PIL image or H×W×3 uint8 array) box-averaged in sRGB to its working size.
    Box averaging commutes with a crossfade's blend, so a caller may crossfade working frames
    instead of full ones and measure the same thing (up to rounding)."""
    if isinstance(frame, Image.Image):
        image = frame if frame.mode == "RGB" else frame.convert("RGB")
    else:
        a = np.ascontiguousarray(frame, dtype=np.uint8)
        if a.ndim != 3 or a.shape[2] != 3:
            raise ValueError(f"a frame is H×W×3 RGB, not {a.shape}")
        image = Image.frombuffer("RGB", (a.shape[1], a.shape[0]), a, "raw", "RGB", 0, 1)
    w, h = image.size
    ww, wh = working_size((w, h))
    if (ww, wh) == (w, h):
        return image
    if w % ww == 0 and h % wh == 0:
        return image.reduce((w // ww, h // wh))
    return image.resize((ww, wh), Image.Resampling.BOX)


def cells(frames: Sequence) -> np.ndarray:
    """The frames as a grid of cells, linear R, G, B each: (frames, rows, columns, 3) float32."""
    work = [np.asarray(working_frame(f)) for f in frames]
    if len({a.shape for a in work}) != 1:
        raise ValueError("frames differ in size")
    linear = np.take(LINEAR, np.stack(work))  # (T, h, w, 3)
    t, h, w, _ = linear.shape
    fy, fx = (2 if h >= 2 else 1), (2 if w >= 2 else 1)
    gh, gw = h // fy, w // fx  # an odd last row or column is left out
    linear = linear[:, :gh * fy, :gw * fx].reshape(t, gh, fy, gw * fx * 3)
    if fy == 2:
        linear = linear[:, :, 0] + linear[:, :, 1]
    linear = linear.reshape(t, gh, gw, fx, 3)
    if fx == 2:
        return (linear[:, :, :, 0] + linear[:, :, :, 1]) * np.float32(1 / (fy * fx))
    return linear[:, :, :, 0] * np.float32(1 / fy)


def _transitions(series: np.ndarray, step: np.ndarray, saturated: np.ndarray,
                 red: np.ndarray) -> np.ndarray:
    """Where each column's qualifying transitions end in one loop: (steps, columns) bool.

    `series` (steps, columns): the value shown at each step, once round the loop, each column
    starting at its lowest value and ending back at it (in a loop the lowest value is always a
    valley, so every column starts rising, and its last transition is the fall into that
    valley). A peak or valley is confirmed when the value has moved back from it by `step`
    (per column). A luminance column's transition counts when its darker end is below
    DARKER_BELOW, a `red` column's when either end is `saturated`."""
    k_steps, n = series.shape
    ends = np.zeros((k_steps, n), dtype=bool)
    cols = np.arange(n)
    sign = np.ones(n, dtype=series.dtype)  # +1 rising, -1 falling
    turn, turn_s = series[0].copy(), saturated[0].copy()  # the last peak or valley
    ext, ext_k, ext_s = turn.copy(), np.zeros(n, dtype=np.intp), turn_s.copy()  # the extreme since
    back_by = -step

    def record(back):
        darker = np.minimum(turn, ext) < DARKER_BELOW
        counts = back & np.where(red, turn_s | ext_s, darker)
        ends[ext_k[counts], cols[counts]] = True

    for k in range(1, k_steps):
        x = series[k]
        moved = (x - ext) * sign  # > 0: further on; <= -step: back, the extreme confirmed
        back = moved <= back_by
        further = moved > 0
        if back.any():
            record(back)
            np.copyto(turn, ext, where=back)
            np.copyto(turn_s, ext_s, where=back)
            np.negative(sign, out=sign, where=back)
            further |= back  # the value now is the new extreme
        if further.any():
            np.copyto(ext, x, where=further)
            np.copyto(ext_k, k, where=further)
            np.copyto(ext_s, saturated[k], where=further)
    # back at the lowest value: the fall into it is the loop's last transition, which the next
    # pass would confirm as it rises again
    record(sign < 0)
    return ends


def _concurrent_rate(counts: np.ndarray) -> float:
    """The most transitions per window reached together by cells over more than FIELD_SHARE of
    some 10° field: `counts` (windows, rows, columns) transitions per cell per window."""
    _, gh, gw = counts.shape
    ky, kx = min(gh, math.ceil(gh * FIELD[0])), min(gw, math.ceil(gw * FIELD[1]))
    need = FIELD_SHARE * gh * FIELD[0] * gw * FIELD[1]  # cells: a quarter of a 10° field
    for level in range(int(counts.max()), 0, -1):
        on = counts >= level
        if on.sum(axis=(1, 2)).max() <= need:  # not enough cells anywhere in the image
            continue
        table = np.zeros((len(on), gh + 1, gw + 1), dtype=np.int32)
        table[:, 1:, 1:] = on.cumsum(1, dtype=np.int32).cumsum(2)
        boxes = (table[:, ky:, kx:] - table[:, :-ky, kx:] - table[:, ky:, :-kx]
                 + table[:, :-ky, :-kx])
        if boxes.max() > need:
            return float(level)
    return 0.0


def measure(frames: Sequence, durations_ms: Sequence[float]) -> Flash:
    """The flashes of `frames` (PIL images or H×W×3 uint8 arrays, all one size), frame i shown
    for `durations_ms[i]` milliseconds, played in a loop (as every rendition is: the GIF and the
    WebP loop forever, and a player looping the MP4 shows the same)."""
    if len(frames) != len(durations_ms):
        raise ValueError(f"{len(frames)} frames but {len(durations_ms)} durations")
    if not frames:
        raise ValueError("no frames to measure")
    d = np.asarray(durations_ms, dtype=np.float64)
    if (d <= 0).any():
        raise ValueError("every frame is shown for some time: durations must be positive")
    grid = cells(frames)
    n, gh, gw, _ = grid.shape
    flat = grid.reshape(n, gh * gw, 3)
    r, g, b = flat[..., 0], flat[..., 1], flat[..., 2]
    luminance = flat @ LUMA
    red_value = np.maximum(r - g - b, 0) * np.float32(RED_SCALE)
    total = r + g + b
    saturated = (total > 0) & (r >= RED_RATIO * total)
    # a cell whose value never moves by a threshold has no transitions: left out
    lum_cols = np.flatnonzero(np.ptp(luminance, axis=0) >= LUMINANCE_STEP)
    red_cols = np.flatnonzero(np.ptp(red_value, axis=0) >= _RED_STEP)
    if not (len(lum_cols) or len(red_cols)):
        return STILL
    n_lum, n_red = len(lum_cols), len(red_cols)
    series = np.concatenate([luminance[:, lum_cols], red_value[:, red_cols]], axis=1)
    red = np.r_[np.zeros(n_lum, bool), np.ones(n_red, bool)]
    step = np.r_[np.full(n_lum, LUMINANCE_STEP, np.float32), np.full(n_red, _RED_STEP, np.float32)]

    # Each column once round the loop from its lowest value back to it (`_transitions`).
    columns = np.arange(n_lum + n_red)
    frame = (series.argmin(axis=0)[None, :] + np.arange(n + 1)[:, None]) % n  # (steps, columns)
    sat = np.zeros(frame.shape, dtype=bool)  # only a red transition asks whether it is red
    sat[:, n_lum:] = saturated[frame[:, n_lum:], red_cols]
    ends = _transitions(series[frame, columns], step, sat, red)[1:]
    per_frame = np.zeros((n, len(columns)), dtype=np.int32)  # transitions ending at frame j
    per_frame[frame[1:][ends], np.nonzero(ends)[1]] = 1  # one loop's steps are n frames

    # One-second windows starting when each frame is shown, reaching over as many loops as
    # they span: a window from frame i to the step `last` (counted on from frame 0, loop after
    # loop) holds what ends at frames i.. of this loop and every frame of the loops after.
    period = float(d.sum())
    loops = 1 + math.ceil(WINDOW_MS / period)
    shown = np.concatenate([[0.0], np.cumsum(np.tile(d, loops))[:-1]])
    # [shown, shown + 1 s): a frame shown exactly a second later is the next window's (3 Hz
    # exactly, in durations that do not add up exactly, is still three flashes)
    last = np.searchsorted(shown, shown[:n] + WINDOW_MS - 1e-6, side="left")
    cumulative = np.zeros((n + 1, len(columns)), dtype=np.int32)
    np.cumsum(per_frame, axis=0, out=cumulative[1:])
    whole, part = np.divmod(last, n)
    per_window = whole[:, None] * cumulative[n] + cumulative[part] - cumulative[:n]

    rates = []
    for cols_of, lo, hi in ((lum_cols, 0, n_lum), (red_cols, n_lum, n_lum + n_red)):
        counts = np.zeros((n, gh * gw), dtype=np.int32)
        counts[:, cols_of] = per_window[:, lo:hi]
        rates.append(_concurrent_rate(counts.reshape(n, gh, gw)) / 2)
    general, red_rate = rates
    worst = max(general, red_rate)
    return Flash(flashes_per_second=worst, red_flashes_per_second=red_rate,
                 general_flashes_per_second=general, flash_safe=worst <= MAX_FLASHES)
