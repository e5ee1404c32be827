"""The report as a person sees it: opened from disk in headless Chromium, laid out, painted."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from PIL import Image

from alertanim.pipeline.config import MethodConfig
from tests.support.dom import CHECK_IMAGES, Dom

CONFIG = MethodConfig(candidates=3, variants=4, frames=3, inbetween=1, steps=2)


@pytest.fixture(scope="module")
def report(tiny, artifacts):
    from alertanim.pipeline.report import render_report
    from alertanim.pipeline.workflow import run_workflow

    run = run_workflow(tiny, "Flash flood warning: move to higher ground now", seed=5,
                       config=CONFIG)
    path = artifacts / "report.html"
    path.write_text(render_report(run, CONFIG), encoding="utf-8")
    return path, run.summary()


def test_the_screenshot_shows_the_page(report, chromium, artifacts):
    path, _ = report
    shot = artifacts / "report.png"
    shot.unlink(missing_ok=True)
    t0 = time.perf_counter()
    chromium(path, f"--screenshot={shot}", "--window-size=1280,4000")
    print(f"chromium screenshot: {time.perf_counter() - t0:.2f} s -> {shot}")
    image = Image.open(shot)
    assert image.format == "PNG" and image.size == (1280, 4000)
    pixels = np.asarray(image.convert("RGB"), dtype=float)
    assert pixels.std() > 10  # not a blank page
    # the page's top third holds text, the plots and the thumbnails: colour, not only grey
    top = pixels[:1300]
    assert (np.ptp(top, axis=2) > 60).mean() > 0.01


def test_the_rendered_dom_counts_and_loads_everything(report, chromium, artifacts):
    path, summary = report
    checked = artifacts / "report-checked.html"
    page = path.read_text(encoding="utf-8")
    # the copy only: without its own CSP (which forbids every script), with the checking script
    page = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
    checked.write_text(page.replace("</body>", CHECK_IMAGES + "</body>"), encoding="utf-8")
    t0 = time.perf_counter()
    dom = Dom(chromium(checked, "--dump-dom", "--virtual-time-budget=5000").stdout)
    print(f"chromium dump-dom: {time.perf_counter() - t0:.2f} s")
    [body] = [a for tag, a in dom.tags if tag == "body"]
    assert body.get("data-checked") == "yes"
    assert len(dom.with_class("candidate")) == len(summary["scores"]) == CONFIG.candidates
    assert len(dom.with_class("frame")) == len(summary["selected_frames"]) == CONFIG.frames
    [best] = dom.with_class("best")
    assert int(best["data-index"]) == summary["best_index"]
    images = [a for tag, a in dom.tags if tag == "img"]
    assert len(images) == CONFIG.candidates + CONFIG.variants + CONFIG.frames + 7
    assert [a.get("data-loaded") for a in images] == ["true"] * len(images), \
        [a.get("alt") for a in images if a.get("data-loaded") != "true"]
