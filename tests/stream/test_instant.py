"""The instant tier over the real broker and S3 server: an alert whose hazard the scene library
holds gets its `instant` event first and its `ready` event after, each exactly once for a
read-committed consumer, across a worker SIGKILL; an alert without an entry gets only `ready`;
the ingest and subject roles alone send instant events; the library survives a store restart and
is built once."""

from __future__ import annotations

import json
import time

from alertanim.schemas import AnimationReady, InstantAnimation
from tests.support.kafka import alert_bytes, consume, publish

FIRE = "A fire has broken out in the building. Leave by the nearest exit."


def records(p, topics, until, timeout):
    return consume(p.settings, topics, until, timeout)


def by_key(found, topic):
    return [r for r in found if r.topic == topic]


def keys(found, topic) -> set[bytes]:
    return {r.key for r in by_key(found, topic)}


def test_instant_then_ready_each_exactly_once_across_a_worker_kill(pipeline_factory):
    p = pipeline_factory()
    built = p.build_library("fire")
    assert "built 1 entries" in built
    worker = p.start_worker()
    ids = [f"inst-{i}" for i in range(4)]
    publish(p.settings, [(i, alert_bytes(i, FIRE)) for i in ids])
    topics = [p.settings.topic_instant, p.settings.topic_ready]
    # the instant events come first, long before the GPU stages are done: kill the worker then
    first = records(p, topics, lambda rs: len(by_key(rs, topics[0])) >= 1, 90)
    assert by_key(first, topics[0]), "no instant event before the kill"
    worker.kill()
    p.start_worker()
    # each topic's partitions are fetched on their own: wait for every key on both topics
    found = records(p, topics, lambda rs: all(len(keys(rs, t)) >= 4 for t in topics), 240)
    instant = by_key(found, topics[0])
    ready = by_key(found, topics[1])
    assert sorted(r.key.decode() for r in instant) == ids, "one instant event per alert"
    assert sorted(r.key.decode() for r in ready) == ids, "one ready event per alert"
    for alert_id in ids:
        [i] = [r for r in instant if r.key.decode() == alert_id]
        [g] = [r for r in ready if r.key.decode() == alert_id]
        event, done = InstantAnimation.from_bytes(i.value), AnimationReady.from_bytes(g.value)
        assert event.entry == "fire" and event.run == done.run
        assert i.timestamp <= g.timestamp, "the instant event before the generated one"
        headers = dict(i.headers)
        assert headers["ce_type"] == b"org.alertanim.animation.instant.v1"
        assert dict(g.headers)["traceparent"].split(b"-")[1] == headers[
            "traceparent"].split(b"-")[1], "one trace from the alert to both events"


def test_an_alert_without_a_library_entry_gets_only_ready(pipeline_factory):
    p = pipeline_factory()
    p.start_worker()
    publish(p.settings, [("noentry-1", alert_bytes("noentry-1", "Flash flood warning"))])
    topics = [p.settings.topic_instant, p.settings.topic_ready]
    found = records(p, topics, lambda rs: bool(by_key(rs, topics[1])), 180)
    assert [r.key for r in by_key(found, topics[1])] == [b"noentry-1"]
    assert by_key(found, topics[0]) == []


def test_the_ingest_and_subject_roles_alone_send_instant_events(pipeline_factory):
    """No model stage runs anywhere: alerts still get their instant event."""
    p = pipeline_factory()
    p.build_library("fire")
    p.start_worker("ingest,subject")
    t0 = time.time()
    publish(p.settings, [("cpu-only-1", alert_bytes("cpu-only-1", FIRE))])
    found = records(p, [p.settings.topic_instant], lambda rs: bool(rs), 60)
    [event] = [InstantAnimation.from_bytes(r.value) for r in found]
    assert event.alert_id == "cpu-only-1" and event.hazard == "fire"
    assert found[0].timestamp / 1000 - t0 < 30


def test_a_burst_at_the_front_gets_one_instant_event_each_across_a_worker_kill(
        pipeline_factory):
    """Ingest and the subject stage a batch at a time, one transaction per partition: a worker
    killed mid-burst leaves every alert one instant event for a read-committed consumer, and
    every input a hand-over; a re-published copy sends no second instant event."""
    p = pipeline_factory()
    p.build_library("fire")
    worker = p.start_worker("ingest,subject")
    ids = [f"front-{i}" for i in range(40)]
    burst = [(i, alert_bytes(i, FIRE)) for i in ids]
    publish(p.settings, [*burst[:20], burst[0], *burst[20:]], together=True)  # one copy
    instant, generate = p.settings.topic_instant, p.settings.stage_topic("generate")
    records(p, [instant], lambda rs: len(rs) >= 1, 60)
    worker.kill()
    worker = p.start_worker("ingest,subject")
    # a hand-over to generate comes after its alert's instant event (the subject stage's, not
    # ingest's transaction), and copies of some are on the topic: wait for every key on both
    found = records(p, [instant, generate], lambda rs: len(keys(rs, instant)) >= len(ids) and len(
        keys(rs, generate)) >= len(ids) and len(by_key(rs, generate)) >= len(ids) + 1, 120)
    assert sorted(r.key.decode() for r in by_key(found, instant)) == sorted(ids)
    # every input handed over; messages between stages are at-least-once (a hand-over a killed
    # worker's aborted transaction left is read by the next stage too, and recognised later)
    handed = [r.key.decode() for r in by_key(found, generate)]
    assert set(handed) == set(ids) and len(handed) >= len(ids) + 1
    # alerts that arrive together are taken together
    more = [f"front-b-{i}" for i in range(30)]
    publish(p.settings, [(i, alert_bytes(i, FIRE)) for i in more], together=True)
    records(p, [instant], lambda rs: len(rs) >= len(ids) + len(more), 60)
    batches = worker.metric("alertanim_stage_batch_size", "_count", stage="ingest")
    inputs = worker.metric("alertanim_stage_batch_size", "_sum", stage="ingest")
    assert batches >= 1 and inputs / batches > 1, (batches, inputs)


def test_a_library_entry_survives_a_store_restart_and_is_built_once(own_s3, kafka, pipeline_on):
    import boto3

    p = pipeline_on(kafka, own_s3)
    p.build_library("fire")
    own_s3.stop(kill=True)
    own_s3.start()
    again = p.build_library("fire")
    assert "0 to build" in again and "built" not in again.split("to build", 1)[1]
    s3 = boto3.client("s3", endpoint_url=own_s3.endpoint, region_name=own_s3.region,
                      aws_access_key_id=own_s3.access_key,
                      aws_secret_access_key=own_s3.secret_key)
    prefix = f"{p.settings.s3_prefix}/library/"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=own_s3.bucket, Prefix=prefix)["Contents"]]
    [entry_key] = [k for k in keys if k.endswith("/fire/entry.json")]
    entry = json.loads(s3.get_object(Bucket=own_s3.bucket, Key=entry_key)["Body"].read())
    gif = next(r for r in entry["renditions"] if r["media_type"] == "image/gif")
    data = s3.get_object(Bucket=own_s3.bucket, Key=entry_key.replace("entry.json",
                                                                       "animation.gif"))
    import hashlib

    assert hashlib.sha256(data["Body"].read()).hexdigest() == gif["sha256"]
