"""Alerts in on Kafka, animations out in S3, completion events on `ready` — real broker, real
S3-compatible server, worker processes started by the CLI."""

import io
import json
import urllib.request

import pytest
from PIL import Image

from schemas import AnimationReady

from .conftest import alert_bytes, consume, publish

TEXTS = [
    "A fire has broken out in the building",
    "Flash flood warning for the river district, move to higher ground",
    "서울 강남구 화재 발생, 인근 주민은 대피하세요",
    "[기상청] 해안가 지진해일 경보, 즉시 높은 곳으로 대피하십시오",
    "Magnitude 5.1 earthquake: expect aftershocks",
]


def test_twenty_alerts_become_twenty_animations(pipeline_factory):
    p = pipeline_factory()
    worker = p.start_worker()
    ids = [f"e2e-{i:02d}" for i in range(20)]
    publish(p.settings, [(i, alert_bytes(i, TEXTS[n % len(TEXTS)])) for n, i in enumerate(ids)])

    records = consume(p.settings, [p.settings.topic_ready], until=lambda r: len(r) >= 20,
                      timeout=300)
    events = [AnimationReady.from_bytes(r.value) for r in records]
    assert sorted(e.alert_id for e in events) == ids, "exactly one event per alert"
    assert all(r.key.decode() == json.loads(r.value)["alert_id"] for r in records)
    expected_frames = 8 + 8 * 3  # frames + in-betweens, looped
    for event in events:
        assert [r.media_type for r in event.renditions] == ["image/gif", "image/webp"]
        for rendition, fmt in zip(event.renditions, ("GIF", "WEBP")):
            with urllib.request.urlopen(rendition.url, timeout=10) as resp:
                data = resp.read()
            image = Image.open(io.BytesIO(data))
            assert image.format == fmt
            assert image.n_frames == rendition.frame_count == expected_frames
            assert len(data) == rendition.bytes
            assert rendition.s3_uri.startswith(f"s3://{p.s3.bucket}/")
        assert event.rendition("image/gif").bytes <= 300_000
        assert set(event.stage_seconds) == {"ingest", "subject", "generate", "score", "mask",
                                            "sample", "select", "animate"}
        assert event.subject in {"fire", "flood", "tsunami", "earthquake"}
        assert event.hazard is not None and event.quality.hazard_found
        assert event.quality.static_change == 0.0  # composited: the background holds still
        assert event.quality.frame_clip_min <= event.quality.frame_clip_mean

    # The claim check: no image ever rides in a Kafka message.
    topics = [p.settings.topic_ready, p.settings.topic_failed,
              *(p.settings.stage_topic(s) for s in
                ("subject", "generate", "score", "mask", "sample", "select", "animate"))]
    everything = consume(p.settings, topics, until=lambda r: False, timeout=5)
    assert len(everything) >= 20 * 7  # six stage hops and the event
    for r in everything:
        assert len(r.value) < 16_000, (r.topic, len(r.value))
        assert b"GIF89a" not in r.value and b"\x89PNG" not in r.value
    assert not [r for r in everything if r.topic == p.settings.topic_failed]
    assert worker.metric("alertanim_stage_processed", stage="animate") == 20
    # 20 alerts at once: the generate stage put several of them in one GPU batch
    batches = worker.metric("alertanim_stage_batch_size", "_count", stage="generate")
    in_batches = worker.metric("alertanim_stage_batch_size", "_sum", stage="generate")
    assert batches >= 1 and in_batches > batches, (batches, in_batches)


def test_a_worker_whose_models_cannot_load_exits(pipeline_factory, tmp_path):
    import subprocess

    p = pipeline_factory(models=str(tmp_path / "no-such-models"))
    worker = p.start_worker(wait=False)
    try:
        code = worker.proc.wait(120)
    except subprocess.TimeoutExpired:
        worker.kill()
        raise AssertionError("the worker kept running without its models")
    assert code != 0
    log = worker.log.read_text(errors="replace")
    assert "cannot load models" in log and "--models tiny" in log


def test_the_stream_and_the_run_command_make_the_same_animation(pipeline_factory, model_cache,
                                                               tmp_path):
    """One graph, two runners: the same alert through Kafka + S3 and in-process gives the same
    GIF, byte for byte, from the same selected frames."""
    import os
    import subprocess
    import sys

    from agents.ledger import seed_for
    from schemas import StageMessage

    p = pipeline_factory()
    p.start_worker()
    alert_id, text = "same-01", "서울 강남구 화재 발생, 인근 주민은 대피하세요"
    publish(p.settings, [(alert_id, alert_bytes(alert_id, text))])
    [record] = consume(p.settings, [p.settings.topic_ready], until=lambda r: len(r) >= 1,
                       timeout=180)
    event = AnimationReady.from_bytes(record.value)
    with urllib.request.urlopen(event.rendition("image/gif").url, timeout=10) as resp:
        streamed = resp.read()
    [to_animate] = consume(p.settings, [p.settings.stage_topic("animate")],
                           until=lambda r: len(r) >= 1, timeout=30)
    streamed_path = StageMessage.from_bytes(to_animate.value).artifacts["path"].value

    out, summary = tmp_path / "run.gif", tmp_path / "run.json"
    subprocess.run(
        [sys.executable, "-m", "agents.cli", "run", text, "--id", alert_id, "--models", "tiny",
         "--seed", str(seed_for(alert_id)), "--steps", "4", "--out", str(out), "--json",
         str(summary), "--quiet"],
        env={**os.environ, "OMP_NUM_THREADS": "1", "ALERTANIM_CACHE": str(model_cache),
             "HF_HUB_OFFLINE": "1"}, check=True, timeout=300)
    ran = json.loads(summary.read_text())
    assert ran["selected_frames"] == streamed_path["indices"]
    assert out.read_bytes() == streamed
    assert (event.hazard, event.language) == (ran["hazard"], ran["language"]) == ("fire", "ko")
    for name, value in ran["quality"].items():
        assert getattr(event.quality, name) == pytest.approx(value, abs=1e-4), name
