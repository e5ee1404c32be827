import pytest
import torch
from PIL import Image

from alertanim.pipeline.score import HESSEL, clip_scores


def images():
    return [Image.new("RGB", (64, 64), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255), (9, 9, 9)]]


def hand_cosines(clip, processor, imgs, text):
    inputs = processor(text=[text], images=imgs, return_tensors="pt", padding=True)
    with torch.no_grad():
        v = clip.vision_model(pixel_values=inputs["pixel_values"]).pooler_output
        v = clip.visual_projection(v)
        t = clip.text_model(input_ids=inputs["input_ids"],
                            attention_mask=inputs["attention_mask"]).pooler_output
        t = clip.text_projection(t)
    v = v / v.norm(dim=-1, keepdim=True)
    t = t / t.norm(dim=-1, keepdim=True)
    return (v @ t.T)[:, 0].tolist()


def test_clipscore_is_one_hundred_times_the_clamped_cosine(tiny):
    text = "A fire has broken out in the building"
    scores = clip_scores(tiny.clip, tiny.clip_processor, images(), text)
    cos = hand_cosines(tiny.clip, tiny.clip_processor, images(), text)
    assert scores.values == pytest.approx([100 * max(c, 0) for c in cos], abs=1e-3)
    assert scores.best_index == max(range(4), key=lambda i: scores.values[i])
    assert scores.best == max(scores.values)


def test_hessel_weight(tiny):
    text = "flood"
    pct = clip_scores(tiny.clip, tiny.clip_processor, images(), text)
    hes = clip_scores(tiny.clip, tiny.clip_processor, images(), text, weight=HESSEL)
    assert hes.values == pytest.approx([v * 2.5 / 100 for v in pct.values], abs=1e-5)
