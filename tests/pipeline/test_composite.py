"""Static parts stay still: outside the mask every key frame is the best image, bit for bit."""

import io

import numpy as np
import pytest
from PIL import Image, ImageSequence

from alertanim.pipeline.composite import feathered_alpha, keep_static, static_change
from alertanim.pipeline.config import MethodConfig
from alertanim.pipeline.workflow import run_workflow

SMALL = MethodConfig(candidates=2, variants=4, frames=3, inbetween=1, steps=3)


def disc(side=48, radius=14):
    y, x = np.mgrid[:side, :side]
    return (x - side / 2) ** 2 + (y - side / 2) ** 2 <= radius ** 2


@pytest.mark.parametrize("width", [0, 1, 3, 6])
def test_the_edge_is_feathered_inside_the_mask_only(width):
    mask = disc()
    alpha = feathered_alpha(mask, width)
    assert alpha.dtype == np.float32 and alpha.shape == mask.shape
    assert (alpha[~mask] == 0).all()  # outside: the best image's own pixels
    assert alpha[mask].min() == pytest.approx(1 / (width + 1))  # on the border: a little
    assert alpha[24, 24] == 1  # deep inside: the variant whole
    # no seam: from one pixel to its neighbour the weight moves by at most one ramp step
    steps = max(np.abs(np.diff(alpha, axis=0)).max(), np.abs(np.diff(alpha, axis=1)).max())
    assert steps <= 1 / (width + 1) + 1e-6


def test_the_image_border_is_not_an_edge():
    everything = np.ones((16, 16), bool)
    assert (feathered_alpha(everything, 4) == 1).all()
    assert (feathered_alpha(np.zeros((16, 16), bool), 4) == 0).all()


def test_keep_static_takes_the_best_outside_and_the_variant_inside():
    rng = np.random.default_rng(0)
    best = Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8))
    variant = Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8))
    mask = disc()
    [out] = keep_static(best, [variant], feathered_alpha(mask, 3))
    out, b, v = (np.asarray(im) for im in (out, best, variant))
    assert (out[~mask] == b[~mask]).all()
    assert (out[24, 24] == v[24, 24]).all()
    edge = mask & ~np.roll(mask, 1, axis=0)  # top border pixels of the disc
    assert not (out[edge] == v[edge]).all()  # blended there, not cut


def test_static_change_measures_outside_the_mask():
    a = Image.new("RGB", (8, 8), (10, 10, 10))
    b = a.copy()
    b.putpixel((0, 0), (40, 10, 10))  # inside the mask
    mask = np.zeros((8, 8), bool)
    mask[0, 0] = True
    assert static_change([a, b, a], mask, closed=True) == 0.0
    c = a.copy()
    c.putpixel((7, 7), (40, 40, 40))  # outside
    assert static_change([a, c], mask, closed=False) == pytest.approx(30 / 63)


def _outside(result) -> np.ndarray:
    return np.asarray(result.mask) < 128


def test_composited_key_frames_and_gif_frames_hold_still_outside_the_mask(tiny):
    result = run_workflow(tiny, "A fire has broken out in the building", seed=3, config=SMALL)
    outside = _outside(result)
    assert 0 < outside.mean() < 1
    best = np.asarray(result.best_image)
    for frame in result.frames:
        assert (np.asarray(frame)[outside] == best[outside]).all()
    assert result.motion.static == 0.0 and result.quality.static_change == 0.0
    # the GIF shows it: one palette and no dithering, so every shown frame agrees outside
    gif = Image.open(io.BytesIO(result.gif.data))
    shown = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(gif)]
    assert len(shown) == result.gif.frame_count
    assert all((f[outside] == shown[0][outside]).all() for f in shown[1:])


def test_without_compositing_the_background_shimmers_and_the_figure_says_so(tiny):
    plain = run_workflow(tiny, "A fire has broken out in the building", seed=3,
                         config=SMALL.model_copy(update={"composite": False}))
    outside = _outside(plain)
    best = np.asarray(plain.best_image)
    assert any((np.asarray(f)[outside] != best[outside]).any() for f in plain.frames[1:])
    assert plain.motion.static > 0
    assert plain.summary()["quality"]["static_change"] == round(plain.motion.static, 4)
