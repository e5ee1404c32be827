import io
import json
import subprocess
import sys

import pytest
from PIL import Image

from alertanim.pipeline.config import MethodConfig
from alertanim.pipeline.models import ModelsUnavailable, load_models
from alertanim.pipeline.workflow import run_workflow

SMALL = MethodConfig(candidates=3, variants=4, frames=3, inbetween=1, steps=3)


def test_tiny_models_are_the_default_classes_loaded_from_disk(tiny, model_cache):
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline
    from transformers import CLIPModel, CLIPSegForImageSegmentation, ViTModel

    assert isinstance(tiny.text2img, StableDiffusionPipeline)
    assert isinstance(tiny.inpaint, StableDiffusionInpaintPipeline)
    assert isinstance(tiny.clip, CLIPModel)
    assert isinstance(tiny.clipseg, CLIPSegForImageSegmentation)
    assert isinstance(tiny.vit, ViTModel)
    assert all(str(model_cache) in path for path in tiny.ids.values())
    assert type(tiny.text2img.scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert tiny.text2img.scheduler.config.algorithm_type == "dpmsolver++"


def test_inpainting_shares_the_text_to_image_weights(tiny):
    for name in ("unet", "vae", "text_encoder", "tokenizer"):
        assert getattr(tiny.inpaint, name) is getattr(tiny.text2img, name)


def test_missing_real_checkpoint_names_the_tiny_preset(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelsUnavailable, match="--models tiny"):
        load_models("default")


def test_not_a_directory_is_refused():
    with pytest.raises(ModelsUnavailable, match="neither"):
        load_models("/no/such/models")


def test_generate_batches_candidates_at_native_size(tiny):
    from alertanim.pipeline.generate import generate_candidates

    images = generate_candidates(tiny.text2img, "fire", n=4, seed=1, steps=2, size=64)
    assert len(images) == 4 and all(i.size == (64, 64) for i in images)
    again = generate_candidates(tiny.text2img, "fire", n=4, seed=1, steps=2, size=64)
    assert [i.tobytes() for i in images] == [i.tobytes() for i in again]
    other = generate_candidates(tiny.text2img, "fire", n=4, seed=2, steps=2, size=64)
    assert images[0].tobytes() != other[0].tobytes()


def test_masked_sampling_changes_only_inside_the_mask_region(tiny):
    import numpy as np

    from alertanim.pipeline.sample import masked_variants

    image = Image.new("RGB", (64, 64), (90, 140, 200))
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[:, :32] = 255
    variants = masked_variants(tiny.inpaint, image, Image.fromarray(mask, "L"), "fire", k=3,
                               seed=0, steps=4)
    assert len(variants) == 3
    a = np.asarray(variants[0], dtype=np.int16)
    b = np.asarray(variants[1], dtype=np.int16)
    left = np.abs(a[:, :28] - b[:, :28]).mean()
    right = np.abs(a[:, 36:] - b[:, 36:]).mean()
    assert left > right, "variants differ where masked more than where kept"


def test_each_alert_image_is_encoded_once_for_all_its_variants(tiny):
    import numpy as np

    from alertanim.pipeline.sample import encode_images, masked_variants_batch

    encoder = tiny.inpaint.vae.encoder
    rows = []
    hook = encoder.register_forward_pre_hook(lambda mod, args: rows.append(args[0].shape[0]))
    images = [Image.new("RGB", (64, 64), c) for c in ((90, 140, 200), (200, 60, 20))]
    masks = [Image.new("L", (64, 64), 255)] * 2
    try:
        out = masked_variants_batch(tiny.inpaint, images, masks, ["fire", "flood"], [1, 2], k=3,
                                    steps=4)
    finally:
        hook.remove()
    assert [len(v) for v in out] == [3, 3]
    assert sum(rows) == 2  # not 2 alerts × 3 variants × 2 (image and "masked image") = 12
    # a fully kept region comes back as the image: the latents really are each alert's own
    kept = masked_variants_batch(tiny.inpaint, images, [Image.new("L", (64, 64), 0)] * 2,
                                 ["fire", "flood"], [1, 2], k=1, steps=4)
    decoded = tiny.inpaint.image_processor.postprocess(
        tiny.inpaint.vae.decode(encode_images(tiny.inpaint, images)
                                / tiny.inpaint.vae.config.scaling_factor).sample.detach())
    other = [decoded[1], decoded[0]]
    for got, want, wrong in zip(kept, decoded, other):
        assert np.abs(np.asarray(got[0], np.int16) - np.asarray(want, np.int16)).max() <= 2
        assert np.abs(np.asarray(got[0], np.int16) - np.asarray(wrong, np.int16)).max() > 20


def test_workflow_returns_every_artifact(tiny):
    events = []
    result = run_workflow(tiny, "A fire has broken out in the building", seed=5, config=SMALL,
                          progress=lambda stage, done, total: events.append(stage))
    assert len(result.candidates) == 3 and len(result.variants) == 4
    assert result.best_image is result.candidates[result.scores.best_index]
    assert result.path.indices[0] == 0 and len(result.frames) == 3
    gif = Image.open(io.BytesIO(result.gif.data))
    assert gif.n_frames == result.gif.frame_count == 3 + 3 * 1
    summary = result.summary()
    assert summary["subject"] == "fire"
    assert set(summary["seconds"]) == {"subject", "generate", "score", "mask", "sample",
                                       "select", "animate", "total"}
    assert summary["gif"]["bytes"] == len(result.gif.data)
    assert {"generate", "sample", "animate"} <= set(events)
    json.dumps(summary)


def test_same_seed_same_bytes(tiny):
    a = run_workflow(tiny, "Flood warning", seed=11, config=SMALL)
    b = run_workflow(tiny, "Flood warning", seed=11, config=SMALL)
    c = run_workflow(tiny, "Flood warning", seed=12, config=SMALL)
    assert a.gif.data == b.gif.data
    assert a.gif.data != c.gif.data


def test_cli_run_writes_gif_and_summary(tmp_path, model_cache):
    out = tmp_path / "fire.gif"
    proc = subprocess.run(
        [sys.executable, "-m", "alertanim.agents.cli", "run", "서울 강남구 화재 발생, 대피하세요",
         "--models", "tiny", "--out", str(out), "--json", "--candidates", "3", "--variants", "4",
         "--frames", "3", "--steps", "3"],
        capture_output=True, text=True, timeout=300, check=True)
    summary = json.loads(proc.stdout)
    assert summary["subject"] == "fire"
    assert summary["hazard"] == "fire" and summary["language"] == "ko"
    assert summary["prompt"].isascii() and "fire" in summary["prompt"]
    with Image.open(out) as gif:
        assert gif.n_frames == summary["gif"]["frames"]
    assert out.stat().st_size == summary["gif"]["bytes"] <= 300_000


def test_the_subject_stage_reads_event_codes_and_language(tiny):
    from alertanim.pipeline.workflow import run_workflow_batch

    runs = run_workflow_batch(
        tiny, ["Take shelter now.", "Alerta: incendio forestal cerca de la autopista", "Hello"],
        [0, 0, 0], events=[None, None, None], languages=[None, "es", "en"],
        event_codes=[[("SAME", "TOR")], [], []], names=["subject"])
    tornado, wildfire, nothing = (r.subject for r in runs)
    assert (tornado.hazard, tornado.source, tornado.matched) == ("tornado", "event_code",
                                                                 "TOR")
    assert wildfire.hazard == "wildfire" and wildfire.language == "es"
    assert wildfire.prompt.isascii() and "incendio" not in wildfire.prompt
    assert nothing.hazard is None and nothing.source == "none"


def test_cli_refuses_a_malformed_event_code(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "alertanim.agents.cli", "run", "Take shelter", "--event-code", "TOR",
         "--models", "tiny", "--out", str(tmp_path / "x.gif")],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "event_codes" in proc.stderr
    assert not (tmp_path / "x.gif").exists()


def test_cli_without_checkpoints_exits_with_a_message(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "alertanim.agents.cli", "run", "fire", "--out", str(tmp_path / "x.gif")],
        capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "HF_HOME": str(tmp_path)})
    assert proc.returncode == 2
    assert "--models tiny" in proc.stderr


def test_exported_directory_loads_and_gives_the_same_images(tiny, tmp_path):
    from alertanim.pipeline.generate import generate_candidates
    from alertanim.pipeline.models import export_models

    export_models(tiny, tmp_path / "models")
    again = load_models(str(tmp_path / "models"))
    assert again.image_size == tiny.image_size
    assert all(path.startswith(str(tmp_path)) for path in again.ids.values())
    a = generate_candidates(tiny.text2img, "fire", n=2, seed=4, steps=2, size=64)
    b = generate_candidates(again.text2img, "fire", n=2, seed=4, steps=2, size=64)
    assert [i.tobytes() for i in a] == [i.tobytes() for i in b]


def test_random_full_preset_has_the_published_architectures():
    """Parameter counts of the default checkpoints (SD-1.5 UNet/VAE/CLIP-L text encoder, CLIP
    ViT-B/32, CLIPSeg rd64-refined, ViT-B/16 without its classifier), built on the meta device."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import (CLIPConfig, CLIPModel, CLIPSegConfig, CLIPSegForImageSegmentation,
                              CLIPTextConfig, CLIPTextModel, ViTConfig, ViTModel)

    from alertanim.pipeline.presets import _specs

    spec = _specs("random-full", vocab=514)

    def params(model):
        return sum(p.numel() for p in model.parameters())

    with torch.device("meta"):
        assert params(UNet2DConditionModel(**spec["unet"])) == 859_520_964
        assert params(AutoencoderKL(**spec["vae"])) == 83_653_863
        assert params(CLIPTextModel(CLIPTextConfig(**spec["sd_text"]))) == 123_060_480
        assert params(CLIPModel(CLIPConfig(**spec["clip"]))) == 151_277_313
        assert params(CLIPSegForImageSegmentation(CLIPSegConfig(**spec["clipseg"]))) == 150_747_746
        assert params(ViTModel(ViTConfig(**spec["vit"]), add_pooling_layer=False)) == 85_798_656
    assert spec["image_size"] == 512 and spec["clipseg_size"] == 352


def test_alerts_batched_together_get_their_own_images(tiny):
    import numpy as np

    from alertanim.pipeline.generate import generate_batch, generate_candidates
    from alertanim.pipeline.sample import masked_variants, masked_variants_batch

    prompts, seeds = ["fire in a building", "flood in the street"], [3, 9]
    batched = generate_batch(tiny.text2img, prompts, seeds, n=3, steps=3, size=64)
    for prompt, seed, images in zip(prompts, seeds, batched):
        alone = generate_candidates(tiny.text2img, prompt, n=3, seed=seed, steps=3, size=64)
        for a, b in zip(images, alone):
            diff = np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16))
            assert diff.max() <= 2, "batching changes an alert's images only by rounding"
    assert batched[0][0].tobytes() != batched[1][0].tobytes()

    masks = [Image.new("L", (64, 64), 255), Image.new("L", (64, 64), 0)]
    masks[1].paste(255, (0, 0, 32, 64))
    many = masked_variants_batch(tiny.inpaint, [batched[0][0], batched[1][0]], masks, prompts,
                                 seeds, k=2, steps=3)
    assert [len(v) for v in many] == [2, 2]
    alone = masked_variants(tiny.inpaint, batched[1][0], masks[1], prompts[1], k=2, seed=seeds[1],
                            steps=3)
    diff = np.abs(np.asarray(many[1][1], np.int16) - np.asarray(alone[1], np.int16))
    assert diff.max() <= 2


def test_workflow_batch_gives_each_alert_what_it_gets_alone(tiny):
    import numpy as np

    from alertanim.pipeline.accel import psnr
    from alertanim.pipeline.workflow import run_workflow, run_workflow_batch

    config = MethodConfig(candidates=3, variants=4, frames=3, inbetween=1, steps=3)
    texts, seeds = ["A fire has broken out in the building", "Flash flood in the river district"], [7, 8]
    batch = run_workflow_batch(tiny, texts, seeds, config=config)
    assert [r.subject.word for r in batch] == ["fire", "flood"]
    for text, seed, got in zip(texts, seeds, batch):
        alone = run_workflow(tiny, text, seed=seed, config=config)
        for a, b in zip(got.candidates, alone.candidates):
            assert np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max() <= 2
        # a rounding-level change can flip a mask pixel at the threshold, so variants are
        # compared as a whole
        assert psnr(alone.variants, got.variants) >= 35
        assert got.scores.best_index == alone.scores.best_index
        assert got.gif.frame_count == alone.gif.frame_count
        assert set(got.seconds) == set(alone.seconds) >= {"generate", "sample", "animate", "total"}
        assert got.seconds["total"] >= got.seconds["generate"] + got.seconds["animate"]


def test_a_role_loads_only_the_models_its_stages_use(tiny, model_cache, tmp_path):
    from alertanim.pipeline.mask import STAGE as MASK
    from alertanim.pipeline.models import export_models
    from alertanim.pipeline.stage import Context

    only = load_models("tiny", cache_dir=model_cache, parts={"clipseg"})
    assert only.parts == ("clipseg",)
    assert only.text2img is None and only.inpaint is None and only.clip is None and only.vit is None
    # the mask still lands on the latent grid, read from the VAE's config without its weights
    assert only.latent_cell == tiny.latent_cell > 1
    image = Image.new("RGB", (64, 64), (200, 40, 10))
    from alertanim.pipeline.subject import primary_subject

    row = {"best": image, "subject": primary_subject("fire"), "seed": 3}
    [a] = MASK.run(Context(only, MethodConfig()), [row])
    [b] = MASK.run(Context(tiny, MethodConfig()), [row])
    assert a["mask"].tobytes() == b["mask"].tobytes()
    with pytest.raises(ValueError, match="unknown model parts"):
        load_models("tiny", cache_dir=model_cache, parts={"sd", "unet"})
    with pytest.raises(ValueError, match="every model"):
        export_models(only, tmp_path / "partial")


def test_a_role_loads_the_parts_its_stages_declare(tmp_path):
    from alertanim.agents.host import ModelHost
    from alertanim.agents.settings import Settings
    from alertanim.agents.topology import parse_stages

    def parts(stages):
        settings = Settings(store="local", local_dir=str(tmp_path), models="tiny", stages=stages)
        host = ModelHost(settings, parse_stages(stages))
        return host.models().parts if host.needed else ()

    assert parts("select,animate") == ("clip", "vit")  # CLIP scores the key frames
    assert parts("mask,sample") == ("sd", "clipseg")
    assert parts("generate,score") == ("sd", "clip")
    assert parts("all") == ("sd", "clip", "clipseg", "vit")
    assert parts("ingest,subject") == ()  # a CPU role loads nothing
