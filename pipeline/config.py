"""The method's settings, declared once.

`MethodConfig` is the single source: the in-process workflow reads it, the worker's settings nest
it (every field is `ALERTANIM_METHOD__<FIELD>`), and the `run` command's flags are made from its
fields. Its fingerprint names the artifacts a run produces.
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict, Field

MMS_BYTES = 300_000  # what every carrier takes in an MMS
PERCENT = 100.0  # CLIPScore weight that gives the method's reported scale


class MethodConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    candidates: int = Field(10, ge=1, le=64, description="text-to-image candidates per alert")
    # Frame selection is exact over subsets and orders (Held-Karp): its cost grows as
    # 2^variants, so both are bounded: at the bounds it takes about 2 s on a CPU (2 ms at the
    # defaults).
    variants: int = Field(16, ge=1, le=24, description="inpainted variants of the best image")
    frames: int = Field(8, ge=1, le=10, description="key frames chosen for the animation")
    inbetween: int = Field(3, ge=0, le=16, description="crossfade frames between key frames")
    steps: int = Field(25, ge=1, le=200, description="denoising steps (DPM-Solver++)")
    guidance: float = Field(7.5, ge=0, le=50, description="classifier-free guidance scale")
    strength: float = Field(0.75, gt=0, le=1, description="masked sampling strength")
    random_coverage: float = Field(0.15, ge=0, le=1,
                                   description="share of the image in the random mask")
    mask_threshold: float = Field(0.4, ge=0, le=1,
                                  description="CLIPSeg probability that counts as the subject")
    mask_dilation: int = Field(8, ge=0, le=128,
                               description="subject mask dilation, pixels at 512² (scaled)")
    composite: bool = Field(True, description="keep the best image's pixels outside the mask "
                            "(feathered edge), so the static parts stay still")
    feather: int = Field(4, ge=0, le=64,
                         description="composite edge width inside the mask, pixels at 512² "
                                     "(scaled)")
    score_weight: float = Field(PERCENT, gt=0,
                                description="CLIPScore weight w: 100 (method's scale) or 2.5")
    frame_ms: int = Field(120, ge=10, le=10_000, description="milliseconds per animation frame")
    gif_max_bytes: int = Field(MMS_BYTES, ge=1_000, description="GIF byte budget (MMS)")
    loop: bool = Field(True, description="close the frame path and loop the animation")
    webp: bool = Field(True, description="also encode an animated WebP")
    mp4: bool = Field(True, description="also encode an H.264 MP4 (progressive playback in "
                      "browsers and phones)")
    mp4_max_bytes: int = Field(MMS_BYTES, ge=10_000,
                               description="MP4 byte budget, first tried at the frames' own size")
    poster: bool = Field(True, description="also write a JPEG poster of the best image")

    def fingerprint(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:12]
