import numpy as np
import pytest
from PIL import Image

from alertanim.pipeline.mask import dilate, random_mask, subject_mask, subject_probability


@pytest.mark.parametrize("shape, cell", [((512, 512), 8), ((64, 64), 2), ((100, 60), 8)])
def test_random_mask_covers_fifteen_percent(shape, cell):
    mask = random_mask(shape, 0.15, seed=7, cell=cell)
    assert mask.shape == shape
    assert abs(mask.mean() - 0.15) <= 0.02


def test_random_mask_is_seeded_and_on_the_latent_grid():
    a, b, c = (random_mask((64, 64), 0.15, s, cell=8) for s in (1, 1, 2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    cells = a.reshape(8, 8, 8, 8).transpose(0, 2, 1, 3).reshape(64, 64)
    assert set(np.unique(cells.mean(axis=1))) <= {0.0, 1.0}, "each 8×8 cell is all in or all out"


def test_dilation_grows_a_point_into_a_square():
    m = np.zeros((9, 9), dtype=bool)
    m[4, 4] = True
    grown = dilate(m, 2)
    assert grown.sum() == 25 and grown[2:7, 2:7].all()


def test_blank_subject_mask_leaves_the_random_fifteen_percent(tiny):
    image = Image.new("RGB", (64, 64), (120, 80, 40))
    # threshold above 1: CLIPSeg's map selects nothing, so only the random mask remains
    result = subject_mask(tiny.clipseg, tiny.clipseg_processor, image, "fire", seed=3,
                          threshold=1.01, dilation=2, cell=tiny.latent_cell)
    assert result.subject_coverage == 0.0
    assert abs(result.coverage - 0.15) <= 0.02
    assert result.probability.shape == (64, 64)
    assert 0.0 <= result.probability.min() <= result.probability.max() <= 1.0


def test_subject_mask_unites_segmentation_and_random(tiny):
    image = Image.new("RGB", (64, 64), (200, 30, 30))
    prob = subject_probability(tiny.clipseg, tiny.clipseg_processor, image, "fire")
    # random weights: a threshold at the map's median makes the segmentation about half the image
    result = subject_mask(tiny.clipseg, tiny.clipseg_processor, image, "fire", seed=3,
                          threshold=float(np.median(prob)), dilation=0, cell=tiny.latent_cell)
    assert np.array_equal(result.probability, prob)
    assert 0.3 <= result.subject_coverage <= 0.7
    assert (result.combined >= result.subject).all()
    assert result.coverage >= result.subject_coverage
    assert result.image().mode == "L" and result.image().size == (64, 64)
