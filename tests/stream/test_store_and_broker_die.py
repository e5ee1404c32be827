"""The servers themselves die: the object store and the Kafka broker are SIGKILLed mid-run and
started again on the same port and data. Each test kills servers of its own (`own_s3`,
`own_kafka`); the session's are never killed."""

import collections
import hashlib
import time
import urllib.request

from alertanim.schemas import AnimationReady, FailureRecord

from tests.support.kafka import alert_bytes, consume, publish, stamped_before


def ready_records(p, ids, timeout):
    """Committed completion records until every id in `ids` has one, then a few seconds more so
    that a duplicate arriving late is seen too."""
    want = {i.encode() for i in ids}
    records = consume(p.settings, [p.settings.topic_ready],
                      until=lambda r: want <= {x.key for x in r}, timeout=timeout)
    records += consume(p.settings, [p.settings.topic_ready], until=lambda r: False,
                       timeout=3)[len(records):]
    return records


def ready_events(p, ids, timeout):
    return [AnimationReady.from_bytes(r.value) for r in ready_records(p, ids, timeout)]


def failures(p):
    records = consume(p.settings, [p.settings.topic_failed], until=lambda r: False, timeout=2)
    return [FailureRecord.from_bytes(r.value) for r in records]


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what} did not happen within {timeout}s")


def alive(worker) -> str:
    return "" if worker.proc.poll() is None else (
        f"the worker exited with {worker.proc.returncode}:\n"
        + worker.log.read_text(errors="replace")[-4000:])


def test_the_store_is_killed_and_restarted_mid_run(own_s3, kafka, pipeline_on):
    """SIGKILL the S3 server with alerts in flight, start it again on its port and data: every
    alert ends with exactly one AnimationReady, nothing fails, and what was stored before the
    kill is still there."""
    p = pipeline_on(kafka, own_s3, retry_backoff_max_s=2)
    worker = p.start_worker()
    ids = [f"s3kill-{i}" for i in range(6)]
    text = "Wildfire spreading toward the town, evacuate now"
    t_run = time.monotonic()
    publish(p.settings, [(ids[0], alert_bytes(ids[0], text))])
    [before] = ready_events(p, ids[:1], timeout=120)
    gif_before = before.rendition("image/gif")

    publish(p.settings, [(i, alert_bytes(i, text)) for i in ids[1:]])
    # in flight: at least one more alert is past ingest and none of them has finished
    wait_for(lambda: worker.metric("alertanim_stage_processed", stage="ingest") >= 2, 60,
             "a second alert reaching the worker")
    done_at_kill = worker.metric("alertanim_stage_processed", stage="animate")
    t_kill = time.monotonic()
    own_s3.stop(kill=True)
    time.sleep(5)
    own_s3.start()
    outage = time.monotonic() - t_kill

    events = ready_events(p, ids, timeout=150)
    failed = failures(p)
    seen = [e.alert_id for e in events]
    retries = worker.metric("alertanim_stage_retries")
    print(f"\nstore killed: alerts={len(ids)} completed={len(set(seen))} events={len(seen)} "
          f"failed={len(failed)} outage_s={outage:.1f} completed_before_kill={done_at_kill:.0f} "
          f"retries={retries:.0f} total_s={time.monotonic() - t_run:.1f}")
    assert not alive(worker), alive(worker)
    assert sorted(seen) == ids, "exactly one AnimationReady per alert"
    assert failed == [], [(f.alert_id, f.stage, f.reason, f.message) for f in failed]
    assert done_at_kill < len(ids), "the kill came with alerts still in flight"
    assert retries > 0, "the outage was ridden out by retries"

    # What was written before the kill is still there: through the store's own API, and through
    # the URL presigned before the kill.
    bucket_and_key = gif_before.s3_uri.removeprefix("s3://")
    bucket, key = bucket_and_key.split("/", 1)
    assert bucket == own_s3.bucket
    stored = own_s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == gif_before.sha256
    with urllib.request.urlopen(gif_before.url, timeout=10) as resp:
        assert resp.read() == stored

    # ... and so is the ledger: the first alert published again is answered from the store,
    # nothing is recomputed.
    generated = worker.metric("alertanim_stage_processed", stage="generate")
    publish(p.settings, [(ids[0], alert_bytes(ids[0], text))])
    again = consume(p.settings, [p.settings.topic_ready],
                    until=lambda r: [x.key for x in r].count(ids[0].encode()) >= 2, timeout=60)
    [_, second] = [AnimationReady.from_bytes(r.value) for r in again if r.key == ids[0].encode()]
    assert second.rendition("image/gif").sha256 == gif_before.sha256
    assert worker.metric("alertanim_stage_processed", stage="generate") == generated


def test_the_broker_is_killed_and_restarted_mid_run(own_kafka, s3, pipeline_on):
    """SIGKILL the Kafka broker with alerts in flight, start it again on its port and data: every
    alert ends with exactly one AnimationReady, read committed, nothing fails, and the worker
    rides the outage out without restarting."""
    p = pipeline_on(own_kafka, s3, retry_backoff_max_s=2)
    worker = p.start_worker()
    ids = [f"kafkakill-{i}" for i in range(8)]
    text = "Tsunami warning: move to higher ground immediately"
    t_run = time.monotonic()
    publish(p.settings, [(i, alert_bytes(i, text)) for i in ids[:2]])
    ready_records(p, ids[:1], timeout=120)
    # four more go in just before the kill: no machine runs four alerts through every stage in
    # the moment between the broker's ack and the SIGKILL, so they are certainly in flight
    in_flight = ids[2:6]
    publish(p.settings, [(i, alert_bytes(i, text)) for i in in_flight])
    own_kafka.stop(kill=True)
    t_down = time.time()  # from here until the restart nothing can commit
    time.sleep(3)
    own_kafka.start()
    outage = time.time() - t_down
    # and alerts published after the restart flow too
    publish(p.settings, [(i, alert_bytes(i, text)) for i in ids[6:]])

    records = ready_records(p, ids, timeout=150)
    failed = failures(p)
    per_alert = collections.Counter(r.key.decode() for r in records)
    done_before = sorted(stamped_before(records, t_down) & set(in_flight))
    print(f"\nbroker killed: alerts={len(ids)} completed={len(per_alert)} events={len(records)} "
          f"duplicates={len(records) - len(per_alert)} failed={len(failed)} "
          f"outage_s={outage:.1f} in_flight_done_before_kill={len(done_before)} "
          f"total_s={time.monotonic() - t_run:.1f}")
    assert not alive(worker), alive(worker)
    assert per_alert == {i: 1 for i in ids}, "each alert's AnimationReady exactly once"
    assert failed == [], [(f.alert_id, f.stage, f.reason, f.message) for f in failed]
    # what a read-committed consumer had by the kill: not every alert sent before it
    assert len(done_before) < len(in_flight), "the kill came with alerts still in flight"
