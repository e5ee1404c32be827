"""Stage 3c: masked sampling — K inpainted variants of the best image inside the combined mask.

The inpainting pipeline is built over the text-to-image pipeline's own modules (one copy of the
UNet, VAE and text encoder). SD-1.5's 4-channel UNet inpaints by re-noising the original latents
outside the mask at every step.
"""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image

from .generate import seeded_generator, step_callback


def masked_variants(
    inpaint,
    image: Image.Image,
    mask: Image.Image,
    prompt: str,
    *,
    k: int,
    seed: int,
    strength: float = 0.75,
    steps: int = 25,
    guidance: float = 7.5,
    progress: Callable[[int, int], None] | None = None,
) -> list[Image.Image]:
    out = inpaint(
        prompt=prompt,
        image=image,
        mask_image=mask,
        num_images_per_prompt=k,
        strength=strength,
        num_inference_steps=steps,
        guidance_scale=guidance,
        height=image.height,
        width=image.width,
        generator=seeded_generator(inpaint.device, seed),
        callback_on_step_end=step_callback(progress, max(1, int(steps * strength))),
        output_type="pil",
    )
    return list(out.images)
