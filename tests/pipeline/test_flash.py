"""Flash safety (WCAG 2.3.1): the measure against synthetic frames built to sit on either side of
each threshold, and the animate stage, which never delivers a loop that flashes."""

from __future__ import annotations

import io
import statistics
import time
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, ImageOps, ImageSequence

from alertanim.pipeline import animate, flash
from alertanim.pipeline.animate import FlashSafety, clip_length, crossfade
from alertanim.pipeline.config import MethodConfig
from alertanim.pipeline.flash import measure
from alertanim.pipeline.quality import assess
from alertanim.pipeline.stage import Context
from alertanim.schemas import Quality
from tests.support.photos import key_frames

SIDE = 512
BLACK, WHITE = (0, 0, 0), (255, 255, 255)
RED = (255, 0, 0)  # saturated: R/(R+G+B) = 1


def solid(color, side=SIDE) -> np.ndarray:
    return np.full((side, side, 3), color, dtype=np.uint8)


def patch(color, fraction, side=SIDE, ground=BLACK) -> np.ndarray:
    """`ground` with a centred square of `color` over `fraction` of the image."""
    a = solid(ground, side)
    half = round(side * fraction ** 0.5 / 2)
    c = side // 2
    a[c - half:c + half, c - half:c + half] = color
    return a


def alternating(a, b, hz, seconds=1):
    """`a` and `b` in turn, `hz` flashes (a and back) a second: each shown 1000/(2 hz) ms."""
    n = 2 * max(1, round(hz * seconds))  # even: the loop alternates across its seam too
    return [a if i % 2 == 0 else b for i in range(n)], [1000 / (2 * hz)] * n


# -- the measure -----------------------------------------------------------------------------

def test_relative_luminance_is_wcags_formula():
    s = np.arange(256) / 255
    expected = np.where(s <= 0.03928, s / 12.92, ((s + 0.055) / 1.055) ** 2.4)
    assert np.allclose(flash.LINEAR, expected, atol=1e-7)
    assert flash.LINEAR[0] == 0 and flash.LINEAR[255] == pytest.approx(1)
    # a uniform cell is its colour's relative luminance
    cells = flash.cells([solid((200, 120, 40), 256)])
    lin = expected[[200, 120, 40]]
    assert cells.shape == (1, 64, 64, 3)
    assert cells[0] @ flash.LUMA == pytest.approx(np.full((64, 64), lin @ [0.2126, 0.7152, 0.0722]),
                                                  abs=1e-5)


def test_black_and_white_at_4_hz_over_the_whole_frame_is_caught():
    got = measure(*alternating(solid(BLACK), solid(WHITE), 4))
    assert got.general_flashes_per_second == got.flashes_per_second == 4.0
    assert got.red_flashes_per_second == 0.0
    assert not got.flash_safe


def test_saturated_red_and_black_at_4_hz_over_a_large_area_is_caught():
    got = measure(*alternating(solid(BLACK), patch(RED, 0.25), 4))
    assert got.red_flashes_per_second == 4.0 and not got.flash_safe


def test_a_dark_saturated_red_flashes_as_red_alone():
    # (120, 0, 0): luminance 0.04, too dim a change for a general flash, but its red value
    # (R-G-B)x320 is 60, more than 20
    got = measure(*alternating(solid(BLACK), solid((120, 0, 0)), 4))
    assert got.general_flashes_per_second == 0.0
    assert got.red_flashes_per_second == got.flashes_per_second == 4.0 and not got.flash_safe


def test_a_red_that_is_not_saturated_makes_no_red_flash():
    # (120, 60, 60) over (60, 60, 60): R/(R+G+B) is 0.68 in linear light, and the luminance
    # changes by 0.03
    got = measure(*alternating(solid((60, 60, 60)), solid((120, 60, 60)), 4))
    assert got == flash.Flash(0.0, 0.0, 0.0, True)


def test_the_same_4_hz_red_over_a_small_area_passes_and_just_above_the_threshold_fails():
    # a quarter of a 10° field is 2.8% of the image (341×256 of 1024×768, times 25%)
    assert flash.AREA_SHARE == pytest.approx(0.25 * 341 * 256 / (1024 * 768))
    small = measure(*alternating(solid(BLACK), patch(RED, 0.02), 4))
    assert small.flash_safe and small.flashes_per_second == 0.0
    larger = measure(*alternating(solid(BLACK), patch(RED, 0.035), 4))
    assert not larger.flash_safe and larger.red_flashes_per_second == 4.0


def test_a_small_area_spread_out_is_not_concentrated_in_any_10_degree_field():
    # four patches of 2% each, one per corner: 8% of the image flashes, but no third-by-third
    # window holds more than one of them
    a = solid(BLACK)
    side = round(SIDE * 0.02 ** 0.5)
    for y in (0, SIDE - side):
        for x in (0, SIDE - side):
            a[y:y + side, x:x + side] = WHITE
    assert measure(*alternating(solid(BLACK), a, 4)).flash_safe
    together = solid(BLACK)
    together[:2 * side, :2 * side] = WHITE  # the same area in one place
    assert not measure(*alternating(solid(BLACK), together, 4)).flash_safe


def test_black_and_white_at_2_hz_passes():
    got = measure(*alternating(solid(BLACK), solid(WHITE), 2))
    assert got.flashes_per_second == 2.0 and got.flash_safe


def test_three_flashes_a_second_pass_and_more_fail():
    assert measure(*alternating(solid(BLACK), solid(WHITE), 3)).flashes_per_second == 3.0
    assert measure(*alternating(solid(BLACK), solid(WHITE), 3)).flash_safe
    assert not measure(*alternating(solid(BLACK), solid(WHITE), 3.5)).flash_safe


def test_a_change_between_two_bright_images_is_no_general_flash():
    # 0.85 and 1.0 differ by more than 10%, but the darker one is not below 0.80
    bright = solid((237, 237, 237))
    assert flash.LINEAR[237] > 0.8
    assert measure(*alternating(bright, solid(WHITE), 4)).flash_safe
    assert not measure(*alternating(solid((200, 200, 200)), solid(WHITE), 4)).flash_safe


def test_a_slow_crossfade_and_a_still_pass():
    n = 40  # black to white and back in 4 s
    fade = [solid(round(255 * abs(np.sin(np.pi * i / n)))) for i in range(n)]
    got = measure(fade, [100] * n)
    assert got.flash_safe and got.flashes_per_second <= 0.5
    assert measure([solid(WHITE)], [1000]) == flash.STILL
    assert measure([solid(WHITE)] * 3, [40] * 3) == flash.STILL


def test_ripples_smaller_than_the_threshold_make_no_peaks():
    # white to black in 5 steps at 25 Hz, each step with a 0.05 wobble back: one transition
    # down and one up per 0.4 s, not one per frame
    levels = [1.0, 0.95, 0.97, 0.6, 0.62, 0.3, 0.32, 0.0, 0.02]
    values = [int(np.searchsorted(flash.LINEAR, v)) for v in levels]
    frames = [solid((v, v, v), 64) for v in values + values[::-1]]
    got = measure(frames, [40] * len(frames))
    assert got.flashes_per_second <= 1.5 and got.flash_safe
    jagged = [solid((v, v, v), 64) for v in [0, 255] * 9]  # the same frames' count, all swings
    assert not measure(jagged, [40] * 18).flash_safe


def test_flashes_across_the_loops_seam_count():
    # one white frame per 200 ms loop: each loop is a flash, five a second, only when looped
    frames = [solid(BLACK, 64)] * 4 + [solid(WHITE, 64)]
    got = measure(frames, [40] * 5)
    assert got.flashes_per_second == 5.0 and not got.flash_safe


def test_images_and_arrays_measure_alike_and_bad_input_is_refused():
    frames, durations = alternating(solid(BLACK, 96), patch(RED, 0.3, 96), 4)
    assert measure([Image.fromarray(f) for f in frames], durations) == measure(frames, durations)
    with pytest.raises(ValueError, match="durations"):
        measure(frames, durations[:-1])
    with pytest.raises(ValueError, match="positive"):
        measure(frames, [0] * len(frames))
    with pytest.raises(ValueError, match="size"):
        measure([solid(BLACK, 64), solid(BLACK, 32)], [100, 100])
    tiny = measure(*alternating(solid(BLACK, 6), solid(WHITE, 6), 4))  # fewer pixels than cells
    assert not tiny.flash_safe


def test_40_frames_at_512_measure_quickly():
    clip = crossfade(key_frames("astronaut", n=10, size=SIDE, seed=0), 3)
    assert len(clip) == 40
    measure(clip, [120] * 40)
    seconds = []
    for _ in range(3):
        t0 = time.perf_counter()
        measure(clip, [120] * 40)
        seconds.append(time.perf_counter() - t0)
    # tens of milliseconds on an idle core (tests/bench/bench_flash.py prints it); the bound is
    # loose for shared CI machines, and catches a measure that works per pixel or per window pair
    assert statistics.median(seconds) < 0.5


# -- the animate stage delivers no unsafe loop ---------------------------------------------

def run_stage(keys, config):
    [out] = animate.STAGE.run(Context(None, config), [{"frames": keys,
                                                      "mask": Image.new("L", keys[0].size, 255)}])
    return out


def shown(data):
    """An animation's frames as a viewer sees them, with their durations (ms)."""
    image = Image.open(io.BytesIO(data))
    frames, durations = [], []
    for f in ImageSequence.Iterator(image):
        f.load()
        frames.append(np.asarray(f.convert("RGB")))
        durations.append(f.info["duration"])
    return frames, durations


def flashing_keys(n=6, side=128, colors=(BLACK, WHITE)):
    return [Image.new("RGB", (side, side), colors[i % len(colors)]) for i in range(n)]


@pytest.mark.parametrize("colors", [(BLACK, WHITE), (BLACK, RED)], ids=["black-white", "red"])
def test_animate_slows_a_flashing_loop_and_delivers_it_safe(colors):
    keys = flashing_keys(colors=colors)
    config = MethodConfig(inbetween=0, frame_ms=40)  # a key frame every 40 ms: 12.5 flashes/s
    out = run_stage(keys, config)
    safety = out["flash"]
    assert isinstance(safety, FlashSafety) and animate.STAGE.output("flash").type is FlashSafety
    assert safety.built_flashes_per_second > flash.MAX_FLASHES
    assert safety.remedy == "slower" and safety.flash_safe
    gif, webp = out["animations"][0], out["animations"][1]
    assert (gif.content_type, webp.content_type) == ("image/gif", "image/webp")
    for rendition in (gif, webp):
        frames, durations = shown(rendition.data)
        delivered = measure(frames, durations)
        assert delivered.flash_safe, rendition.content_type
        assert delivered.flashes_per_second == safety.flashes_per_second
    # every key frame is still shown: slower, not shorter
    frames, durations = shown(gif.data)
    key_at = [sum(durations[:j]) for j in range(len(durations))]
    assert len(frames) == clip_length(len(keys), (len(frames) // len(keys)) - 1)
    assert sum(durations) >= len(keys) * animate.SAFE_KEY_MS[0]
    assert key_at[len(frames) // len(keys)] >= animate.SAFE_KEY_MS[0]


def test_a_gif_on_a_lower_rung_is_as_safe_as_the_loop_measured():
    # a photograph and its negative in turn, at 256² (MIN_SIDE): a smaller budget takes the GIF
    # down its ladder to a rung with fewer in-betweens before smaller frames, and that rung
    # holds its key frames for the in-betweens left out
    photos = key_frames("chelsea", n=6, size=256, seed=2)
    keys = [p if i % 2 == 0 else ImageOps.invert(p) for i, p in enumerate(photos)]
    config = MethodConfig(inbetween=0, frame_ms=40, gif_max_bytes=10_000_000, webp=False,
                          mp4=False, poster=False)
    full = run_stage(keys, config)["animations"][0]
    for share in (2, 3, 4):
        out = run_stage(keys, config.model_copy(update={"gif_max_bytes": len(full.data) // share}))
        gif = out["animations"][0]
        if gif.frame_count < full.frame_count:
            break
    assert gif.frame_count < full.frame_count and out["flash"].remedy == "slower"
    frames, durations = shown(gif.data)
    assert max(durations) > min(durations)  # key frames held
    assert sum(durations) == sum(shown(full.data)[1])  # at the same pace
    assert measure(frames, durations).flash_safe


def test_a_safe_loop_is_encoded_as_the_settings_say():
    keys = key_frames("coffee", n=4, size=96, seed=1)
    config = MethodConfig(inbetween=2)
    out = run_stage(keys, config)
    assert out["flash"].remedy == "none"
    assert out["flash"].flashes_per_second == out["flash"].built_flashes_per_second
    assert out["animations"][0].data == animate.encode_gif(keys, 2).data


def test_when_slowing_is_not_enough_the_flashing_key_frame_leaves_the_path(monkeypatch):
    monkeypatch.setattr(animate, "SAFE_KEY_MS", ())  # to reach the last resorts
    keys = flashing_keys(n=6, colors=(BLACK, BLACK, WHITE, BLACK, BLACK, BLACK))
    out = run_stage(keys, MethodConfig(inbetween=0, frame_ms=40))
    assert out["flash"].remedy == "fewer key frames" and out["flash"].built_flashes_per_second > 3
    frames, durations = shown(out["animations"][0].data)
    assert measure(frames, durations).flash_safe
    # the white one is gone (Pillow may merge the identical frames that are left)
    assert max(f.max() for f in frames) == 0 and sum(durations) == 5 * 40


def test_as_a_last_resort_the_best_image_is_held_still(monkeypatch):
    monkeypatch.setattr(animate, "SAFE_KEY_MS", ())
    keys = flashing_keys(n=2)
    out = run_stage(keys, MethodConfig(inbetween=0, frame_ms=40))
    assert out["flash"].remedy == "still"
    assert (out["flash"].flashes_per_second, out["flash"].flash_safe) == (0.0, True)
    gif = out["animations"][0]
    assert gif.frame_count == 1 and (shown(gif.data)[0][0] == np.asarray(keys[0])).all()
    assert out["motion"].key_step == 0.0


def test_the_figures_reach_the_quality_figures_and_the_event():
    safety = FlashSafety(2.5, 0.0, True, "slower", 12.5)
    values = {"subject": SimpleNamespace(hazard="fire"), "scores": SimpleNamespace(best=30.0),
              "frame_scores": SimpleNamespace(values=[30.0, 29.0]),
              "path": SimpleNamespace(cost=1.0, largest_step=0.6),
              "motion": SimpleNamespace(per_inbetween=1.0, key_step=4.0, static=0.0),
              "mask_coverage": SimpleNamespace(combined=0.3, subject=0.2), "flash": safety}
    figures = assess(values)
    assert (figures.flashes_per_second, figures.flash_safe) == (2.5, True)
    event = Quality.model_validate(figures.as_dict(6), strict=False)
    assert (event.flashes_per_second, event.flash_safe) == (2.5, True)
    # a run without the figures (a message from before them) still makes an event
    older = assess({k: v for k, v in values.items() if k != "flash"})
    assert (older.flashes_per_second, older.flash_safe) == (None, None)
    old_event = Quality.model_validate(older.as_dict(6), strict=False)
    assert old_event.flashes_per_second is None
    assert "flash_safe" not in old_event.model_dump(exclude_none=True)


def test_a_run_reports_its_flash_figures(tiny):
    from alertanim.pipeline.report import render_report
    from alertanim.pipeline.workflow import run_workflow

    config = MethodConfig(candidates=2, variants=3, frames=3, inbetween=1, steps=2)
    run = run_workflow(tiny, "Fire in the building", seed=4, config=config)
    safety = run.values["flash"]
    assert safety.flash_safe
    quality = run.summary()["quality"]
    assert quality["flash_safe"] is True
    assert quality["flashes_per_second"] == safety.flashes_per_second <= flash.MAX_FLASHES
    assert measure(*shown(run.gif.data)).flashes_per_second == safety.flashes_per_second
    page = render_report(run, config)
    assert 'id="flash"' in page and 'data-flash-safe="true"' in page
    assert f'data-flashes-per-second="{safety.flashes_per_second:g}"' in page
    assert f'data-remedy="{safety.remedy}"' in page
