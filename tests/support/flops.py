"""The method's arithmetic, counted without weights or a GPU: each model of a preset is built on
PyTorch's meta device from its config, torch.utils.flop_counter counts one call of each, and the
reference workload multiplies them out. `count_flops` counts a whole real run instead, to check
the sum against."""

from __future__ import annotations

import torch

from alertanim.pipeline.config import MethodConfig
from alertanim.pipeline.presets import _specs

H200_BF16_TFLOPS = 790.0
TOKENS = 77


def _count(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn()
    return float(counter.get_total_flops())


def per_call(preset: str) -> dict[str, float]:
    """FLOPs of one call of each model on one image (or one text)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import (CLIPConfig, CLIPModel, CLIPSegConfig, CLIPSegForImageSegmentation,
                              CLIPTextConfig, CLIPTextModel, ViTConfig, ViTModel)

    spec = _specs(preset, vocab=49408 if preset == "random-full" else 514)
    size, latent = spec["image_size"], spec["image_size"] // 2 ** (
        len(spec["vae"]["block_out_channels"]) - 1)
    with torch.device("meta"):
        unet = UNet2DConditionModel(**spec["unet"])
        vae = AutoencoderKL(**spec["vae"])
        text = CLIPTextModel(CLIPTextConfig(**spec["sd_text"]))
        clip = CLIPModel(CLIPConfig(**spec["clip"]))
        clipseg = CLIPSegForImageSegmentation(CLIPSegConfig(**spec["clipseg"]))
        vit = ViTModel(ViTConfig(**spec["vit"]), add_pooling_layer=False)
        ids = torch.zeros(1, TOKENS, dtype=torch.long)
        width = unet.config.cross_attention_dim
        return {
            "unet": _count(lambda: unet(torch.zeros(1, 4, latent, latent), 10,
                                        encoder_hidden_states=torch.zeros(1, TOKENS, width))),
            "vae_decode": _count(lambda: vae.decode(torch.zeros(1, 4, latent, latent))),
            "vae_encode": _count(lambda: vae.encode(torch.zeros(1, 3, size, size))),
            "text_encoder": _count(lambda: text(ids)),
            "clip_image": _count(lambda: clip.get_image_features(
                pixel_values=torch.zeros(1, 3, spec["clip_size"], spec["clip_size"]))),
            "clipseg": _count(lambda: clipseg(input_ids=ids, pixel_values=torch.zeros(
                1, 3, spec["clipseg_size"], spec["clipseg_size"]))),
            "vit": _count(lambda: vit(torch.zeros(1, 3, spec["vit_size"], spec["vit_size"]))),
        }


def workload(preset: str = "random-full", config: MethodConfig = MethodConfig()) -> dict:
    """FLOPs of one alert, by model: what each stage calls, and how many times."""
    one = per_call(preset)
    cfg = 2 if config.guidance > 1 else 1  # guidance runs every row twice
    sample_steps = int(config.steps * config.strength)
    calls = {
        "unet": cfg * (config.candidates * config.steps + config.variants * sample_steps),
        "vae_decode": config.candidates + config.variants,
        "vae_encode": 1,  # the best image, once for all its variants
        "text_encoder": cfg * (config.candidates + config.variants),
        "clip_image": config.candidates,
        "clipseg": 1,
        "vit": 1 + config.variants,
    }
    flops = {name: one[name] * n for name, n in calls.items()}
    return {"per_call": one, "calls": calls, "flops": flops, "total": sum(flops.values())}


def count_flops(models, config, text) -> float:
    """FLOPs of one whole alert as it really runs: `run_workflow` under the counter."""
    from torch.utils.flop_counter import FlopCounterMode

    from alertanim.pipeline.workflow import run_workflow

    counter = FlopCounterMode(display=False)
    with counter:
        run_workflow(models, text, seed=0, config=config)
    return float(counter.get_total_flops())
