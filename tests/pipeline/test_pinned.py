"""Seeded output pinned, as diffusers pins `expected_slice`: a silent change to seeding,
scheduling or the preset's weights fails here, not in a user's animation."""

import numpy as np
from PIL import Image

from alertanim.pipeline.generate import generate_candidates
from alertanim.pipeline.sample import masked_variants

TOLERANCE = 2  # 8-bit levels: rounding across CPUs and library versions, not a change of method

CANDIDATE_SLICE = [146, 85, 110, 138, 75, 150, 94, 132, 123, 138, 107, 99, 139, 112, 122, 103,
                   155, 92, 122, 87, 67, 101, 122, 88, 107, 164, 96]
VARIANT_SLICE = [255, 191, 45, 255, 167, 42, 255, 29, 0, 193, 255, 18, 184, 255, 72, 255, 240, 0,
                 124, 255, 10, 46, 203, 0, 199, 255, 43]


def close(got, want) -> bool:
    return int(np.abs(np.asarray(got, np.int16) - np.asarray(want, np.int16)).max()) <= TOLERANCE


def test_a_tiny_candidate_and_variant_at_a_fixed_seed(tiny):
    candidates = generate_candidates(tiny.text2img, "A fire has broken out in the building", n=2,
                                     seed=7, steps=3, size=64)
    got = np.asarray(candidates[1])[28:31, 30:33].reshape(-1)
    assert close(got, CANDIDATE_SLICE), got.tolist()

    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    variants = masked_variants(tiny.inpaint, candidates[1], mask, "fire", k=2, seed=8, steps=4)
    got = np.asarray(variants[1])[30:33, 30:33].reshape(-1)
    assert close(got, VARIANT_SLICE), got.tolist()
