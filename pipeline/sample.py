"""Stage 3c: masked sampling — K inpainted variants of the best image inside the combined mask.

The inpainting pipeline is built over the text-to-image pipeline's own modules (one copy of the
UNet, VAE and text encoder). SD-1.5's 4-channel UNet inpaints by re-noising the original latents
outside the mask at every step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PIL import Image

from .generate import image_generators, step_callback


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

    out = inpaint(
        prompt=expand(prompts),
        image=expand(images),
        mask_image=expand(masks),
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


def masked_variants(inpaint, image: Image.Image, mask: Image.Image, prompt: str, *, k: int,
                    seed: int, **kwargs) -> list[Image.Image]:
    """K variants of one image (see `masked_variants_batch`)."""
    return masked_variants_batch(inpaint, [image], [mask], [prompt], [seed], k=k, **kwargs)[0]
