"""A Kafka client nobody here wrote: librdkafka, through its Python binding confluent-kafka,
publishes CAP 1.0, 1.1 and 1.2 documents the way other publishers do (unkeyed, and keyed by the
CAP identifier), and reads `ready`, `cap` and `instant` as a consumer of the service reads them
(isolation.level=read_committed). The renditions are fetched by their presigned URLs from the
session's S3 server and checked against their digests; each CAP answer is in its original's
version and valid against that version's OASIS schema."""

from __future__ import annotations

import hashlib
import time
import urllib.request
import uuid
from pathlib import Path

import confluent_kafka
import xmlschema

from alertanim.schemas import AnimationReady, InstantAnimation, parse_cap
from tests.support.kafka import alert_bytes

CAP = Path(__file__).parent.parent / "schemas" / "cap"
DOCUMENTS = {  # CAP version: a document of it
    "1.0": "nws_severe_thunderstorm_1_0.xml",
    "1.1": "usgs_earthquake_1_1.xml",
    "1.2": "nws_tornado_warning.xml",
}


def client_config(settings) -> dict:
    assert settings.security_protocol == "PLAINTEXT", "the session's broker is plain loopback"
    return {"bootstrap.servers": settings.bootstrap_servers,
            "security.protocol": settings.security_protocol.lower()}


def renamed(document: bytes, suffix: str) -> bytes:
    """The document under another CAP identifier: another message, another alert."""
    identifier = parse_cap(document).identifier
    old = f"<identifier>{identifier}</identifier>".encode()
    assert document.count(old) == 1
    return document.replace(old, f"<identifier>{identifier}{suffix}</identifier>".encode())


def produce(settings, records: list[tuple[bytes | None, bytes]]) -> None:
    """librdkafka's producer, idempotent, every record acknowledged by all in-sync replicas."""
    producer = confluent_kafka.Producer({**client_config(settings), "acks": "all",
                                         "enable.idempotence": True})
    errors: list = []
    for key, value in records:
        producer.produce(settings.topic_alerts, value=value, key=key,
                         on_delivery=lambda err, msg: errors.append(err) if err else None)
    assert producer.flush(60) == 0, "every record delivered"
    assert errors == []


def read_committed(settings, topics: list[str], until, timeout: float) -> list:
    """librdkafka's consumer, from the beginning, read-committed: records of aborted or open
    transactions are never seen."""
    consumer = confluent_kafka.Consumer({
        **client_config(settings), "group.id": f"foreign-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
        "isolation.level": "read_committed"})
    consumer.subscribe(topics)
    records = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(records):
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None or msg.error().code() == \
                confluent_kafka.KafkaError._PARTITION_EOF, msg.error()
            if msg.error() is None:
                records.append(msg)
    finally:
        consumer.close()
    return records


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read()


def test_librdkafka_publishes_every_cap_version_under_any_key_and_reads_the_answers(
        pipeline_factory):
    p = pipeline_factory()
    p.start_worker()
    published = {}  # alert id: (CAP version, document)
    records = []
    for version, name in DOCUMENTS.items():
        document = (CAP / name).read_bytes()
        unkeyed, keyed = renamed(document, "-unkeyed"), renamed(document, "-keyed")
        for raw, key in ((unkeyed, None), (keyed, parse_cap(keyed).identifier.encode())):
            cap = parse_cap(raw)
            assert cap.version == version and key != cap.alert_id.encode()
            published[cap.alert_id] = (version, raw)
            records.append((key, raw))
    produce(p.settings, records)

    topics = [p.settings.topic_ready, p.settings.topic_cap, p.settings.topic_failed]
    out = read_committed(p.settings, topics, timeout=300,
                         until=lambda r: sum(m.topic() != p.settings.topic_failed
                                             for m in r) >= 2 * len(published))
    by_topic = {t: [m for m in out if m.topic() == t] for t in topics}
    assert by_topic[p.settings.topic_failed] == [], [m.value() for m in
                                                     by_topic[p.settings.topic_failed]]

    events = {m.key().decode(): AnimationReady.from_bytes(m.value())
              for m in by_topic[p.settings.topic_ready]}
    assert sorted(events) == sorted(published), "one event per alert, keyed by its id"
    assert len(by_topic[p.settings.topic_ready]) == len(published)
    for alert_id, event in events.items():
        version, raw = published[alert_id]
        assert event.alert_id == alert_id and event.cap == parse_cap(raw).ref
        for rendition in event.renditions:
            data = fetch(rendition.url)  # presigned, from the session's S3 server
            assert len(data) == rendition.bytes
            assert rendition.sha256 is None or hashlib.sha256(data).hexdigest() == rendition.sha256
            assert rendition.sha1 is None or hashlib.sha1(data).hexdigest() == rendition.sha1
        assert any(r.sha256 for r in event.renditions), "the event names its renditions' digests"

    answers = {m.key().decode(): m.value() for m in by_topic[p.settings.topic_cap]}
    assert sorted(answers) == sorted(published)
    schemas = {v: xmlschema.XMLSchema(str(CAP / f"CAP-v{v}.xsd")) for v in DOCUMENTS}
    for alert_id, answer in answers.items():
        version, raw = published[alert_id]
        schemas[version].validate(answer.decode())
        update = parse_cap(answer)
        assert (update.version, update.msg_type) == (version, "Update")
        assert update.references == [parse_cap(raw).ref]
        for info in update.infos:
            added = info.resources[-len(events[alert_id].renditions):]
            assert [r.mime_type for r in added] == [r.media_type
                                                   for r in events[alert_id].renditions]
            for res in added:
                data = fetch(res.uri)
                assert len(data) == res.size and hashlib.sha1(data).hexdigest() == res.digest


def test_librdkafka_reads_one_instant_event_per_alert_with_its_cloudevents_headers(
        pipeline_factory):
    """Only the front role runs (no model stage anywhere): a fire alert published unkeyed and one
    under a key of the publisher's own get one instant event each, keyed by the alert id; its
    renditions are fetched by their presigned URLs."""
    p = pipeline_factory()
    p.build_library("fire")
    p.start_worker("ingest,subject")
    text = "A fire has broken out in the building. Leave by the nearest exit."
    alerts = {"foreign-fire-unkeyed": None, "foreign-fire-keyed": b"a publisher's own key"}
    produce(p.settings, [(key, alert_bytes(alert_id, text)) for alert_id, key in alerts.items()])

    topics = [p.settings.topic_instant, p.settings.topic_failed]
    out = read_committed(p.settings, topics, timeout=120, until=lambda r: len(
        {m.key() for m in r if m.topic() == p.settings.topic_instant}) >= len(alerts))
    assert [m.value() for m in out if m.topic() == p.settings.topic_failed] == []
    assert sorted(m.key().decode() for m in out) == sorted(alerts), "one event per alert"
    for m in out:
        event = InstantAnimation.from_bytes(m.value())
        headers = {k: v for k, v in m.headers()}
        assert headers["ce_specversion"] == b"1.0"
        assert headers["ce_type"] == b"org.alertanim.animation.instant.v1"
        assert headers["content-type"] == b"application/json"
        assert headers["ce_id"] and headers["ce_source"]
        assert event.alert_id == m.key().decode() and event.hazard == "fire"
        for rendition in event.renditions:
            data = fetch(rendition.url)
            assert len(data) == rendition.bytes
            assert rendition.sha256 is None or hashlib.sha256(data).hexdigest() == rendition.sha256
