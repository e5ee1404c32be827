"""Scaling out and the guarantees under failure: nothing lost, nothing doubled, bad input refused.
Every count is of records a read-committed consumer sees."""

import base64
import collections
import json
import time

from alertanim.schemas import AnimationReady, FailureRecord

from tests.support.kafka import alert_bytes, consume, publish, stamped_before


def ready_records(p, n, timeout=300):
    """Committed completion records until `n` alerts have one, then a little longer, so that a
    duplicate arriving late is seen."""
    records = consume(p.settings, [p.settings.topic_ready],
                      until=lambda r: len({x.key for x in r}) >= n, timeout=timeout)
    records += consume(p.settings, [p.settings.topic_ready], until=lambda r: False,
                       timeout=3)[len(records):]
    return records


def ready_ids(p, n, timeout=300):
    return [AnimationReady.from_bytes(r.value).alert_id for r in ready_records(p, n, timeout)]


def test_two_workers_share_partitions_and_each_alert_completes_once(pipeline_factory):
    p = pipeline_factory()
    a, b = p.start_worker(), p.start_worker()
    ids = [f"scale-{i:02d}" for i in range(24)]
    publish(p.settings, [(i, alert_bytes(i, "Heavy rain and flooding downtown")) for i in ids])
    seen = ready_ids(p, len(ids))
    assert sorted(seen) == ids
    per_worker = [w.metric("alertanim_stage_processed", stage="ingest") for w in (a, b)]
    assert sum(per_worker) == len(ids)
    assert all(n > 0 for n in per_worker), f"both workers took partitions: {per_worker}"


def test_stage_roles_in_separate_processes(pipeline_factory):
    p = pipeline_factory()
    p.start_worker("ingest,subject,generate,score")
    p.start_worker("mask,sample")
    p.start_worker("select,animate")
    ids = [f"roles-{i}" for i in range(4)]
    publish(p.settings, [(i, alert_bytes(i, "Tornado sighted near the highway")) for i in ids])
    assert sorted(ready_ids(p, len(ids))) == ids


POISON = {
    "not_utf8": (b"\xff\xfe\x00garbage", None),
    "not_json": (b"this is not json", None),
    "missing_field": (json.dumps({"id": "p-missing"}).encode(), "p-missing"),
    "empty_text": (alert_bytes("p-empty", "   "), "p-empty"),
    "text_too_long": (alert_bytes("p-long", "fire " * 1200), "p-long"),
    "invalid_field": (json.dumps({"id": "p-type", "text": 42}).encode(), "p-type"),
    "unknown_schema_version": (json.dumps({"schema_version": 9, "id": "p-ver",
                                           "text": "fire"}).encode(), "p-ver"),
}


def test_poison_messages_become_failure_records_and_the_rest_completes_once(pipeline_factory):
    p = pipeline_factory()
    p.start_worker()
    good = ["ok-1", "ok-2", "ok-3"]
    records = [("ok-1", alert_bytes("ok-1", "A fire has broken out 🔥 \u202eקרוב\u202c"))]
    records += [(key or None, raw) for raw, key in POISON.values()]
    records += [("ok-2", alert_bytes("ok-2", "Flood\x00warning\x1b[0m for the valley"))]
    # the same id again with other content: a conflict, not a second animation
    records += [("ok-1", alert_bytes("ok-1", "Something else entirely"))]
    records += [("ok-3", alert_bytes("ok-3", "지진 발생"))]
    publish(p.settings, records)

    want_failed = len(POISON) + 1
    failed = consume(p.settings, [p.settings.topic_failed],
                     until=lambda r: len(r) >= want_failed, timeout=240)
    reasons = {}
    for r in failed:
        rec = FailureRecord.from_bytes(r.value)
        reasons.setdefault(rec.reason, []).append(rec)
    assert set(reasons) == set(POISON) | {"duplicate_id_conflict"}
    assert all(len(v) == 1 for v in reasons.values())
    assert reasons["duplicate_id_conflict"][0].alert_id == "ok-1"
    assert reasons["text_too_long"][0].alert_id == "p-long"
    bad = reasons["not_utf8"][0]
    assert bad.payload_encoding == "base64"
    assert base64.b64decode(bad.payload) == POISON["not_utf8"][0]
    assert reasons["missing_field"][0].stage == "ingest"
    assert not any(r.transient for v in reasons.values() for r in v)
    assert sorted(ready_ids(p, len(good))) == good  # once each: the conflict made none


def test_reused_id_after_completion_re_emits_without_recomputing(pipeline_factory):
    p = pipeline_factory()
    worker = p.start_worker()
    publish(p.settings, [("again", alert_bytes("again", "Landslide risk on the mountain road"))])
    assert ready_ids(p, 1) == ["again"]
    publish(p.settings, [("again", alert_bytes("again", "Landslide risk on the mountain road"))])
    records = consume(p.settings, [p.settings.topic_ready], until=lambda r: len(r) >= 2,
                      timeout=120)
    first, second = (AnimationReady.from_bytes(r.value) for r in records[:2])
    assert first.renditions[0].s3_uri == second.renditions[0].s3_uri
    assert first.renditions[0].bytes == second.renditions[0].bytes
    assert worker.metric("alertanim_stage_processed", stage="generate") == 1


def test_sigkill_mid_pipeline_loses_and_doubles_nothing(pipeline_factory):
    p = pipeline_factory()
    first = p.start_worker()
    ids = [f"kill-{i:02d}" for i in range(12)]
    publish(p.settings, [(i, alert_bytes(i, "Explosion reported at the port")) for i in ids])
    consume(p.settings, [p.settings.topic_ready], until=lambda r: len(r) >= 2, timeout=120)
    first.kill()
    t_kill = time.time()
    p.start_worker()
    records = ready_records(p, len(ids))
    assert len(stamped_before(records, t_kill)) < len(ids), "the kill came mid-pipeline"
    # inside at least once; what leaves, a completion and its input's offset in one
    # transaction, exactly once
    assert sorted(AnimationReady.from_bytes(r.value).alert_id for r in records) == ids


def test_storage_outage_is_retried(pipeline_factory, s3_proxy):
    p = pipeline_factory(s3_endpoint=s3_proxy.endpoint, max_attempts=3, retry_backoff_max_s=2)
    worker = p.start_worker()
    ids = [f"s3down-{i}" for i in range(6)]
    publish(p.settings, [(ids[0], alert_bytes(ids[0], "Smoke over the district"))])
    consume(p.settings, [p.settings.topic_ready], until=lambda r: len(r) >= 1, timeout=120)
    s3_proxy.pause()
    try:
        publish(p.settings, [(i, alert_bytes(i, "Smoke over the district")) for i in ids[1:]])
        time.sleep(5)
    finally:
        s3_proxy.resume()
    assert sorted(ready_ids(p, len(ids))) == ids
    failed = consume(p.settings, [p.settings.topic_failed], until=lambda r: False, timeout=2)
    assert failed == []
    assert worker.metric("alertanim_stage_retries") > 0, "the outage was ridden out by retries"


def test_broker_restart_mid_run(pipeline_factory, kafka):
    """The session's broker stopped and started again on its port and data with alerts in
    flight: each alert's AnimationReady arrives exactly once."""
    p = pipeline_factory()
    p.start_worker()
    ids = [f"restart-{i:02d}" for i in range(8)]
    text = "Typhoon approaching the coast"
    publish(p.settings, [(i, alert_bytes(i, text)) for i in ids[:2]])
    consume(p.settings, [p.settings.topic_ready], until=lambda r: len(r) >= 1, timeout=120)
    # four go in just before the stop: no machine runs them through every stage in the moment
    # between the broker's ack and its shutdown, so they are in flight when it goes down
    in_flight = ids[2:6]
    publish(p.settings, [(i, alert_bytes(i, text)) for i in in_flight])
    kafka.stop()
    t_down = time.time()  # from here until the start nothing can commit
    kafka.start()
    publish(p.settings, [(i, alert_bytes(i, text)) for i in ids[6:]])
    records = ready_records(p, len(ids))
    per_alert = collections.Counter(r.key.decode() for r in records)
    assert per_alert == {i: 1 for i in ids}, "each alert's AnimationReady exactly once"
    # what a read-committed consumer had by the stop: not every alert sent before it
    done_before = stamped_before(records, t_down) & set(in_flight)
    assert len(done_before) < len(in_flight), "the stop came with alerts still in flight"


def test_an_s3_auth_failure_keeps_the_secrets_out_of_logs_and_failure_records(kafka, model_cache,
                                                                           tiny):
    """The path that really handles the secret: every request is signed with it, and the
    server refuses the signature."""
    import uuid

    from deploy.local.harness import S3Server

    from tests.support.deployment import Pipeline

    s3 = S3Server(auth=True).start()
    wrong = f"wrong-{uuid.uuid4().hex}"
    p = Pipeline(kafka, s3, model_cache, s3_secret_access_key=wrong)
    try:
        worker = p.start_worker()
        publish(p.settings, [("auth-1", alert_bytes("auth-1", "A fire has broken out"))])
        failed = consume(p.settings, [p.settings.topic_failed], until=lambda r: len(r) >= 1,
                         timeout=120)
        record = FailureRecord.from_bytes(failed[0].value)
        assert record.reason == "store_refused" and not record.transient
        assert "SignatureDoesNotMatch" in record.message
        worker.stop()
        log = worker.log.read_text(errors="replace")
        assert "SignatureDoesNotMatch" in log or "store_refused" in log
        for secret in (wrong, s3.secret_key):
            assert secret.encode() not in failed[0].value
            assert secret not in log
    finally:
        p.stop()
        s3.stop()


def test_scaling_out_then_in_while_alerts_flow(pipeline_factory):
    """What KEDA does to a role: add a consumer under load, later remove one."""
    p = pipeline_factory()
    a = p.start_worker()
    ids = [f"flow-{i:02d}" for i in range(30)]
    publish(p.settings, [(i, alert_bytes(i, "Flood warning for the valley")) for i in ids])
    consume(p.settings, [p.settings.topic_ready], until=lambda r: len(r) >= 3, timeout=180)
    b = p.start_worker()  # joins the group: partitions rebalance onto it
    consume(p.settings, [p.settings.topic_ready], until=lambda r: len(r) >= 12, timeout=300)
    taken_by_b = b.metric("alertanim_stage_processed")  # any stage's messages
    a.stop()  # leaves the group: b takes over every partition
    seen = ready_ids(p, len(ids), timeout=400)
    assert sorted(set(seen)) == ids, "nothing lost across two rebalances"
    assert len(seen) == len(ids), "nothing doubled"
    assert taken_by_b > 0, "the new worker took a share while both ran"
    assert b.metric("alertanim_stage_processed", stage="animate") > 0
