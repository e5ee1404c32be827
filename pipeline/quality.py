"""How good one alert's result is, in figures a deployment can watch.

Each stage measures what it alone can see (the key frames' CLIPScores in `select`, the path's
steps, the motion and the flashes in `animate`, the mask's coverage); `assess` gathers them from
a run's values, by port name, for the run summary and the completion event alike. With random
weights the values mean little; with the real checkpoints a falling key-frame CLIPScore, a large
step or a moving background is what to look at.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Assessment:
    hazard_found: bool  # False: no hazard was named and the scene is neutral
    clip_score: float  # the best candidate's CLIPScore against the prompt
    frame_clip_min: float  # CLIPScore of each key frame against the prompt: the lowest
    frame_clip_mean: float  # ... and their mean
    path_cost: float  # summed ViT feature distance along the key frames (and back, looped)
    largest_step: float  # the largest single distance on that path
    change_per_inbetween: float  # mean absolute pixel change (0-255) from one shown frame to the next
    key_frame_change: float  # ... from one key frame to the next
    static_change: float  # ... outside the mask (0 when the static parts are kept)
    mask_coverage: float  # share of the image repainted (subject ∪ random)
    subject_coverage: float  # share of the image CLIPSeg found the subject in
    # WCAG 2.3.1 flashes per second of the loop as delivered (pipeline/flash.py), the worse of
    # general and red; None for a run whose animate stage did not measure them
    flashes_per_second: float | None
    flash_safe: bool | None  # True whenever measured: an unsafe loop is made safe first

    def as_dict(self, digits: int = 4) -> dict[str, Any]:
        return {k: round(v, digits) if isinstance(v, float) else v
                for k, v in asdict(self).items()}


def assess(values: Mapping[str, Any]) -> Assessment:
    """The figures from a finished run's values (subject, scores, frame_scores, path, motion,
    mask_coverage, and flash when the run has it)."""
    frames = values["frame_scores"].values
    path, motion, coverage = values["path"], values["motion"], values["mask_coverage"]
    flash = values.get("flash")
    return Assessment(
        hazard_found=values["subject"].hazard is not None,
        clip_score=values["scores"].best,
        frame_clip_min=min(frames),
        frame_clip_mean=sum(frames) / len(frames),
        path_cost=path.cost,
        largest_step=path.largest_step,
        change_per_inbetween=motion.per_inbetween,
        key_frame_change=motion.key_step,
        static_change=motion.static,
        mask_coverage=coverage.combined,
        subject_coverage=coverage.subject,
        flashes_per_second=flash.flashes_per_second if flash is not None else None,
        flash_safe=flash.flash_safe if flash is not None else None,
    )
