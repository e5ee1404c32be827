"""The figures that say how good one alert's result is, each checked against its definition."""

import json

import numpy as np
import pytest

from alertanim.pipeline.animate import motion
from alertanim.pipeline.config import MethodConfig
from alertanim.pipeline.quality import Assessment
from alertanim.pipeline.select import FramePath, select_path
from alertanim.pipeline.workflow import run_workflow

SMALL = MethodConfig(candidates=3, variants=5, frames=4, inbetween=2, steps=3)


def test_a_path_knows_its_steps_and_the_largest_one():
    pts = np.array([0.0, 1.0, -1.1, 1.2, -1.3])
    dist = np.abs(pts[:, None] - pts[None, :])
    for closed in (False, True):
        path = select_path(dist, 4, start=0, closed=closed)
        pairs = list(zip(path.indices, path.indices[1:]))
        if closed:
            pairs.append((path.indices[-1], path.indices[0]))
        assert path.steps == pytest.approx([dist[a, b] for a, b in pairs])
        assert path.cost == pytest.approx(sum(path.steps))
        assert path.largest_step == max(path.steps)
    assert FramePath((0,), 0.0).largest_step == 0.0


def test_every_figure_is_what_it_says(tiny):
    run = run_workflow(tiny, "Flash flood warning for the river valley", seed=2, config=SMALL)
    q = run.quality
    assert isinstance(q, Assessment) and q.hazard_found
    frame_scores = run.frame_scores.values
    assert len(frame_scores) == len(run.frames) == 4
    assert q.frame_clip_min == min(frame_scores) <= q.frame_clip_mean <= max(frame_scores)
    # the first key frame is the best candidate: the same image, the same score
    assert frame_scores[0] == pytest.approx(run.scores.best, abs=1e-4)
    assert q.path_cost == run.path.cost and q.largest_step == max(run.path.steps)
    assert q.largest_step <= q.path_cost
    keys = [np.asarray(f, np.int16) for f in run.frames]
    key_step = np.mean([np.abs(a - b).mean() for a, b in zip(keys, keys[1:] + keys[:1])])
    assert q.key_frame_change == pytest.approx(key_step)
    assert q.change_per_inbetween == pytest.approx(key_step / 3)
    assert (q.mask_coverage, q.subject_coverage) == (run.mask_coverage.combined,
                                                     run.mask_coverage.subject)
    summary = run.summary()["quality"]
    assert set(summary) == set(Assessment.__dataclass_fields__)
    json.dumps(summary)


def test_an_alert_without_a_hazard_says_so(tiny):
    run = run_workflow(tiny, "Please read the attached notice", seed=1, config=SMALL)
    assert run.subject.hazard is None and run.quality.hazard_found is False
    assert run.summary()["hazard"] is None


def test_motion_counts_the_in_betweens_the_gif_shows():
    from PIL import Image

    black, white = Image.new("RGB", (4, 4)), Image.new("RGB", (4, 4), (255, 255, 255))
    m = motion([black, white], Image.new("L", (4, 4), 255), inbetween=4, loop=False)
    assert (m.key_step, m.per_inbetween, m.static) == (255.0, 51.0, 0.0)
