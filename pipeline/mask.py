"""The mask stage (the seed's step 3b): the segmentation-based mask.

CLIPSeg's probability map for the subject → threshold → dilation, united with a seeded random mask
so that parts of the scene beyond the subject vary too. The random mask is laid on a grid of
`cell`-pixel squares matching the latent grid (8 px for SD's VAE): inpainting reads the mask at
latent resolution, where scattered single pixels would vanish.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .stage import Context, Kind, Port, Row, Stage, row_by_row

REFERENCE_SIDE = 512  # the image side the dilation setting is stated at


@dataclass(frozen=True)
class MaskResult:
    subject: np.ndarray  # bool H×W: CLIPSeg's subject mask after threshold and dilation
    combined: np.ndarray  # bool H×W: subject ∪ random
    probability: np.ndarray  # float32 H×W in [0, 1]

    @property
    def subject_coverage(self) -> float:
        return float(self.subject.mean())

    @property
    def coverage(self) -> float:
        return float(self.combined.mean())

    def image(self) -> Image.Image:
        return Image.fromarray(self.combined.astype(np.uint8) * 255, mode="L")


def subject_probability(clipseg, processor, image: Image.Image, subject: str) -> np.ndarray:
    inputs = processor(text=[subject], images=[image], return_tensors="pt", padding=True)
    device = clipseg.device
    with torch.inference_mode():
        logits = clipseg(input_ids=inputs["input_ids"].to(device),
                         attention_mask=inputs["attention_mask"].to(device),
                         pixel_values=inputs["pixel_values"].to(device, clipseg.dtype)).logits
    logits = logits.reshape(1, 1, *logits.shape[-2:]).float()
    w, h = image.size
    prob = torch.sigmoid(torch.nn.functional.interpolate(logits, size=(h, w), mode="bilinear"))
    return prob[0, 0].cpu().numpy()


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0:
        return mask
    t = torch.from_numpy(mask.astype(np.float32))[None, None]
    grown = torch.nn.functional.max_pool2d(t, 2 * radius + 1, stride=1, padding=radius)
    return grown[0, 0].numpy() > 0.5


def random_mask(shape: tuple[int, int], coverage: float, seed: int, cell: int = 8) -> np.ndarray:
    """Exactly round(coverage · cells) grid cells, chosen by `seed`."""
    if not 0.0 <= coverage <= 1.0:
        raise ValueError(f"coverage must be within [0, 1], got {coverage}")
    h, w = shape
    rows, cols = -(-h // cell), -(-w // cell)
    chosen = np.random.default_rng(seed).permutation(rows * cols)[: round(coverage * rows * cols)]
    grid = np.zeros(rows * cols, dtype=bool)
    grid[chosen] = True
    full = np.kron(grid.reshape(rows, cols), np.ones((cell, cell), dtype=bool))
    return full[:h, :w]


def subject_mask(
    clipseg,
    processor,
    image: Image.Image,
    subject: str,
    *,
    seed: int,
    threshold: float = 0.4,
    dilation: int = 8,
    random_coverage: float = 0.15,
    cell: int = 8,
) -> MaskResult:
    prob = subject_probability(clipseg, processor, image, subject)
    seg = dilate(prob >= threshold, dilation)
    rand = random_mask(seg.shape, random_coverage, seed, cell)
    return MaskResult(subject=seg, combined=seg | rand, probability=prob)


@dataclass(frozen=True)
class MaskCoverage:
    subject: float  # share of the image CLIPSeg found the subject in
    combined: float  # share of the image repainted: subject ∪ random


@row_by_row
def _run(ctx: Context, row: Row) -> dict:
    c, image = ctx.config, row["best"]
    result = subject_mask(
        ctx.models.clipseg, ctx.models.clipseg_processor, image, row["subject"].word,
        seed=row["seed"], threshold=c.mask_threshold,
        dilation=round(c.mask_dilation * image.width / REFERENCE_SIDE),
        random_coverage=c.random_coverage, cell=ctx.models.latent_cell)
    return {"mask": result.image(),
            "subject_mask": Image.fromarray(result.subject.astype(np.uint8) * 255, mode="L"),
            "mask_coverage": MaskCoverage(result.subject_coverage, result.coverage)}


STAGE = Stage("mask", _run, inputs=("best", "subject", "seed"),
              outputs=(Port("mask", Kind.MASK), Port("subject_mask", Kind.MASK),
                       Port("mask_coverage", Kind.VALUE, MaskCoverage)),
              components=("clipseg",),
              doc="CLIPSeg mask of the subject ∪ a seeded random mask on the latent grid")
