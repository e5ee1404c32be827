"""Inputs at the broker's size limit, text and binary, over the real broker: each ends in exactly
one failure record that fits the failed topic (the whole payload kept in the object store when
the record had to be cut), and the worker goes on to the next alert."""

import base64
import hashlib
import json
import os

from alertanim.schemas import FailureRecord

from tests.support.kafka import alert_bytes, consume, publish

BROKER_LIMIT = 1_048_588  # the broker's default message.max.bytes


def binary(n: int) -> bytes:
    """`n` random bytes, the first never UTF-8's nor an XML document's (`<`), so the worker
    always reads them as what they are: not UTF-8."""
    return b"\xff" + os.urandom(n - 1)


def test_inputs_just_under_the_broker_limit_each_end_in_one_record(pipeline_factory):
    p = pipeline_factory()
    worker = p.start_worker()
    near = BROKER_LIMIT - 10_000
    inputs = {
        "binary-small": binary(10_000),  # fits as base64
        "binary-900k": binary(900_000),  # its base64 would not fit: cut, stored
        "binary-near": binary(near),
        "text-near": ("fire " * (near // 5)).encode(),  # UTF-8, not JSON: over the record limit
        "json-near": alert_bytes("big-json", "fire " * (near // 5 - 20)),  # text too long
    }
    publish(p.settings, [(None, raw) for raw in inputs.values()]
            + [("after-big", alert_bytes("after-big", "A fire has broken out"))])
    failed = consume(p.settings, [p.settings.topic_failed],
                     until=lambda r: len(r) >= len(inputs), timeout=240)
    ready = consume(p.settings, [p.settings.topic_ready], until=lambda r: len(r) >= 1,
                    timeout=240)
    records = [FailureRecord.from_bytes(r.value) for r in failed]
    by_hash = {r.payload_sha256: r for r in records}
    assert len(records) == len(by_hash) == len(inputs)  # one each, none twice
    s3 = p.s3.client()
    for name, raw in inputs.items():
        record = by_hash[hashlib.sha256(raw).hexdigest()]
        assert record.payload_bytes == len(raw), name
        assert len(record.to_bytes()) <= p.settings.max_record_bytes, name
        if record.payload_truncated:
            assert record.payload_key, name  # the whole payload is in the store
            obj = s3.get_object(Bucket=p.s3.bucket, Key=f"{p.settings.s3_prefix}/"
                                f"{record.payload_key}")["Body"].read()
            assert obj == raw, name
            head = (base64.b64decode(record.payload) if record.payload_encoding == "base64"
                    else record.payload.encode())
            assert raw.startswith(head) and head, name
    assert by_hash[hashlib.sha256(inputs["binary-small"]).hexdigest()].payload_truncated is False
    assert by_hash[hashlib.sha256(inputs["binary-900k"]).hexdigest()].reason == "not_utf8"
    assert by_hash[hashlib.sha256(inputs["json-near"]).hexdigest()].reason == "text_too_long"
    assert [json.loads(r.value)["alert_id"] for r in ready] == ["after-big"]
    assert worker.proc.poll() is None  # still running
