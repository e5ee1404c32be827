"""Stage 4c: the whole method in-process, every intermediate artifact kept.

The stream agents run the same stage functions one per process role; this module is the embedded
default and the reference the agents are tested against.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from PIL import Image

from .animate import MMS_BYTES, Animation, encode_gif, encode_webp
from .generate import generate_batch
from .mask import MaskResult, subject_mask
from .models import Models
from .sample import masked_variants_batch
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
class Frames:
    """One alert up to its chosen frames: the GPU part of the method."""

    text: str
    subject: Subject
    candidates: list[Image.Image]
    scores: Scores
    mask: MaskResult
    variants: list[Image.Image]
    path: FramePath
    frames: list[Image.Image]
    seconds: dict[str, float]


@dataclass
class WorkflowResult(Frames):
    """One alert, animated."""

    gif: Animation
    webp: Animation | None

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
    """The GIF, and the WebP beside it on a second thread (Pillow encodes without the GIL)."""
    if not config.webp:
        return encode_gif(frames, config.inbetween, config.frame_ms, config.gif_max_bytes,
                          config.loop), None
    with ThreadPoolExecutor(1, thread_name_prefix="alertanim-webp") as pool:
        webp = pool.submit(encode_webp, frames, config.inbetween, config.frame_ms,
                           loop=config.loop)
        gif = encode_gif(frames, config.inbetween, config.frame_ms, config.gif_max_bytes,
                         config.loop)
        return gif, webp.result()


def run_frames_batch(
    models: Models,
    texts: Sequence[str],
    seeds: Sequence[int],
    *,
    config: MethodConfig = MethodConfig(),
    events: Sequence[str | None] | None = None,
    progress: Progress | None = None,
) -> list[Frames]:
    """Every stage before the animation, for alerts that arrived together: text-to-image and
    masked sampling run once for the whole batch, the other stages alert by alert. An alert's
    images depend on its own seed only, not on its batch. A batched stage's seconds are the
    batch's."""
    events = list(events) if events is not None else [None] * len(texts)
    seconds: list[dict[str, float]] = [{} for _ in texts]

    def report(name: str):
        def fn(done: int, total: int) -> None:
            if progress:
                progress(name, done, total)
        return fn

    def timed(name, fn, *args, rows=None, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        for row in (range(len(texts)) if rows is None else rows):
            seconds[row][name] = seconds[row].get(name, 0.0) + time.perf_counter() - t0
        if "progress" not in kwargs:  # stepped stages have reported their own progress
            report(name)(1, 1)
        return out

    t_start = time.perf_counter()
    subjects = [timed("subject", primary_subject, text, event, rows=[j])
                for j, (text, event) in enumerate(zip(texts, events))]
    prompts = [s.prompt for s in subjects]
    candidates = timed("generate", generate_batch, models.text2img, prompts, seeds,
                       n=config.candidates, steps=config.steps, guidance=config.guidance,
                       size=models.image_size, progress=report("generate"))
    scores = [timed("score", clip_scores, models.clip, models.clip_processor, images, prompt,
                    config.score_weight, rows=[j])
              for j, (images, prompt) in enumerate(zip(candidates, prompts))]
    bests = [images[s.best_index] for images, s in zip(candidates, scores)]
    masks = [timed("mask", run_stage_mask, models, best, subject.word, config, seed, rows=[j])
             for j, (best, subject, seed) in enumerate(zip(bests, subjects, seeds))]
    variants = timed("sample", masked_variants_batch, models.inpaint, bests,
                     [m.image() for m in masks], prompts, [seed + 1 for seed in seeds],
                     k=config.variants, strength=config.strength, steps=config.steps,
                     guidance=config.guidance, progress=report("sample"))
    out = []
    for j, text in enumerate(texts):
        frames, path, _ = timed("select", select_frames, models.vit, models.vit_processor,
                                bests[j], variants[j], config.frames, config.loop, rows=[j])
        seconds[j]["frames_total"] = time.perf_counter() - t_start
        out.append(Frames(text, subjects[j], candidates[j], scores[j], masks[j], variants[j],
                          path, frames, seconds[j]))
    return out


def finish(frames: Frames, config: MethodConfig = MethodConfig(),
           progress: Progress | None = None) -> WorkflowResult:
    """The CPU part: encode the animation. Runs beside the next alerts' GPU work."""
    t0 = time.perf_counter()
    gif, webp = animate(frames.frames, config)
    seconds = dict(frames.seconds)
    seconds["animate"] = time.perf_counter() - t0
    seconds["total"] = seconds.pop("frames_total") + seconds["animate"]
    if progress:
        progress("animate", 1, 1)
    return WorkflowResult(**{**vars(frames), "seconds": seconds}, gif=gif, webp=webp)


def run_workflow_batch(
    models: Models,
    texts: Sequence[str],
    seeds: Sequence[int],
    *,
    config: MethodConfig = MethodConfig(),
    events: Sequence[str | None] | None = None,
) -> list[WorkflowResult]:
    """Alerts that arrived together, in one batch (see `run_frames_batch`)."""
    return [finish(f, config) for f in run_frames_batch(models, texts, seeds, config=config,
                                                          events=events)]


def run_workflow(
    models: Models,
    text: str,
    *,
    seed: int = 0,
    config: MethodConfig = MethodConfig(),
    event: str | None = None,
    progress: Progress | None = None,
) -> WorkflowResult:
    """One alert, every stage in-process (the embedded default)."""
    [frames] = run_frames_batch(models, [text], [seed], config=config, events=[event],
                                progress=progress)
    return finish(frames, config, progress)
