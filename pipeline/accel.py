"""The fast path: execution changes that leave the method alone.

Nothing here changes a step count, the scheduler, the guidance scale or a seed; each lever only
changes how the same arithmetic runs, and the benchmark reports the PSNR of the result against
the fp32 reference at the same seed. On by default on CUDA (see `FastPath.auto`).

- fused QKV: one matmul for a self-attention's query, key and value (key and value for
  cross-attention) in the UNet and the VAE;
- channels_last: the memory layout the tensor cores' convolution kernels want;
- VAE slicing: decode a batch one image at a time, so peak memory no longer grows with the
  number of images decoded at once (a 512² decode at full batch is the largest activation);
- torch.compile of the UNet (optional: it takes minutes to compile each batch shape once, so it
  is worth it for a long-lived worker, not a one-off run).

The UNet and VAE are shared by the text-to-image and inpainting pipelines, so applying the fast
path once covers both; `Module.compile` compiles in place and keeps that sharing.
"""

from __future__ import annotations

from dataclasses import dataclass

COMPILE_MODES = ("off", "default", "max-autotune", "max-autotune-no-cudagraphs",
                 "reduce-overhead")


@dataclass(frozen=True)
class FastPath:
    fuse_qkv: bool = True
    channels_last: bool = True
    vae_slicing: bool = True
    compile: str = "off"  # one of COMPILE_MODES

    def __post_init__(self):
        if self.compile not in COMPILE_MODES:
            raise ValueError(f"compile mode {self.compile!r} is not one of {COMPILE_MODES}")

    @classmethod
    def off(cls) -> FastPath:
        return cls(fuse_qkv=False, channels_last=False, vae_slicing=False, compile="off")

    @classmethod
    def auto(cls, device, compile: str = "off") -> FastPath:
        """The default for a device: everything on CUDA; on a CPU only what costs nothing."""
        if str(device).startswith("cuda"):
            return cls(compile=compile)
        return cls(fuse_qkv=False, channels_last=False, vae_slicing=True, compile=compile)

    @classmethod
    def named(cls, name: str, device, compile: str = "off") -> FastPath:
        """`auto` (the device's default), `on` or `off`, as settings and the CLI spell it."""
        if name == "auto":
            return cls.auto(device, compile)
        if name == "on":
            return cls(compile=compile)
        if name == "off":
            if compile != "off":
                raise ValueError("compilation is part of the fast path: it needs fast path on")
            return cls.off()
        raise ValueError(f"fast path {name!r} is not one of auto, on, off")

    def describe(self) -> str:
        on = [name for name in ("fuse_qkv", "channels_last", "vae_slicing") if getattr(self, name)]
        if self.compile != "off":
            on.append(f"compile={self.compile}")
        return ",".join(on) or "off"


def apply_fast_path(text2img, fast: FastPath) -> list[str]:
    """Apply `fast` to a StableDiffusionPipeline's modules in place; returns what was applied."""
    import torch

    applied = []
    if fast.fuse_qkv:
        text2img.fuse_qkv_projections(unet=True, vae=True)
        applied.append("fuse_qkv")
    if fast.channels_last:
        for module in (text2img.unet, text2img.vae):
            module.to(memory_format=torch.channels_last)
        applied.append("channels_last")
    if fast.vae_slicing:
        text2img.vae.enable_slicing()
        applied.append("vae_slicing")
    if fast.compile != "off":
        # In place: the inpainting pipeline holds this same module object.
        text2img.unet.compile(mode=None if fast.compile == "default" else fast.compile,
                              fullgraph=False)
        applied.append(f"compile={fast.compile}")
    return applied


def tune(models, fast: FastPath):
    """Apply `fast` to loaded models (`pipeline.models.Models`) in place; returns them."""
    if models.text2img is not None:
        models.fast_path = apply_fast_path(models.text2img, fast)
    return models


def psnr(reference, other) -> float:
    """Peak signal-to-noise ratio in dB of 8-bit images `other` against `reference` (lists of
    equal-size PIL images, pooled); inf when identical."""
    import numpy as np

    a = np.stack([np.asarray(im, dtype=np.float64) for im in reference])
    b = np.stack([np.asarray(im, dtype=np.float64) for im in other])
    if a.shape != b.shape:
        raise ValueError(f"cannot compare images of shapes {a.shape} and {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * float(np.log10(255.0 ** 2 / mse))
