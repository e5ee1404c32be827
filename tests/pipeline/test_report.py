"""The report page, read as a parser reads it: what it counts, that it is whole, that alert text
stays text. (tests/browser opens it in a real browser.)"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from alertanim.pipeline.config import MethodConfig

CONFIG = MethodConfig(candidates=3, variants=4, frames=3, inbetween=1, steps=2)
HOSTILE = "<script>alert(1)</script>"
TEXT = f"서울 강남구 화재 발생, 대피하세요 {HOSTILE}"


class Page(HTMLParser):
    """Every start tag with its attributes, and the text between them."""

    def __init__(self, document: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(document)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def with_class(self, name: str) -> list[dict]:
        return [a for _, a in self.tags if name in (a.get("class") or "").split()]

    def by_id(self, name: str) -> dict:
        [attrs] = [a for _, a in self.tags if a.get("id") == name]
        return attrs


def decode_data_uri(uri: str) -> Image.Image:
    head, _, payload = uri.partition(",")
    assert head.startswith("data:image/") and head.endswith(";base64"), head[:40]
    image = Image.open(io.BytesIO(base64.b64decode(payload, validate=True)))
    image.load()
    return image


@pytest.fixture(scope="module")
def run(tiny):
    from alertanim.pipeline.workflow import run_workflow

    return run_workflow(tiny, TEXT, seed=3, config=CONFIG)


@pytest.fixture(scope="module")
def page(run):
    from alertanim.pipeline.report import render_report

    return Page(render_report(run, CONFIG))


def test_the_report_counts_what_the_run_made(run, page):
    assert len(page.with_class("candidate")) == len(run.candidates) == CONFIG.candidates
    assert page.by_id("candidates")["data-candidates"] == str(CONFIG.candidates)
    assert len(page.with_class("variant")) == len(run.variants) == CONFIG.variants
    assert len(page.with_class("frame")) == len(run.frames) == CONFIG.frames
    assert [int(a["data-index"]) for a in page.with_class("frame")] == list(run.path.indices)
    on_path = {int(a["data-index"]) for a in page.with_class("on-path")}
    assert on_path == set(run.path.indices) - {0}
    [best] = page.with_class("best")
    assert "candidate" in best["class"].split()
    assert int(best["data-index"]) == run.scores.best_index
    assert [a["data-type"] for a in page.with_class("rendition")] == \
        [a.content_type for a in run.animations]
    gif = next(a for a in page.with_class("rendition") if a["data-type"] == "image/gif")
    assert gif["data-bytes"] == str(len(run.gif.data))
    assert gif["data-budget"] == str(CONFIG.gif_max_bytes)
    assert page.by_id("subject-mask")["data-coverage"] == f"{run.mask_coverage.subject:.4f}"
    assert float(page.by_id("distances")["data-cost"]) == pytest.approx(run.path.cost, abs=1e-4)


def test_the_distances_come_from_the_select_stage(run):
    d = np.asarray(run.values["distances"])
    assert d.shape == (1 + CONFIG.variants,) * 2
    assert np.allclose(d, d.T) and np.allclose(np.diag(d), 0, atol=1e-3)
    assert run.path.cost == pytest.approx(sum(run.path.steps))
    assert run.path.steps[0] == pytest.approx(d[run.path.indices[0], run.path.indices[1]],
                                              abs=1e-4)


def test_every_image_is_inline_and_shows_something(run, page):
    images = [a for tag, a in page.tags if tag == "img"]
    # candidates, variants, frames, 3 mask pictures, 3 plots, the GIF
    assert len(images) == CONFIG.candidates + CONFIG.variants + CONFIG.frames + 3 + 3 + 1
    for attrs in images:
        image = decode_data_uri(attrs["src"])
        assert np.asarray(image.convert("RGB")).std() > 1, attrs.get("alt")
    gif = decode_data_uri(page.by_id("animation-gif")["src"])
    assert gif.n_frames == run.gif.frame_count


def test_nothing_is_fetched_and_no_script_runs(page):
    assert all(tag not in ("script", "link", "iframe", "object", "embed") for tag, _ in page.tags)
    for _, attrs in page.tags:
        for name, value in attrs.items():
            if name in ("src", "href", "srcset", "action", "poster"):
                assert value.startswith("data:"), (name, value[:60])
            assert not name.startswith("on"), name


def test_alert_text_stays_text(run, page):
    from alertanim.pipeline.report import render_report

    document = render_report(run, CONFIG)
    assert HOSTILE not in document
    assert HOSTILE in "".join(page.text)


def test_cli_writes_the_report(tmp_path, model_cache):
    report = tmp_path / "report.html"
    proc = subprocess.run(
        [sys.executable, "-m", "alertanim.agents.cli", "run", "Flash flood warning for the valley",
         "--models", "tiny", "--out", str(tmp_path / "a.gif"), "--json", "--report", str(report),
         "--candidates", "2", "--variants", "3", "--frames", "2", "--steps", "2", "--quiet"],
        capture_output=True, text=True, timeout=300, check=True)
    summary = json.loads(proc.stdout)
    assert summary["report"] == str(report)
    page = Page(report.read_text(encoding="utf-8"))
    assert len(page.with_class("candidate")) == len(summary["scores"]) == 2
    assert len(page.with_class("frame")) == len(summary["selected_frames"])


def test_cli_refuses_an_unwritable_report_before_loading_models(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "alertanim.agents.cli", "run", "Flood", "--models", "tiny",
         "--out", str(tmp_path / "a.gif"), "--report", str(tmp_path / "missing" / "r.html")],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "cannot write" in proc.stderr and "missing" in proc.stderr
