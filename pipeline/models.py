"""One loader for every model the method uses, by hub id, local directory or preset.

`from_pretrained` is the only way models come in, and weights come from safetensors only; the
default hub checkpoints are read at the commits `DEFAULT_REVISIONS` pins. The presets `tiny` (for
tests and the embedded default) and `random-full` (full-size architectures with random weights,
for GPU benchmarks) are built once from their configs, written with `save_pretrained`, and read
back through the same loader as a user's checkpoints.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from alertanim.schemas.errors import ModelsUnavailable

DEFAULT_IDS = {
    "sd": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "clip": "openai/clip-vit-base-patch32",
    "clipseg": "CIDAS/clipseg-rd64-refined",
    "vit": "google/vit-base-patch16-224",
}
# Each default checkpoint pinned to one commit of its hub repository, so that what is loaded is
# what was tested, not whatever is pushed there next. All four hold safetensors at these commits
# (CLIP's main has only a pickle: its commit is the hub's safetensors conversion of it).
DEFAULT_REVISIONS = {
    "sd": "451f4fe16113bff5a5d2269ed5ad43b0592e9a14",
    "clip": "c237dc49a33fc61debc9276459120b7eac67e7ef",
    "clipseg": "999e0328d9e10b484360c477313983f9afdd7050",
    "vit": "3f49326eb077187dfe1c2a2bb15fbd74e6ab91e3",
}
PRESETS = ("tiny", "random-full")
_PRESET_VERSION = "1"


PARTS = ("sd", "clip", "clipseg", "vit")  # the model families, as DEFAULT_IDS names them


@dataclass
class Models:
    """The loaded models. A worker that runs only some stages loads only the parts they use; the
    others are None."""

    text2img: object = None  # diffusers.StableDiffusionPipeline
    inpaint: object = None  # diffusers.StableDiffusionInpaintPipeline over the same modules
    clip: object = None
    clip_processor: object = None
    clipseg: object = None
    clipseg_processor: object = None
    vit: object = None
    vit_processor: object = None
    ids: dict[str, str] = field(default_factory=dict)
    image_size: int = 512
    latent_cell: int = 8  # pixels per latent cell: the grid a mask is read on when inpainting
    parts: tuple[str, ...] = PARTS
    fast_path: list[str] = field(default_factory=list)  # the execution levers applied


def resolve_device(device: str = "auto", dtype: str = "auto") -> tuple[str, torch.dtype]:
    """`auto` picks CUDA when present, and float16 there (float32 on a CPU)."""
    dev = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    if dtype == "auto":
        return dev, torch.float16 if dev.startswith("cuda") else torch.float32
    try:
        return dev, {"float32": torch.float32, "float16": torch.float16,
                     "bfloat16": torch.bfloat16}[dtype]
    except KeyError:
        raise ValueError(f"dtype {dtype!r} is not one of auto, float32, float16, bfloat16") from None


def deterministic() -> None:
    """Ask torch for deterministic kernels (a warning, not an error, where one has none). On a
    CPU the same seed then gives the same bytes; on a GPU, the same bytes for the same device,
    driver, library versions and batch shapes."""
    torch.use_deterministic_algorithms(True, warn_only=True)


def default_cache_dir() -> Path:
    root = os.environ.get("ALERTANIM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "alertanim")
    return Path(root)


def resolve_ids(source: str, cache_dir: Path | None = None) -> tuple[dict[str, str], int]:
    """Model ids (hub ids or local paths) and native image size for a `--models` value."""
    if source == "default":
        return dict(DEFAULT_IDS), 512
    if source in PRESETS:
        root = (cache_dir or default_cache_dir()) / f"{source}-v{_PRESET_VERSION}"
        if not (root / "alertanim.json").exists():
            from . import presets

            presets.build(source, root)
        source = str(root)
    root = Path(source)
    if not root.is_dir():
        raise ModelsUnavailable(
            f"--models {source!r} is neither 'default', a preset {PRESETS}, nor a directory "
            "(offline, --models tiny gives small random-weight models)")
    meta = json.loads((root / "alertanim.json").read_text()) if (root / "alertanim.json").exists() else {}
    ids = {name: str(root / name) for name in DEFAULT_IDS}
    return ids, int(meta.get("image_size", 512))


def load_models(
    source: str = "default",
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    cache_dir: Path | None = None,
    parts: Iterable[str] = PARTS,
) -> Models:
    """Load the models named in `parts` (all by default) onto `device`, as published: the
    execution levers are a separate step (`pipeline.accel.tune`)."""
    from diffusers import (AutoencoderKL, DPMSolverMultistepScheduler,
                           StableDiffusionInpaintPipeline, StableDiffusionPipeline)
    from transformers import (CLIPModel, CLIPProcessor, CLIPSegForImageSegmentation,
                              CLIPSegProcessor, ViTImageProcessor, ViTModel)

    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    wanted = set(parts)
    if wanted - set(PARTS):
        raise ValueError(f"unknown model parts {sorted(wanted - set(PARTS))}; choose from {PARTS}")
    parts = tuple(p for p in PARTS if p in wanted)
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    ids, size = resolve_ids(source, cache_dir)
    dtype = dtype or torch.float32
    m = Models(ids=ids, image_size=size, parts=parts)
    # The hub's checkpoints at their pinned commits; a directory (a preset, an export) as it is.
    # Weights are read from safetensors only, never unpickled.
    rev = {name: ({"revision": DEFAULT_REVISIONS[name]} if source == "default" else {})
           for name in PARTS}
    weights = {"use_safetensors": True}
    try:
        if "sd" in parts:
            m.text2img = StableDiffusionPipeline.from_pretrained(
                ids["sd"], torch_dtype=dtype, safety_checker=None, feature_extractor=None,
                requires_safety_checker=False, **rev["sd"], **weights)
        else:  # the mask is laid on the VAE's latent grid: its config says how coarse that is
            vae_config = AutoencoderKL.load_config(ids["sd"], subfolder="vae", **rev["sd"])
            m.latent_cell = 2 ** (len(vae_config["block_out_channels"]) - 1)
        if "clip" in parts:
            m.clip = CLIPModel.from_pretrained(ids["clip"], torch_dtype=dtype, **rev["clip"],
                                               **weights)
            m.clip_processor = CLIPProcessor.from_pretrained(ids["clip"], **rev["clip"])
        if "clipseg" in parts:
            m.clipseg = CLIPSegForImageSegmentation.from_pretrained(
                ids["clipseg"], torch_dtype=dtype, **rev["clipseg"], **weights)
            m.clipseg_processor = CLIPSegProcessor.from_pretrained(ids["clipseg"],
                                                                   **rev["clipseg"])
        if "vit" in parts:
            m.vit = ViTModel.from_pretrained(ids["vit"], torch_dtype=dtype,
                                             add_pooling_layer=False, **rev["vit"], **weights)
            m.vit_processor = ViTImageProcessor.from_pretrained(ids["vit"], **rev["vit"])
    except (OSError, ValueError) as exc:
        raise ModelsUnavailable(
            f"could not load the {source!r} models ({exc.__class__.__name__}: {exc}). "
            "Without network access or a local copy of the checkpoints, use --models tiny "
            "(small random-weight models of the same classes, built offline).") from exc
    if m.text2img is not None:
        sd = m.text2img
        sd.scheduler = DPMSolverMultistepScheduler.from_config(
            sd.scheduler.config, algorithm_type="dpmsolver++")
        sd.set_progress_bar_config(disable=True)
        sd.to(device)
        m.latent_cell = int(sd.vae_scale_factor)
        # The inpainting pipeline shares the text-to-image modules: one copy of the weights.
        m.inpaint = StableDiffusionInpaintPipeline(**sd.components, requires_safety_checker=False)
        m.inpaint.set_progress_bar_config(disable=True)
    for model in (m.clip, m.clipseg, m.vit):
        if model is not None:
            model.to(device).eval()
    return m


def export_models(models: Models, root: str | Path) -> Path:
    """Write `models` as a directory that `load_models(root)` reads: one place to mount in a
    container, made once where the model hub is reachable."""
    root = Path(root)
    if models.parts != PARTS:
        raise ValueError(f"export needs every model, these are only {models.parts}")
    models.text2img.save_pretrained(root / "sd")
    for name, model, processor in (("clip", models.clip, models.clip_processor),
                                   ("clipseg", models.clipseg, models.clipseg_processor),
                                   ("vit", models.vit, models.vit_processor)):
        model.save_pretrained(root / name)
        processor.save_pretrained(root / name)
    (root / "alertanim.json").write_text(json.dumps({"image_size": models.image_size,
                                                     "exported_from": models.ids}))
    return root
