"""The sample stage (the seed's step 3c): masked sampling — K inpainted variants of the best
image inside the combined mask.

The inpainting pipeline is built over the text-to-image pipeline's own modules (one copy of the
UNet, VAE and text encoder). SD-1.5's 4-channel UNet inpaints by re-noising the original latents
outside the mask at every step.

Each alert's image is encoded by the VAE once, to the mean of its latent distribution, and shared
by its K variants. Given PIL images, the pipeline would encode it twice per variant: once for
the latents it re-noises and once more for "masked image latents" that only 9-channel
inpainting UNets read. At 512² an encoding is about 1.1 TFLOP: 32 of them per alert would be
about 3.7% of the whole method's arithmetic, for nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from .composite import feathered_alpha, keep_static
from .generate import fit_prompts, image_generators, step_callback
from .mask import REFERENCE_SIDE
from .stage import Context, Kind, Port, Row, Stage

# The variants' noise is seeded apart from the candidates' (seed + 1), so that a variant never
# starts from the very noise its own image was made from.
VARIANT_SEED_OFFSET = 1


def masked_variants_batch(
    inpaint,
    images: Sequence[Image.Image],
    masks: Sequence[Image.Image],
    prompts: Sequence[str],
    seeds: Sequence[int],
    *,
    k: int,
    strength: float = 0.75,
    steps: int = 25,
    guidance: float = 7.5,
    progress: Callable[[int, int], None] | None = None,
) -> list[list[Image.Image]]:
    """K variants for each (image, mask, prompt), all alerts in one denoising loop."""
    def expand(items):
        return [x for x in items for _ in range(k)]

    if inpaint.unet.config.in_channels != 4:
        raise ValueError("masked sampling runs on the text-to-image UNet (4 latent channels), "
                         f"not one with {inpaint.unet.config.in_channels}")
    latents = encode_images(inpaint, images).repeat_interleave(k, dim=0)
    mask = torch.stack([torch.from_numpy(np.asarray(m.convert("L"), dtype=np.float32) / 255.0)[None]
                        for m in masks]).repeat_interleave(k, dim=0)
    out = inpaint(
        prompt=expand(fit_prompts(inpaint, prompts)),  # within the token limit, scene first
        image=latents,
        mask_image=mask,
        # read by 9-channel inpainting UNets only; given, it spares the pipeline an encoding
        masked_image_latents=torch.zeros_like(latents[:1]),
        num_images_per_prompt=1,
        strength=strength,
        num_inference_steps=steps,
        guidance_scale=guidance,
        height=images[0].height,
        width=images[0].width,
        generator=image_generators(inpaint.device, seeds, k),
        callback_on_step_end=step_callback(progress, max(1, int(steps * strength))),
        output_type="pil",
    )
    variants = list(out.images)
    return [variants[j * k:(j + 1) * k] for j in range(len(images))]


def encode_images(inpaint, images: Sequence[Image.Image]) -> torch.Tensor:
    """Scaled VAE latents (the distribution's mean) of `images`, one row per image."""
    vae = inpaint.vae
    pixels = inpaint.image_processor.preprocess(list(images), height=images[0].height,
                                                width=images[0].width)
    with torch.no_grad():
        dist = vae.encode(pixels.to(device=vae.device, dtype=vae.dtype)).latent_dist
    return dist.mode() * vae.config.scaling_factor


def masked_variants(inpaint, image: Image.Image, mask: Image.Image, prompt: str, *, k: int,
                    seed: int, **kwargs) -> list[Image.Image]:
    """K variants of one image (see `masked_variants_batch`)."""
    return masked_variants_batch(inpaint, [image], [mask], [prompt], [seed], k=k, **kwargs)[0]


def _run(ctx: Context, rows: Sequence[Row]) -> list[dict]:
    c = ctx.config
    batches = masked_variants_batch(
        ctx.models.inpaint, [r["best"] for r in rows], [r["mask"] for r in rows],
        [r["subject"].prompt for r in rows], [r["seed"] + VARIANT_SEED_OFFSET for r in rows],
        k=c.variants, strength=c.strength, steps=c.steps, guidance=c.guidance,
        progress=ctx.steps("sample"))
    if c.composite:
        batches = [keep_static(r["best"], variants, _alpha(r["mask"], c.feather))
                   for r, variants in zip(rows, batches)]
    return [{"variants": variants} for variants in batches]


def _alpha(mask: Image.Image, feather: int) -> np.ndarray:
    inside = np.asarray(mask.convert("L")) >= 128
    return feathered_alpha(inside, round(feather * mask.width / REFERENCE_SIDE))


STAGE = Stage("sample", _run, inputs=("best", "mask", "subject", "seed"),
              outputs=(Port("variants", Kind.IMAGES),), components=("sd",), batched=True,
              doc="K inpainted variants of the best image inside the mask, one loop per batch; "
                  "outside it they keep the best image's pixels")
