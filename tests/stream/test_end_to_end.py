"""Alerts in on Kafka, animations out in S3, completion events on `ready` — real broker, real
S3-compatible server, worker processes started by the CLI."""

import io
import json
import urllib.request

import pytest
from PIL import Image

from alertanim.schemas import AnimationReady

from tests.support.kafka import alert_bytes, consume, publish

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
        assert [r.media_type for r in event.renditions] == ["image/gif", "image/webp",
                                                            "video/mp4", "image/jpeg"]
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

    from alertanim.agents.ledger import seed_for
    from alertanim.schemas import StageMessage

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
        [sys.executable, "-m", "alertanim.agents.cli", "run", text, "--id", alert_id, "--models", "tiny",
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


def test_cap_in_cap_out_over_the_real_broker_and_store(pipeline_factory, tmp_path):
    """A CAP 1.2 document published to `alerts` comes out as an animation and as a CAP Update on
    `cap` whose resources are the renditions (fetched by their URIs, checked by their SHA-1);
    a billion-laughs document becomes a failure record."""
    import hashlib
    from pathlib import Path

    from alertanim.schemas import FailureRecord, parse_cap

    cap_dir = Path(__file__).parent.parent / "schemas" / "cap"
    original = (cap_dir / "ipaws_evacuation_multilingual.xml").read_bytes()
    bomb = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
            b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">&lol2;</alert>')
    p = pipeline_factory()
    p.start_worker()
    publish(p.settings, [(None, bomb), (parse_cap(original).alert_id, original)])

    topics = [p.settings.topic_ready, p.settings.topic_cap, p.settings.topic_failed]
    records = consume(p.settings, topics, until=lambda r: len(r) >= 3, timeout=240)
    by_topic = {t: [r for r in records if r.topic == t] for t in topics}
    [failed] = by_topic[p.settings.topic_failed]
    assert FailureRecord.from_bytes(failed.value).reason == "xml_entities"
    [ready] = [AnimationReady.from_bytes(r.value) for r in by_topic[p.settings.topic_ready]]
    [answer] = by_topic[p.settings.topic_cap]
    assert answer.key.decode() == ready.alert_id == parse_cap(original).alert_id
    update = parse_cap(answer.value)
    assert update.msg_type == "Update"
    assert update.references[0].triple() == parse_cap(original).ref.triple()
    for info in update.infos:
        resources = info.resources[-len(ready.renditions):]
        assert [r.mime_type for r in resources] == [r.media_type for r in ready.renditions]
        for res in resources:
            with urllib.request.urlopen(res.uri, timeout=10) as resp:
                data = resp.read()
            assert len(data) == res.size and hashlib.sha1(data).hexdigest() == res.digest
    import xmlschema
    xmlschema.XMLSchema(str(cap_dir / "CAP-v1.2.xsd")).validate(answer.value.decode())

    # The example consumer in deploy/examples reads it, once per consumer group.
    import subprocess
    import sys

    example = Path(__file__).parents[2] / "deploy" / "examples" / "ready_consumer.py"
    outbox = tmp_path / "outbox"

    def consume_with(group: str) -> str:
        return subprocess.run(
            [sys.executable, str(example), "--bootstrap", p.settings.bootstrap_servers,
             "--topic", p.settings.topic_ready, "--group", group, "--out", str(outbox),
             "--count", "1", "--timeout", "30"],
            capture_output=True, text=True, timeout=90, check=True).stdout

    assert "attached image/gif" in consume_with("sms-gateway")
    attached = json.loads((outbox / f"{ready.alert_id}.json").read_text())
    assert attached["alt_text"] == ready.alt_text
    assert (outbox / f"{ready.alert_id}.gif").stat().st_size == ready.rendition("image/gif").bytes
    assert "already handled" in consume_with("sms-gateway-2")  # idempotent on alert_id
