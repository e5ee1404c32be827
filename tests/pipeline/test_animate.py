import io
import random

import pytest
from PIL import Image, ImageSequence

from pipeline.animate import crossfade, encode_gif, encode_webp


def noisy_frames(n, size=96, seed=0):
    rng = random.Random(seed)
    return [Image.frombytes("RGB", (size, size), bytes(rng.randrange(256) for _ in range(size * size * 3)))
            for _ in range(n)]


def solid_frames(n, size=64):
    return [Image.new("RGB", (size, size), (40 * i, 255 - 30 * i, 100)) for i in range(n)]


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
    from pipeline.animate import _gif, _palette, crossfade, gif_ladder

    frames = noisy_frames(6)
    budget = len(encode_gif(frames, inbetween=2, max_bytes=10_000_000).data) // 3
    first_fit = None
    for colors, scale, t in gif_ladder(2):  # every rung encoded whole, in order
        size = (max(8, round(96 * scale)),) * 2
        keys = [f.resize(size, Image.Resampling.LANCZOS) for f in frames] if scale != 1 else frames
        clip = crossfade(keys, t)
        if len(_gif(clip, 120, _palette(frames, colors, 2, True))) <= budget:
            first_fit = (colors, size[0], len(clip))
            break
    got = encode_gif(frames, inbetween=2, max_bytes=budget)
    assert (got.colors, got.width, got.frame_count) == first_fit


def test_gif_sizes_rungs_from_a_probe_before_encoding_them_whole(monkeypatch):
    import pipeline.animate as animate

    whole = []
    real = animate._gif

    def spy(frames, frame_ms, palette):
        if len(frames) > animate.PROBE_FRAMES:
            whole.append(len(frames))
        return real(frames, frame_ms, palette)
    monkeypatch.setattr(animate, "_gif", spy)
    anim = animate.encode_gif(noisy_frames(8, size=128), inbetween=3, max_bytes=120_000)
    assert len(anim.data) <= 120_000 and anim.width < 128
    assert 1 <= len(whole) <= 2  # not one whole encode per rung walked past
