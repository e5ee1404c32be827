"""The generate stage (the seed's step 1): text → N candidate images, all in one batch, seeded.

Every image has its own generator, seeded from (alert seed, image index), so an alert's
candidates come out the same whether it runs alone or batched with other alerts. What reaches the
text encoder is the prompt fitted to its tokenizer (`subject.fit_prompt`): the hazard's scene
first, then as much of the alert's words as fits, so the encoder never cuts the scene off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .stage import Context, Kind, Port, Row, Stage
from .subject import fit_prompt


def seeded_generator(device, seed: int) -> torch.Generator:
    return torch.Generator(device="cpu" if str(device).startswith("mps") else device).manual_seed(seed)


def image_generators(device, seeds: Sequence[int], per_seed: int) -> list[torch.Generator]:
    return [seeded_generator(device, seed * 1024 + i) for seed in seeds for i in range(per_seed)]


def step_callback(progress: Callable[[int, int], None] | None, total: int):
    """A diffusers `callback_on_step_end` reporting (step, total) to `progress`, or None."""
    if progress is None:
        return None

    def callback(pipe, step, timestep, kwargs):
        progress(min(step + 1, total), total)
        return kwargs
    return callback


def fit_prompts(pipe, prompts: Sequence[str]) -> list[str]:
    """The prompts as a diffusers pipeline's text encoder should read them: each within its
    tokenizer's token limit, the scene first (`subject.fit_prompt`)."""
    tokenizer = getattr(pipe, "tokenizer", None)
    return [p if tokenizer is None else fit_prompt(p, tokenizer) for p in prompts]


def generate_batch(
    text2img,
    prompts: Sequence[str],
    seeds: Sequence[int],
    *,
    n: int,
    steps: int = 25,
    guidance: float = 7.5,
    size: int = 512,
    progress: Callable[[int, int], None] | None = None,
) -> list[list]:
    """`n` PIL candidates for each prompt, every alert's images in one denoising loop; each
    prompt fitted to the pipeline's tokenizer first (`fit_prompts`)."""
    # Expanded here rather than with num_images_per_prompt, so that image i of the batch lines up
    # with generator i whatever the number of alerts.
    out = text2img(
        prompt=[p for p in fit_prompts(text2img, prompts) for _ in range(n)],
        num_images_per_prompt=1,
        num_inference_steps=steps,
        guidance_scale=guidance,
        height=size,
        width=size,
        generator=image_generators(text2img.device, seeds, n),
        callback_on_step_end=step_callback(progress, steps),
        output_type="pil",
    )
    images = list(out.images)
    return [images[j * n:(j + 1) * n] for j in range(len(prompts))]


def generate_candidates(text2img, prompt: str, *, n: int, seed: int, **kwargs) -> list:
    """`n` PIL candidates for one prompt (see `generate_batch`)."""
    return generate_batch(text2img, [prompt], [seed], n=n, **kwargs)[0]


def _run(ctx: Context, rows: Sequence[Row]) -> list[dict]:
    c = ctx.config
    batches = generate_batch(ctx.models.text2img, [r["subject"].prompt for r in rows],
                             [r["seed"] for r in rows], n=c.candidates, steps=c.steps,
                             guidance=c.guidance, size=ctx.models.image_size,
                             progress=ctx.steps("generate"))
    return [{"candidates": images} for images in batches]


STAGE = Stage("generate", _run, inputs=("subject", "seed"),
              outputs=(Port("candidates", Kind.IMAGES),), components=("sd",), batched=True,
              doc="text → N candidate images, every alert of a batch in one denoising loop")
