"""Stage 4c: the whole method in-process, every intermediate artifact kept.

The stream agents run the same stage functions one per process role; this module is the embedded
default and the reference the agents are tested against.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from PIL import Image

from .animate import MMS_BYTES, Animation, encode_gif, encode_webp
from .generate import generate_candidates
from .mask import MaskResult, subject_mask
from .models import Models
from .sample import masked_variants
from .score import PERCENT, Scores, clip_scores
from .select import FramePath, select_frames
from .subject import Subject, primary_subject

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class MethodConfig:
    """Every knob of the method; its hash names the artifacts a run produces."""

    candidates: int = 10
    variants: int = 16
    frames: int = 8
    inbetween: int = 3
    steps: int = 25
    guidance: float = 7.5
    strength: float = 0.75
    random_coverage: float = 0.15
    mask_threshold: float = 0.4
    mask_dilation: int = 8  # pixels at 512²; scaled with the image
    score_weight: float = PERCENT
    frame_ms: int = 120
    gif_max_bytes: int = MMS_BYTES
    loop: bool = True
    webp: bool = True

    def fingerprint(self) -> str:
        import hashlib
        import json

        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class WorkflowResult:
    text: str
    subject: Subject
    candidates: list[Image.Image]
    scores: Scores
    mask: MaskResult
    variants: list[Image.Image]
    path: FramePath
    frames: list[Image.Image]
    gif: Animation
    webp: Animation | None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def best_image(self) -> Image.Image:
        return self.candidates[self.scores.best_index]

    def summary(self) -> dict:
        return {
            "text": self.text,
            "subject": self.subject.word,
            "prompt": self.subject.prompt,
            "scores": [round(s, 4) for s in self.scores.values],
            "best_index": self.scores.best_index,
            "clip_score": round(self.scores.best, 4),
            "subject_mask_coverage": round(self.mask.subject_coverage, 4),
            "mask_coverage": round(self.mask.coverage, 4),
            # 0 is the best image, 1.. are the variants in generation order
            "selected_frames": list(self.path.indices),
            "path_cost": round(self.path.cost, 6),
            "gif": {"bytes": len(self.gif.data), "width": self.gif.width,
                    "height": self.gif.height, "frames": self.gif.frame_count,
                    "colors": self.gif.colors, "duration_ms": self.gif.duration_ms},
            "webp_bytes": len(self.webp.data) if self.webp else None,
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
        }


def run_stage_mask(models: Models, image: Image.Image, subject: str, config: MethodConfig,
                   seed: int) -> MaskResult:
    return subject_mask(
        models.clipseg, models.clipseg_processor, image, subject, seed=seed,
        threshold=config.mask_threshold,
        dilation=round(config.mask_dilation * image.width / 512),
        random_coverage=config.random_coverage, cell=models.latent_cell)


def animate(frames: list[Image.Image], config: MethodConfig) -> tuple[Animation, Animation | None]:
    gif = encode_gif(frames, config.inbetween, config.frame_ms, config.gif_max_bytes, config.loop)
    webp = encode_webp(frames, config.inbetween, config.frame_ms, loop=config.loop) if config.webp else None
    return gif, webp


def run_workflow(
    models: Models,
    text: str,
    *,
    seed: int = 0,
    config: MethodConfig = MethodConfig(),
    event: str | None = None,
    progress: Progress | None = None,
) -> WorkflowResult:
    seconds: dict[str, float] = {}

    def step(name: str):
        def report(done: int, total: int) -> None:
            if progress:
                progress(name, done, total)
        return report

    def timed(name, fn, *args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        seconds[name] = time.perf_counter() - t0
        if "progress" not in kwargs:  # stepped stages have reported their own progress
            step(name)(1, 1)
        return out

    t_start = time.perf_counter()
    subject = timed("subject", primary_subject, text, event)
    candidates = timed("generate", generate_candidates, models.text2img, subject.prompt,
                       n=config.candidates, seed=seed, steps=config.steps,
                       guidance=config.guidance, size=models.image_size,
                       progress=step("generate"))
    scores = timed("score", clip_scores, models.clip, models.clip_processor, candidates,
                   subject.prompt, config.score_weight)
    best = candidates[scores.best_index]
    mask = timed("mask", run_stage_mask, models, best, subject.word, config, seed)
    variants = timed("sample", masked_variants, models.inpaint, best, mask.image(), subject.prompt,
                     k=config.variants, seed=seed + 1, strength=config.strength,
                     steps=config.steps, guidance=config.guidance, progress=step("sample"))
    frames, path, _ = timed("select", select_frames, models.vit, models.vit_processor, best,
                            variants, config.frames, config.loop)
    gif, webp = timed("animate", animate, frames, config)
    seconds["total"] = time.perf_counter() - t_start
    return WorkflowResult(text, subject, candidates, scores, mask, variants, path, frames, gif,
                          webp, seconds)
