"""Random-weight model presets, written with `save_pretrained` so they load like real checkpoints.

- `tiny`: the same classes as the defaults at a few thousand parameters, 64² images; runs the
  whole method on a CPU in about a second. Tests and the embedded default use it.
- `random-full`: the default checkpoints' architectures at full size (SD-1.5 UNet/VAE/CLIP-L text
  encoder, CLIP ViT-B/32, CLIPSeg rd64, ViT-B/16), random weights: the real FLOPs, for benchmarks.

Both use a byte-level CLIP tokenizer whose files are written here (no download): every UTF-8 byte
is a token, so Korean and emoji tokenize as they would with a real byte-level BPE.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import torch

BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2 / CLIP byte ↔ printable-unicode table.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def write_tokenizer_files(path: Path) -> int:
    """vocab.json + merges.txt of a byte-level CLIP BPE; returns the vocabulary size."""
    chars = list(_bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + [BOS, EOS]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)},
                                                ensure_ascii=False))
    (path / "merges.txt").write_text("#version: 0.2\n")
    return len(tokens)


def _tokenizer(tmp: Path):
    from transformers import CLIPTokenizer

    write_tokenizer_files(tmp)
    return CLIPTokenizer.from_pretrained(tmp, bos_token=BOS, eos_token=EOS, pad_token=EOS,
                                         unk_token=EOS, model_max_length=77)


def _specs(name: str, vocab: int) -> dict:
    eos, bos = vocab - 1, vocab - 2
    if name == "tiny":
        text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                    vocab_size=vocab, max_position_embeddings=77, bos_token_id=bos,
                    eos_token_id=eos, pad_token_id=eos, projection_dim=16)
        vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, image_size=32, patch_size=8, projection_dim=16)
        return dict(
            image_size=64,
            unet=dict(block_out_channels=(8, 16), layers_per_block=1, sample_size=32,
                      in_channels=4, out_channels=4, norm_num_groups=4,
                      down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                      up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                      cross_attention_dim=32, attention_head_dim=4),
            vae=dict(block_out_channels=(8, 16), in_channels=3, out_channels=3,
                     down_block_types=("DownEncoderBlock2D",) * 2,
                     up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4,
                     norm_num_groups=4, layers_per_block=1, sample_size=64),
            sd_text=text,
            clip=dict(text_config=text, vision_config=vision, projection_dim=16),
            clipseg=dict(text_config=text, vision_config=vision, projection_dim=16, reduce_dim=16,
                         extract_layers=(0, 1), decoder_num_attention_heads=4,
                         decoder_intermediate_size=32, conditional_layer=0),
            clipseg_size=32,
            vit=dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=4, intermediate_size=64),
            vit_size=32,
            clip_size=32,
        )
    if name == "random-full":
        # Published configs of the default checkpoints, with the tokenizer ids ours.
        ids = dict(vocab_size=49408, bos_token_id=bos, eos_token_id=eos, pad_token_id=eos,
                   max_position_embeddings=77)
        return dict(
            image_size=512,
            unet=dict(sample_size=64, cross_attention_dim=768, attention_head_dim=8,
                      block_out_channels=(320, 640, 1280, 1280), layers_per_block=2),
            vae=dict(block_out_channels=(128, 256, 512, 512), in_channels=3, out_channels=3,
                     down_block_types=("DownEncoderBlock2D",) * 4,
                     up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4,
                     layers_per_block=2, sample_size=512),
            sd_text=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                         num_attention_heads=12, projection_dim=768, hidden_act="quick_gelu",
                         **ids),
            clip=dict(text_config=dict(**ids), vision_config=dict(patch_size=32, image_size=224),
                      projection_dim=512),
            clipseg=dict(text_config=dict(**ids), vision_config=dict(patch_size=16, image_size=224),
                         projection_dim=512, reduce_dim=64, use_complex_transposed_convolution=True),
            clipseg_size=352,
            vit=dict(),
            vit_size=224,
            clip_size=224,
        )
    raise ValueError(f"unknown preset {name!r}")


def build(name: str, root: Path) -> None:
    """Write preset `name` under `root` (atomically: a half-written preset is never loaded)."""
    from diffusers import (AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline,
                           UNet2DConditionModel)
    from transformers import (CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPSegConfig,
                              CLIPSegForImageSegmentation, CLIPSegProcessor, CLIPConfig,
                              CLIPTextConfig, CLIPTextModel, ViTConfig, ViTImageProcessor,
                              ViTModel)

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        tok = _tokenizer(tmp / "tokenizer-src")
        spec = _specs(name, len(tok))
        torch.manual_seed(0)
        scheduler = DPMSolverMultistepScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
            algorithm_type="dpmsolver++", steps_offset=1)
        sd = StableDiffusionPipeline(
            vae=AutoencoderKL(**spec["vae"]), unet=UNet2DConditionModel(**spec["unet"]),
            text_encoder=CLIPTextModel(CLIPTextConfig(**spec["sd_text"])), tokenizer=tok,
            scheduler=scheduler, safety_checker=None, feature_extractor=None,
            requires_safety_checker=False)
        sd.save_pretrained(tmp / "sd")

        def square(n):
            return dict(size={"height": n, "width": n}, crop_size={"height": n, "width": n})

        clip_img = CLIPImageProcessor(size={"shortest_edge": spec["clip_size"]},
                                      crop_size={"height": spec["clip_size"],
                                                 "width": spec["clip_size"]})
        CLIPModel(CLIPConfig(**spec["clip"])).save_pretrained(tmp / "clip")
        CLIPProcessor(image_processor=clip_img, tokenizer=tok).save_pretrained(tmp / "clip")
        seg_size = spec["clipseg_size"]
        CLIPSegForImageSegmentation(CLIPSegConfig(**spec["clipseg"])).save_pretrained(
            tmp / "clipseg")
        CLIPSegProcessor(image_processor=ViTImageProcessor(**square(seg_size)),
                         tokenizer=tok).save_pretrained(tmp / "clipseg")
        ViTModel(ViTConfig(**spec["vit"]), add_pooling_layer=False).save_pretrained(tmp / "vit")
        ViTImageProcessor(**square(spec["vit_size"])).save_pretrained(tmp / "vit")
        shutil.rmtree(tmp / "tokenizer-src")
        (tmp / "alertanim.json").write_text(json.dumps({"preset": name,
                                                        "image_size": spec["image_size"]}))
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
