import io
import random
import struct
from concurrent.futures import ThreadPoolExecutor

import av
import numpy as np
import pytest
from PIL import Image, ImageSequence

from alertanim.pipeline.animate import (EXTENSIONS, MIN_SIDE, clip_length, crossfade, encode_gif,
                              encode_mp4, encode_poster, encode_renditions, encode_webp,
                              gif_ladder, inbetween_shown)
from alertanim.pipeline.config import MethodConfig
from tests.support.photos import PHOTOS, key_frames


def noisy_frames(n, size=96, seed=0):
    rng = random.Random(seed)
    return [Image.frombytes("RGB", (size, size), bytes(rng.randrange(256) for _ in range(size * size * 3)))
            for _ in range(n)]


def solid_frames(n, size=64):
    return [Image.new("RGB", (size, size), (40 * i, 255 - 30 * i, 100)) for i in range(n)]


def shown_frames(data):
    """Every frame of a GIF as a viewer shows it (the frames before it drawn underneath)."""
    gif = Image.open(io.BytesIO(data))
    return [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(gif)]


def full_frame_gif(anim, frames, inbetween, loop=True):
    """The GIF of `anim`'s rung with every frame stored whole: the same palette and frames, no
    deltas."""
    from alertanim.pipeline.animate import _palette

    keys = [f.resize((anim.width, anim.height), Image.Resampling.LANCZOS)
            if f.size != (anim.width, anim.height) else f for f in frames]
    shown = inbetween_shown(anim.frame_count, len(frames), loop)
    palette = _palette(frames, anim.colors, inbetween, loop)
    indexed = [f.quantize(palette=palette, dither=Image.Dither.NONE)
               for f in crossfade(keys, shown, loop)]
    buf = io.BytesIO()
    indexed[0].save(buf, format="GIF", save_all=True, append_images=indexed[1:], duration=120,
                    loop=0, optimize=False, disposal=1)
    return buf.getvalue()


def test_crossfade_is_linear_interpolation():
    a, b = Image.new("RGB", (4, 4), (0, 0, 0)), Image.new("RGB", (4, 4), (200, 100, 40))
    clip = crossfade([a, b], inbetween=3, loop=False)
    assert len(clip) == 5
    assert [c.getpixel((0, 0))[0] for c in clip] == [0, 50, 100, 150, 200]


@pytest.mark.parametrize("loop, expected", [(True, 8 + 8 * 3), (False, 8 + 7 * 3)])
def test_frame_counts(loop, expected):
    assert len(crossfade(solid_frames(8), 3, loop)) == expected


def test_gif_decodes_with_the_expected_frames_and_fits_the_budget():
    anim = encode_gif(solid_frames(8), inbetween=3, max_bytes=300_000)
    gif = Image.open(io.BytesIO(anim.data))
    assert gif.format == "GIF"
    assert gif.n_frames == anim.frame_count == 32
    assert len(anim.data) <= 300_000
    assert anim.duration_ms == 32 * 120
    assert gif.info.get("loop") == 0


def test_gif_walks_down_the_ladder_to_fit_a_small_budget():
    frames = noisy_frames(6)
    full = encode_gif(frames, inbetween=2, max_bytes=10_000_000)
    budget = len(full.data) // 4
    small = encode_gif(frames, inbetween=2, max_bytes=budget)
    assert len(small.data) <= budget < len(full.data)
    decoded = Image.open(io.BytesIO(small.data))
    assert decoded.n_frames == small.frame_count
    assert (small.width, small.colors, small.frame_count) != (full.width, full.colors, full.frame_count)


def test_gif_that_cannot_fit_is_an_error():
    with pytest.raises(ValueError, match="cannot fit"):
        encode_gif(noisy_frames(4), inbetween=1, max_bytes=100)


def test_webp_is_animated():
    anim = encode_webp(solid_frames(4), inbetween=1)
    img = Image.open(io.BytesIO(anim.data))
    assert img.format == "WEBP"
    assert sum(1 for _ in ImageSequence.Iterator(img)) == anim.frame_count == 8


def test_gif_takes_the_first_rung_of_the_ladder_that_fits():
    # Changed with the delta frames: a rung is now encoded as `encode_gif` stores it (palette
    # with a transparent entry, deltas, key frames held for the in-betweens left out).
    from alertanim.pipeline.animate import _deltas, _gif, _indexed, _palette, _transparent, frame_durations

    frames = noisy_frames(6)
    budget = len(encode_gif(frames, inbetween=2, max_bytes=10_000_000).data) // 3
    first_fit = None
    for colors, scale, t in gif_ladder(2, 96):  # every rung encoded whole, in order
        size = (max(8, round(96 * scale)),) * 2
        keys = [f.resize(size, Image.Resampling.LANCZOS) for f in frames] if scale != 1 else frames
        clip = crossfade(keys, t)
        palette = _palette(frames, colors, 2, True)
        drawn = _deltas(_indexed(clip, palette), _transparent(palette))
        if len(_gif(drawn, frame_durations(len(clip), 2, t, 120), palette)) <= budget:
            first_fit = (colors, size[0], len(clip))
            break
    got = encode_gif(frames, inbetween=2, max_bytes=budget)
    assert (got.colors, got.width, got.frame_count) == first_fit


def test_gif_sizes_rungs_from_a_probe_before_encoding_them_whole(monkeypatch):
    import alertanim.pipeline.animate as animate

    whole = []
    real = animate._gif

    def spy(drawn, durations, palette):
        if len(drawn) > animate.PROBE_FRAMES + 1:  # a probe is the first frame and its deltas
            whole.append(len(drawn))
        return real(drawn, durations, palette)
    monkeypatch.setattr(animate, "_gif", spy)
    anim = animate.encode_gif(noisy_frames(8, size=128), inbetween=3, max_bytes=120_000)
    assert len(anim.data) <= 120_000 and anim.width < 128
    assert 1 <= len(whole) <= 2  # not one whole encode per rung walked past


def test_the_ladder_keeps_the_gif_at_least_min_side_before_anything_smaller():
    ladder = gif_ladder(3, 512)
    big = [round(512 * s) >= MIN_SIDE for _, s, _ in ladder]
    assert big == sorted(big, reverse=True) and 0 < sum(big) < len(ladder)
    assert (32, 0.5, 0) in ladder[:sum(big)]  # every colour count and in-between at 256²
    assert gif_ladder(3, 96) == gif_ladder(3)  # frames already below it: the order as it was


def test_delta_frames_show_exactly_the_full_frames():
    frames = key_frames("coffee", n=4, size=96, seed=1)
    anim = encode_gif(frames, inbetween=3, max_bytes=10_000_000)
    assert (anim.width, anim.colors, anim.frame_count) == (96, 256, 16)  # the first rung
    full = full_frame_gif(anim, frames, inbetween=3)
    delta, whole = shown_frames(anim.data), shown_frames(full)
    assert len(delta) == len(whole) == anim.frame_count
    for j, (d, w) in enumerate(zip(delta, whole)):
        assert (d == w).all(), f"frame {j} differs"
    # and the deltas are what saves the bytes: the static parts are not repainted
    assert len(anim.data) < 0.75 * len(full)
    # every frame's control block: "do not dispose" (1 << 2) and a transparent index (1)
    assert anim.data.count(b"\x21\xf9\x04\x05") == anim.frame_count


def test_a_lower_rung_holds_its_key_frames_and_shows_exactly_the_full_frames():
    # at 256² (MIN_SIDE) the ladder drops in-betweens before it shrinks the frames
    frames = key_frames("chelsea", n=4, size=256, seed=2)
    full_rung = encode_gif(frames, inbetween=3, max_bytes=10_000_000)
    anim = encode_gif(frames, inbetween=3, max_bytes=len(full_rung.data) // 2)
    shown = inbetween_shown(anim.frame_count, 4, True)
    assert anim.width == 256 and shown < 3
    assert (shown_frames(anim.data) == np.stack(shown_frames(
        full_frame_gif(anim, frames, inbetween=3)))).all()
    gif = Image.open(io.BytesIO(anim.data))
    durations = []
    for f in ImageSequence.Iterator(gif):
        durations.append(f.info["duration"])
    hold = 120 * (1 + 3 - shown)
    assert durations == [hold if j % (shown + 1) == 0 else 120 for j in range(anim.frame_count)]
    # the loop is as long as the full clip's: fewer in-betweens, the same pace
    assert sum(durations) == anim.duration_ms == 120 * clip_length(4, 3) == full_rung.duration_ms


@pytest.mark.parametrize("photo", PHOTOS)
def test_gif_of_composited_photographs_is_at_least_256_within_the_mms_budget(photo):
    c = MethodConfig()
    frames = key_frames(photo, n=c.frames, size=512, seed=PHOTOS.index(photo))
    anim = encode_gif(frames, c.inbetween, c.frame_ms, c.gif_max_bytes, c.loop)
    assert min(anim.width, anim.height) >= 256
    assert len(anim.data) <= c.gif_max_bytes == 300_000
    assert Image.open(io.BytesIO(anim.data)).n_frames == anim.frame_count >= c.frames


def boxes(data):
    """The top-level boxes of an MP4, in file order."""
    names, at = [], 0
    while at < len(data):
        size, name = struct.unpack(">I4s", data[at:at + 8])
        names.append(name.decode())
        at += size
    return names


def decode_mp4(data):
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return {"codec": ctx.name, "pix_fmt": ctx.pix_fmt, "size": (stream.width, stream.height),
                "frames": frames, "duration_ms": container.duration / 1000,
                "metadata": dict(container.metadata)}


def test_mp4_is_h264_yuv420p_even_sided_and_starts_with_its_index():
    frames = key_frames("rocket", n=4, size=101, seed=3)  # odd sides: H.264 4:2:0 needs even
    anim = encode_mp4(frames, inbetween=2, frame_ms=120, max_bytes=300_000)
    got = decode_mp4(anim.data)
    assert anim.content_type == "video/mp4"
    assert (got["codec"], got["pix_fmt"]) == ("h264", "yuv420p")
    assert got["size"] == (anim.width, anim.height) == (100, 100)
    assert len(got["frames"]) == anim.frame_count == clip_length(4, 2) == 12
    assert got["duration_ms"] == anim.duration_ms == 12 * 120
    assert len(anim.data) <= 300_000
    # +faststart: the index (moov) before the media (mdat), so playback starts at once
    order = boxes(anim.data)
    assert order.index("moov") < order.index("mdat")
    # and it shows the frames: the first one is the best image, within H.264's loss
    best = np.asarray(frames[0].resize((100, 100), Image.Resampling.LANCZOS), dtype=np.int16)
    assert np.abs(got["frames"][0].astype(np.int16) - best).mean() < 4


def test_mp4_of_a_photograph_fits_the_mms_budget_at_512():
    c = MethodConfig()
    anim = encode_mp4(key_frames("astronaut", size=512), c.inbetween, c.frame_ms,
                      c.mp4_max_bytes, c.loop)
    assert (anim.width, anim.height) == (512, 512)
    assert len(anim.data) <= c.mp4_max_bytes == 300_000


def test_mp4_walks_down_to_fit_a_small_budget_and_says_when_nothing_fits():
    frames = noisy_frames(4, size=64)
    full = encode_mp4(frames, inbetween=1, max_bytes=10_000_000)
    budget = len(full.data) // 3
    small = encode_mp4(frames, inbetween=1, max_bytes=budget)
    assert len(small.data) <= budget < len(full.data)
    assert len(decode_mp4(small.data)["frames"]) == small.frame_count == full.frame_count
    with pytest.raises(ValueError, match="cannot fit the MP4"):
        encode_mp4(frames, inbetween=1, max_bytes=1_000)


def test_same_frames_make_the_same_mp4():
    frames = key_frames("coffee", n=4, size=64, seed=4)
    first = encode_mp4(frames, inbetween=2)
    with ThreadPoolExecutor(2) as pool:  # side by side, as the renditions encode
        again = list(pool.map(lambda _: encode_mp4(frames, inbetween=2).data, range(2)))
    assert again == [first.data, first.data]
    assert "creation_time" not in decode_mp4(first.data)["metadata"]


def test_poster_is_a_jpeg_of_the_best_image():
    frames = key_frames("chelsea", n=2, size=512, seed=5)
    poster = encode_poster(frames[0])
    img = Image.open(io.BytesIO(poster.data))
    assert img.format == "JPEG" and poster.content_type == "image/jpeg"
    assert img.size == (poster.width, poster.height) == (512, 512)
    assert (poster.frame_count, poster.duration_ms) == (1, 0)
    error = np.abs(np.asarray(img.convert("RGB"), np.int16) - np.asarray(frames[0], np.int16))
    assert error.mean() < 3
    other = np.abs(np.asarray(img.convert("RGB"), np.int16) - np.asarray(frames[1], np.int16))
    assert other.mean() > error.mean()  # frame 0, not any frame


@pytest.mark.parametrize("flags, expected", [
    ({}, ["image/gif", "image/webp", "video/mp4", "image/jpeg"]),
    ({"webp": False}, ["image/gif", "video/mp4", "image/jpeg"]),
    ({"mp4": False, "poster": False}, ["image/gif", "image/webp"]),
    ({"webp": False, "mp4": False, "poster": False}, ["image/gif"]),
])
def test_the_config_says_which_renditions_are_made_and_the_gif_comes_first(flags, expected):
    frames = key_frames("astronaut", n=3, size=64, seed=6)
    config = MethodConfig(inbetween=1, **flags)
    got = encode_renditions(frames, config)
    assert [a.content_type for a in got] == expected
    assert got[0].data == encode_gif(frames, 1).data
    assert all(a.content_type in EXTENSIONS for a in got)


def test_the_mp4_budget_has_a_floor():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        MethodConfig(mp4_max_bytes=9_999)
    assert MethodConfig().mp4_max_bytes == MethodConfig().gif_max_bytes == 300_000


def test_every_palette_size_decodes_to_the_frames_in_pillow_and_ffmpeg():
    # the GIF is written here, not by Pillow's writer: its LZW code size follows the table (5
    # bits for 32 entries), and each delta is cropped to the box of the pixels it draws
    from alertanim.pipeline.animate import (GIF_COLOURS, _deltas, _gif, _indexed, _palettes,
                                            _transparent)

    frames = key_frames("rocket", n=3, size=48, seed=7)
    clip = crossfade(frames, 1)
    for colors, palette in _palettes(frames, GIF_COLOURS, 1, True).items():
        table = np.array(palette.getpalette(), np.uint8).reshape(-1, 3)
        assert len(table) <= colors - 1
        indexed = _indexed(clip, palette)
        data = _gif(_deltas(indexed, _transparent(palette)), [120] * len(clip), palette)
        expected = [table[a] for a in indexed]
        with av.open(io.BytesIO(data)) as container:
            decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        for reader in (shown_frames(data), decoded):
            assert len(reader) == len(expected)
            assert all((got == want).all() for got, want in zip(reader, expected)), colors


def reference_walk(frames, inbetween, budget):
    """The ladder walked as before the pruning: every rung in order sized from its own probe,
    and encoded whole when the estimate is within the slack."""
    from alertanim.pipeline import animate

    keys = [f.convert("RGB") for f in frames]
    rungs = animate._Rungs(keys, animate._palettes(keys, animate.GIF_COLOURS, inbetween, True),
                           True)
    for colors, scale, t in gif_ladder(inbetween, min(keys[0].size)):
        n = clip_length(len(keys), t)
        if n > animate.PROBE_FRAMES + 1:
            first, delta = rungs.estimate(colors, scale, t, inbetween, 120)
            if first + delta * (n - 1) > budget * animate.ESTIMATE_SLACK:
                continue
        data = rungs.encode(colors, scale, t, inbetween, 120)
        if len(data) <= budget:
            return data
    return None


@pytest.mark.parametrize("make, inbetween, budgets", [
    (lambda: noisy_frames(6), 2, (20_000, 40_000, 60_000)),
    (lambda: key_frames("astronaut", n=8, size=512, seed=0), 3, (300_000,)),
])
def test_ruling_rungs_out_finds_the_rung_that_sizing_every_rung_finds(monkeypatch, make,
                                                                      inbetween, budgets):
    from alertanim.pipeline import animate

    frames = make()
    sized = []
    real = animate._Rungs.estimate
    monkeypatch.setattr(animate._Rungs, "estimate",
                        lambda self, *rung: sized.append(rung) or real(self, *rung))
    for budget in budgets:
        expected = reference_walk(frames, inbetween, budget)
        sized.clear()
        assert encode_gif(frames, inbetween, max_bytes=budget).data == expected
        if frames[0].width == 512:  # of the 48 rungs at 256² or larger
            assert len(sized) <= 16


def test_motion_is_the_static_change_to_the_bit():
    from alertanim.pipeline.animate import motion
    from alertanim.pipeline.composite import static_change

    frames = key_frames("coffee", n=5, size=64, seed=8)
    mask = Image.fromarray(np.random.default_rng(8).integers(0, 256, (40, 40), dtype=np.uint8))
    inside = np.asarray(mask.resize((64, 64), Image.NEAREST)) >= 128
    for loop in (True, False):
        got = motion(frames, mask, 3, loop)
        assert got.key_step == static_change(frames, np.zeros((64, 64), bool), loop)
        assert got.static == static_change(frames, inside, loop)
        assert got.per_inbetween == got.key_step / 4
    assert motion(frames[:1], mask, 3, True).key_step == 0.0


def test_same_frames_make_the_same_renditions():
    frames = key_frames("chelsea", n=4, size=96, seed=9)
    config = MethodConfig(inbetween=2)
    first = [a.data for a in encode_renditions(frames, config)]
    with ThreadPoolExecutor(2) as pool:  # side by side, as alerts' stages may run
        again = list(pool.map(lambda _: [a.data for a in encode_renditions(frames, config)],
                              range(2)))
    assert again == [first, first]


def test_one_median_cut_is_no_worse_than_pillows_at_every_palette_size():
    from alertanim.pipeline.animate import GIF_COLOURS, _palettes

    frames = key_frames("astronaut", n=4, size=64, seed=10)
    clip = crossfade(frames, 3)
    strip = Image.new("RGB", (64, 64 * len(clip)))
    for i, f in enumerate(clip):
        strip.paste(f, (0, 64 * i))

    def error(palette):
        return np.mean([np.abs(np.asarray(f.quantize(palette=palette, dither=Image.Dither.NONE)
                                          .convert("RGB"), np.int16)
                               - np.asarray(f, np.int16)).mean() for f in clip])
    for colors, palette in _palettes(frames, GIF_COLOURS, 3, True).items():
        pillow = strip.quantize(colors=colors - 1, method=Image.Quantize.MEDIANCUT)
        assert error(palette) <= error(pillow) * 1.02, colors
