"""The method in-process: the graph (`pipeline.graph`) walked over alerts held in memory, every
intermediate value kept. This is the embedded default; the stream adapter walks the same graph
across processes, and a test holds the two to the same bytes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .animate import Animation
from .config import MethodConfig
from .graph import GRAPH, NAMES, stages
from .quality import Assessment, assess
from .subject import alt_text
from .stage import Context, Progress

# The stages up to the last one that runs a model, and the rest (CPU work that a caller may
# overlap with the next alerts' model stages).
_LAST_MODEL = max(i for i, s in enumerate(GRAPH) if s.uses_models)
MODEL_PART: tuple[str, ...] = NAMES[:_LAST_MODEL + 1]
CPU_PART: tuple[str, ...] = NAMES[_LAST_MODEL + 1:]


@dataclass
class AlertRun:
    """One alert's values, by port name, and the seconds each stage took."""

    values: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def begin(cls, text: str, seed: int, event: str | None = None, language: str | None = None,
              event_codes: Sequence[tuple[str, str]] = ()) -> AlertRun:
        return cls({"text": text, "seed": seed, "event": event, "language": language,
                    "event_codes": tuple(tuple(p) for p in event_codes)})

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    # The method's results under their own names (see each stage's outputs).
    text = property(lambda self: self.values["text"])
    subject = property(lambda self: self.values["subject"], doc="pipeline.subject.Subject")
    candidates = property(lambda self: self.values["candidates"])
    scores = property(lambda self: self.values["scores"], doc="pipeline.score.Scores")
    best_image = property(lambda self: self.values["best"])
    mask = property(lambda self: self.values["mask"], doc="the united mask, L-mode image")
    mask_coverage = property(lambda self: self.values["mask_coverage"])
    variants = property(lambda self: self.values["variants"])
    path = property(lambda self: self.values["path"], doc="pipeline.select.FramePath")
    frames = property(lambda self: self.values["frames"])
    frame_scores = property(lambda self: self.values["frame_scores"], doc="key frames' Scores")
    motion = property(lambda self: self.values["motion"], doc="pipeline.animate.Motion")
    animations = property(lambda self: self.values["animations"])

    @property
    def quality(self) -> Assessment:
        return assess(self.values)

    def rendition(self, media_type: str) -> Animation | None:
        return next((a for a in self.animations if a.content_type == media_type), None)

    @property
    def gif(self) -> Animation:
        return self.rendition("image/gif")

    @property
    def webp(self) -> Animation | None:
        return self.rendition("image/webp")

    def summary(self) -> dict:
        gif = self.gif
        return {
            "text": self.text,
            "subject": self.subject.word,
            "prompt": self.subject.prompt,
            # None: no hazard was found and the scene is neutral
            "hazard": self.subject.hazard,
            "hazard_source": self.subject.source,
            "matched": self.subject.matched,
            "language": self.subject.language,
            "alt_text": alt_text(self.text, self.subject),
            "scores": [round(s, 4) for s in self.scores.values],
            "best_index": self.scores.best_index,
            "clip_score": round(self.scores.best, 4),
            "subject_mask_coverage": round(self.mask_coverage.subject, 4),
            "mask_coverage": round(self.mask_coverage.combined, 4),
            # 0 is the best image, 1.. are the variants in generation order
            "selected_frames": list(self.path.indices),
            "path_cost": round(self.path.cost, 6),
            "gif": {"bytes": len(gif.data), "width": gif.width, "height": gif.height,
                    "frames": gif.frame_count, "colors": gif.colors,
                    "duration_ms": gif.duration_ms},
            "webp_bytes": len(self.webp.data) if self.webp else None,
            "renditions": [{"media_type": a.content_type, "bytes": len(a.data),
                            "width": a.width, "height": a.height, "frames": a.frame_count,
                            "duration_ms": a.duration_ms} for a in self.animations],
            "quality": self.quality.as_dict(),
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
        }


def advance(ctx: Context, runs: Sequence[AlertRun], names: Iterable[str] | None = None
            ) -> Sequence[AlertRun]:
    """Run the stages among `names` (all by default), in graph order, over `runs`: a batched
    stage once for all of them, the others alert by alert. A batched stage's seconds are the
    batch's."""
    for stage in stages(names):
        groups = [list(runs)] if stage.batched else [[r] for r in runs]
        for group in groups:
            t0 = time.perf_counter()
            outputs = stage.run(ctx, [{n: r.values[n] for n in stage.inputs} for r in group])
            elapsed = time.perf_counter() - t0
            for run, out in zip(group, outputs):
                run.values.update(out)
                run.seconds.pop("total", None)
                run.seconds[stage.name] = elapsed
                run.seconds["total"] = sum(run.seconds.values())
            if not stage.batched and ctx.progress:
                ctx.progress(stage.name, 1, 1)
    return runs


def run_workflow_batch(
    models,
    texts: Sequence[str],
    seeds: Sequence[int],
    *,
    config: MethodConfig = MethodConfig(),
    events: Sequence[str | None] | None = None,
    languages: Sequence[str | None] | None = None,
    event_codes: Sequence[Sequence[tuple[str, str]]] | None = None,
    progress: Progress | None = None,
    names: Iterable[str] | None = None,
) -> list[AlertRun]:
    """Alerts that arrived together, in one batch. An alert's images depend on its own seed
    only, not on its batch (up to rounding)."""
    events = list(events) if events is not None else [None] * len(texts)
    languages = list(languages) if languages is not None else [None] * len(texts)
    codes = list(event_codes) if event_codes is not None else [()] * len(texts)
    runs = [AlertRun.begin(*args) for args in zip(texts, seeds, events, languages, codes)]
    advance(Context(models, config, progress), runs, names)
    return runs


def run_workflow(
    models,
    text: str,
    *,
    seed: int = 0,
    config: MethodConfig = MethodConfig(),
    event: str | None = None,
    language: str | None = None,
    event_codes: Sequence[tuple[str, str]] = (),
    progress: Progress | None = None,
) -> AlertRun:
    """One alert, every stage in-process (the embedded default)."""
    [run] = run_workflow_batch(models, [text], [seed], config=config, events=[event],
                               languages=[language], event_codes=[event_codes],
                               progress=progress)
    return run
