"""The score stage (the seed's step 2): CLIPScore of each candidate against the alert text; the best one goes on.

CLIP-S(I, C) = w · max(cos(E_I, E_C), 0) (Hessel et al. 2021). w=100 gives the scale the method
reports (~25 for its fire example); w=2.5 is Hessel's own. C is the prompt as CLIP's text encoder
can read it: fitted to its tokenizer's limit, the hazard's scene first (`subject.fit_prompt`), as
the text-to-image model reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .config import PERCENT
from .stage import Context, Kind, Port, Row, Stage, row_by_row
from .subject import fit_prompt

HESSEL = 2.5


@dataclass(frozen=True)
class Scores:
    values: tuple[float, ...]
    best_index: int

    @property
    def best(self) -> float:
        return self.values[self.best_index]


def clip_scores(clip, processor, images: Sequence, text: str, weight: float = PERCENT) -> Scores:
    """CLIP-S of each image against `text`, fitted to the processor's tokenizer first."""
    inputs = processor(text=[fit_prompt(text, processor.tokenizer)], images=list(images),
                       return_tensors="pt", padding=True, truncation=True)
    device = clip.device
    with torch.inference_mode():
        img = clip.get_image_features(pixel_values=inputs["pixel_values"].to(device, clip.dtype))
        txt = clip.get_text_features(input_ids=inputs["input_ids"].to(device),
                                     attention_mask=inputs["attention_mask"].to(device))
    img = _embeds(img)
    txt = _embeds(txt)
    cos = torch.nn.functional.cosine_similarity(img.float(), txt.float(), dim=-1)
    values = (weight * cos.clamp(min=0)).tolist()
    best = max(range(len(values)), key=lambda i: (values[i], -i))
    return Scores(tuple(values), best)


def _embeds(out):
    # transformers 5 returns a model output here; 4.x returned the tensor itself.
    return out if isinstance(out, torch.Tensor) else out.pooler_output


@row_by_row
def _run(ctx: Context, row: Row) -> dict:
    m = ctx.models
    scores = clip_scores(m.clip, m.clip_processor, row["candidates"], row["subject"].prompt,
                         ctx.config.score_weight)
    return {"scores": scores, "best": row["candidates"][scores.best_index]}


STAGE = Stage("score", _run, inputs=("candidates", "subject"),
              outputs=(Port("scores", Kind.VALUE, Scores), Port("best", Kind.IMAGE)),
              components=("clip",), doc="CLIPScore of every candidate; the best one goes on")
