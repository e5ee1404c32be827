"""Stage messages cannot take over an alert, over the real broker and S3 server. Anyone who can
write an intermediate topic can copy a message off it: the attack tried here is the one that
worked before, a subject-stage message of a real tornado alert copied from its topic, its text
made harmless and its run new, which made the worker publish a second `ready` under the real
alert's id; and a message under the victim's id with other content at a later stage, which
would have overwritten the victim's images. Both now end as a failure record naming the
reason; no second `ready` goes out, and every object of the victim's is unchanged, byte for
byte. (tests/agents/test_forgery.py covers every stage without a broker.)"""

from __future__ import annotations

import asyncio
import hashlib
import time

from alertanim.schemas import AnimationReady, FailureRecord, StageMessage

from .conftest import alert_bytes, consume, publish

VICTIM = "tornado-victim"
TEXT = "Tornado warning: a confirmed tornado is moving east, take shelter in a basement now"


def objects(s3, settings, alert_id: str) -> dict[str, str]:
    """Every object of the alert in the store (its claim and its run folders): key → sha256."""
    client = s3.client()
    found = {}
    for prefix in (f"{settings.s3_prefix}/runs/{alert_id}/",
                   f"{settings.s3_prefix}/alerts/{alert_id}."):
        token = None
        while True:
            page = client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix,
                                          **({"ContinuationToken": token} if token else {}))
            for item in page.get("Contents", []):
                body = client.get_object(Bucket=s3.bucket, Key=item["Key"])["Body"].read()
                found[item["Key"]] = hashlib.sha256(body).hexdigest()
            token = page.get("NextContinuationToken")
            if not token:
                break
    return found


def copied_from(settings, stage: str, alert_id: str) -> StageMessage:
    """The alert's message for `stage`, read off the stage's topic as anyone who can read it
    would."""
    [record] = [r for r in consume(settings, [settings.stage_topic(stage)],
                                   until=lambda rs: any(r.key == alert_id.encode() for r in rs),
                                   timeout=60) if r.key == alert_id.encode()]
    return StageMessage.from_bytes(record.value)


def send(settings, topic: str, key: str, value: bytes) -> None:
    async def run():
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topic, value=value, key=key.encode())
        finally:
            await producer.stop()
    asyncio.run(run())


def test_forged_stage_messages_are_refused_and_the_victim_is_untouched(pipeline_factory, s3):
    p = pipeline_factory()
    s = p.settings
    worker = p.start_worker()
    publish(s, [(VICTIM, alert_bytes(VICTIM, TEXT))])
    [first] = consume(s, [s.topic_ready], until=lambda r: len(r) >= 1, timeout=300)
    ready = AnimationReady.from_bytes(first.value)
    assert ready.alert_id == VICTIM and ready.hazard == "tornado"
    deadline = time.monotonic() + 120  # the report and the marker come once the event is out

    def settled(keys) -> bool:
        return {"report.html", "emitted"} <= {k.rsplit("/", 1)[-1] for k in keys}
    while not settled(before := objects(s3, s, VICTIM)):
        assert time.monotonic() < deadline, sorted(before)
        time.sleep(1)
    assert any(k.endswith("/renditions/animation.gif") for k in before), sorted(before)

    # 1. the subject stage's message copied off its topic: harmless text, a new run
    real = copied_from(s, "subject", VICTIM)
    assert real.run == ready.run
    harmless = real.model_copy(update={
        "run": "a1b2c3d4e5f6",
        "alert": real.alert.model_copy(update={"text": "All clear, nothing is happening"})})
    send(s, s.stage_topic("subject"), VICTIM, harmless.to_bytes())
    # 2. a message under the victim's id, its run and its keys, with other content, later on
    later = copied_from(s, "score", VICTIM)
    other = later.model_copy(update={
        "alert": later.alert.model_copy(update={"text": "Evacuate: the dam has broken"})})
    send(s, s.stage_topic("score"), VICTIM, other.to_bytes())

    failed = consume(s, [s.topic_failed], until=lambda r: len(r) >= 2, timeout=120)
    records = sorted((FailureRecord.from_bytes(r.value) for r in failed), key=lambda r: r.stage)
    assert [(r.stage, r.reason, r.alert_id) for r in records] == [
        ("score", "forged_message", VICTIM), ("subject", "foreign_run", VICTIM)]
    assert all(r.attempts == 1 for r in records)
    time.sleep(10)  # whatever the forgeries could still lead to, give it time
    events = consume(s, [s.topic_ready], until=lambda r: False, timeout=5)
    assert [AnimationReady.from_bytes(r.value).completed_at for r in events] == [
        ready.completed_at], "a second ready went out"
    assert objects(s3, s, VICTIM) == before  # no object changed, none was added
    assert worker.metric("alertanim_stage_processed", stage="animate") == 1
