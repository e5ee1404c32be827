"""The animated WebP: its frames as libwebp's decoder (Pillow's) shows them, the blends the
decoder draws, and the container written here."""

import io
import struct

import numpy as np
import pytest
from PIL import Image

from alertanim.pipeline import webp
from alertanim.pipeline.animate import _changed, blend_levels, clip_length, crossfade, encode_webp
from tests.support.photos import key_frames
from tests.support.webp import shown, still


@pytest.fixture(scope="module")
def keys():
    return key_frames("chelsea", n=5, size=160, seed=3)


@pytest.mark.parametrize("inbetween, loop", [(3, True), (3, False), (1, True), (0, True),
                                             (5, False)])
def test_each_frame_is_the_crossfade_as_the_decoder_blends_it(keys, inbetween, loop):
    anim = encode_webp(keys, inbetween, frame_ms=90, loop=loop)
    clip = [np.asarray(f, dtype=float) for f in crossfade(keys, inbetween, loop)]
    frames = shown(anim.data)
    assert len(frames) == anim.frame_count == len(clip) == clip_length(len(keys), inbetween, loop)
    assert [d for _, d in frames] == [90] * len(clip)
    assert anim.duration_ms == 90 * len(clip)
    errors = [np.abs(got - want).mean() for (got, _), want in zip(frames, clip)]
    # lossy, but no further from each frame than a still of that frame at the same quality is:
    # a blend drawn at the wrong alpha is (a level or so in 255 more, on every in-between)
    stills = [np.abs(still(frame) - want).mean()
              for frame, want in zip(crossfade(keys, inbetween, loop), clip)]
    assert all(e <= 1.05 * s + 0.1 for e, s in zip(errors, stills)), (errors, stills)
    # an in-between is a blend, not its next key frame shown early
    pair = [np.abs(frames[1][0] - c).mean() for c in (clip[0], clip[1], clip[inbetween + 1])]
    if inbetween:
        assert pair[1] < min(pair[0], pair[2]), pair


def test_outside_the_changed_pixels_every_frame_is_the_first_decoded(keys):
    anim = encode_webp(keys, 3)
    _, inside = _changed([k.convert("RGB") for k in keys])
    assert 0.05 < inside.mean() < 0.95  # the photographs' variants are composited
    frames = [f for f, _ in shown(anim.data)]
    for f in frames[1:]:
        assert np.array_equal(f[~inside], frames[0][~inside])


def test_the_blend_levels_reach_each_step_of_the_fade():
    for inbetween in range(0, 17):
        levels = blend_levels(inbetween)
        assert len(levels) == inbetween
        canvas = 0.0  # the share of the next key frame on the canvas
        for s, level in enumerate(levels, start=1):
            canvas += (1 - canvas) * level / 255
            assert canvas == pytest.approx(s / (inbetween + 1), abs=1 / 255)


def test_a_frame_that_moves_nowhere_and_a_single_key():
    flat = Image.new("RGB", (33, 17), (10, 200, 30))
    anim = encode_webp([flat, flat.copy(), flat.copy()], 2)
    frames = shown(anim.data)
    assert len(frames) == anim.frame_count == 9
    assert all(np.array_equal(f, frames[0][0]) for f, _ in frames)
    one = encode_webp([flat], 2)
    assert one.frame_count == 1 and len(shown(one.data)) == 1


def test_a_change_at_an_odd_column_is_drawn():
    a = Image.new("RGB", (40, 30), (0, 0, 0))
    b = a.copy()
    b.paste((250, 250, 250), (3, 5, 9, 11))  # x from 3: the frame's box starts at 2
    frames = [f for f, _ in shown(encode_webp([a, b], 0, loop=False).data)]
    assert frames[1][5:11, 3:9].mean() > 200 and frames[1][:, :3].max() < 40
    assert np.abs(frames[1][20:, 20:] - frames[0][20:, 20:]).max() == 0


def test_an_alpha_chunk_decodes_to_its_plane():
    rng = np.random.default_rng(1)
    plane = (rng.integers(0, 4, (23, 31)) * 85).astype(np.uint8)  # odd sides, four levels
    alph = webp.alpha_chunk(Image.fromarray(plane))
    assert alph[:4] == b"ALPH" and alph[8] == webp.ALPH_LOSSLESS
    vp8 = webp.encode_still(Image.new("RGB", (31, 23), (90, 20, 200)), 80, 0)
    body = b"".join([b"WEBP", webp.chunk(b"VP8X", bytes([webp.VP8X_ALPHA, 0, 0, 0])
                                         + struct.pack("<I", 30)[:3] + struct.pack("<I", 22)[:3]),
                     alph, vp8])
    decoded = Image.open(io.BytesIO(b"RIFF" + struct.pack("<I", len(body)) + body))
    assert decoded.mode == "RGBA"
    assert np.array_equal(np.asarray(decoded)[..., 3], plane)


def test_the_container_is_checked():
    with pytest.raises(ValueError, match="not a WebP"):
        list(webp.chunks(b"GIF89a" + bytes(20)))
    with pytest.raises(ValueError, match="even"):
        webp.Frame(1, 0, 2, 2, 10, True, b"").anmf()
