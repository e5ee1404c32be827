"""Stage 1: text → N candidate images, all in one batch, seeded."""

from __future__ import annotations

from collections.abc import Callable

import torch


def seeded_generator(device, seed: int) -> torch.Generator:
    return torch.Generator(device="cpu" if str(device).startswith("mps") else device).manual_seed(seed)


def step_callback(progress: Callable[[int, int], None] | None, total: int):
    """A diffusers `callback_on_step_end` reporting (step, total) to `progress`, or None."""
    if progress is None:
        return None

    def callback(pipe, step, timestep, kwargs):
        progress(min(step + 1, total), total)
        return kwargs
    return callback


def generate_candidates(
    text2img,
    prompt: str,
    *,
    n: int,
    seed: int,
    steps: int = 25,
    guidance: float = 7.5,
    size: int = 512,
    negative_prompt: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list:
    """`n` PIL candidates for `prompt` in one batched denoising loop."""
    out = text2img(
        prompt=prompt,
        negative_prompt=negative_prompt,
        num_images_per_prompt=n,
        num_inference_steps=steps,
        guidance_scale=guidance,
        height=size,
        width=size,
        generator=seeded_generator(text2img.device, seed),
        callback_on_step_end=step_callback(progress, steps),
        output_type="pil",
    )
    return list(out.images)
