"""The fast path changes how the arithmetic runs, never the method: same seeds, same steps,
images within rounding of the plain path's."""

import pytest
from PIL import Image

from alertanim.pipeline.accel import COMPILE_MODES, FastPath, psnr, tune
from alertanim.pipeline.generate import generate_candidates
from alertanim.pipeline.models import load_models
from alertanim.pipeline.sample import masked_variants

FAITHFUL_DB = 50.0  # fp32 against fp32: only summation order differs


def test_psnr_is_inf_for_equal_images_and_falls_with_noise():
    import numpy as np

    rng = np.random.default_rng(0)
    a = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    noisy = np.clip(np.asarray(a, np.int16) + rng.integers(-3, 4, (32, 32, 3)), 0, 255)
    b = Image.fromarray(noisy.astype(np.uint8))
    very = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    assert psnr([a], [a]) == float("inf")
    assert 35 < psnr([a], [b]) < 50
    assert psnr([a], [very]) < psnr([a], [b])
    with pytest.raises(ValueError):
        psnr([a], [a.resize((16, 16))])


def test_fast_path_keeps_the_images_and_the_shared_modules(model_cache):
    plain = load_models("tiny", cache_dir=model_cache)
    fast = tune(load_models("tiny", cache_dir=model_cache),
                FastPath(fuse_qkv=True, channels_last=True, vae_slicing=True))
    assert plain.fast_path == [] and fast.fast_path == ["fuse_qkv", "channels_last",
                                                        "vae_slicing"]
    processors = {type(p).__name__ for p in fast.text2img.unet.attn_processors.values()}
    assert processors == {"FusedAttnProcessor2_0"}
    assert fast.inpaint.unet is fast.text2img.unet and fast.inpaint.vae is fast.text2img.vae

    a = generate_candidates(plain.text2img, "fire", n=3, seed=5, steps=3, size=64)
    b = generate_candidates(fast.text2img, "fire", n=3, seed=5, steps=3, size=64)
    assert psnr(a, b) >= FAITHFUL_DB
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    va = masked_variants(plain.inpaint, a[0], mask, "fire", k=2, seed=6, steps=3)
    vb = masked_variants(fast.inpaint, a[0], mask, "fire", k=2, seed=6, steps=3)
    assert psnr(va, vb) >= FAITHFUL_DB
    # and the comparison can tell: a different seed is far off
    other = generate_candidates(fast.text2img, "fire", n=3, seed=6, steps=3, size=64)
    assert psnr(a, other) < 30


def test_compiled_unet_stays_shared_and_faithful(model_cache):
    plain = tune(load_models("tiny", cache_dir=model_cache), FastPath.off())
    compiled = tune(load_models("tiny", cache_dir=model_cache),
                    FastPath(fuse_qkv=False, channels_last=False, vae_slicing=False,
                             compile="default"))
    assert compiled.fast_path == ["compile=default"]
    assert compiled.inpaint.unet is compiled.text2img.unet
    assert compiled.text2img.unet._compiled_call_impl is not None
    a = generate_candidates(plain.text2img, "fire", n=1, seed=2, steps=2, size=64)
    b = generate_candidates(compiled.text2img, "fire", n=1, seed=2, steps=2, size=64)
    assert psnr(a, b) >= FAITHFUL_DB


def test_fast_path_names_and_defaults():
    assert FastPath.named("auto", "cuda") == FastPath()
    assert FastPath.named("auto", "cuda:1", "max-autotune").compile == "max-autotune"
    cpu = FastPath.named("auto", "cpu")
    assert not cpu.fuse_qkv and not cpu.channels_last and cpu.vae_slicing
    assert FastPath.named("on", "cpu") == FastPath()
    assert FastPath.named("off", "cuda").describe() == "off"
    with pytest.raises(ValueError, match="fast path on"):
        FastPath.named("off", "cuda", "default")
    with pytest.raises(ValueError, match="auto, on, off"):
        FastPath.named("fastest", "cuda")
    with pytest.raises(ValueError, match="compile mode"):
        FastPath(compile="turbo")


def test_worker_settings_offer_the_same_compile_modes():
    import typing

    from alertanim.agents.settings import Settings

    assert typing.get_args(Settings.model_fields["compile"].annotation) == COMPILE_MODES
    assert Settings.model_fields["fast_path"].default == "auto"


def test_warm_up_runs_every_batch_shape_the_worker_will_see(tiny):
    from alertanim.pipeline.config import MethodConfig
    from alertanim.pipeline.graph import warm_up

    config = MethodConfig(candidates=3, variants=2)
    seen = []
    hook = tiny.text2img.unet.register_forward_pre_hook(lambda mod, args: seen.append(
        args[0].shape[0]))
    try:
        done = warm_up(tiny, config, range(1, 3))
    finally:
        hook.remove()
    assert done == [("generate", 1), ("sample", 1), ("generate", 2), ("sample", 2)]
    # guidance doubles each batch: candidates 3×b×2, variants 2×b×2
    assert set(seen) == {6, 4, 12, 8}
    assert warm_up(tiny, config, [1], names=("mask", "sample")) == [("sample", 1)]
