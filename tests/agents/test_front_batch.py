"""The front stages (ingest, the subject stage) a batch at a time, without a broker: one
transaction per input partition, outcomes in input order where order matters, and one instant
event per alert however its copies arrive (from the record that claimed its id)."""

import asyncio
import json
import threading
import time

import pytest

from alertanim.agents.emitter import Position
from alertanim.agents.processing import Input
from alertanim.schemas import FailureRecord, StageMessage
from tests.support.cap import quake_cancel
from tests.support.processor import FakeEmitter, make

SUBJECT = "alertanim.stage.subject"


def alert(alert_id: str, text: str = "A fire has broken out in the building") -> bytes:
    return json.dumps({"id": alert_id, "text": text}).encode()


def ingest_batch(proc, raws_at: list[tuple[bytes, Position]]) -> None:
    asyncio.run(proc.process_inputs("ingest", [Input(raw, at, b"") for raw, at in raws_at]))


def transactional(tmp_path, **kw):
    proc, sent = make(tmp_path, **kw)
    proc.outbox.emitter = FakeEmitter(out=False)
    return proc, proc.outbox.emitter


def test_a_batch_leaves_in_one_transaction_per_input_partition_with_its_last_offset(tmp_path):
    proc, emitter = transactional(tmp_path)
    ingest_batch(proc, [(alert("p0"), Position("alerts", 0, 5)),
                        (alert("p1"), Position("alerts", 1, 9)),
                        (b"{not json", Position("alerts", 0, 6)),
                        (alert("p2"), Position("alerts", 0, 7)),
                        (alert("p3"), Position("alerts", 1, 10))])
    by_partition = sorted(emitter.transactions)
    # partition 0: p0, the refusal and p2 in input order, committing past offset 7; partition 1
    # p1 and p3 past offset 10: two transactions for five inputs
    assert by_partition == [(0, [SUBJECT, "failed", SUBJECT], 8), (1, [SUBJECT, SUBJECT], 11)]
    keys = [r[1] for r in emitter.records]
    assert [k for k in keys if k in ("p0", "p2", None)] == ["p0", None, "p2"]
    assert [k for k in keys if k in ("p1", "p3")] == ["p1", "p3"]
    failure = FailureRecord.from_bytes([v for t, _, v in emitter.records if t == "failed"][0])
    assert failure.reason == "not_json" and failure.stage == "ingest"


def test_a_cap_cancel_before_its_alert_in_one_batch_still_cancels_it(tmp_path):
    from tests.support.cap import read

    proc, emitter = transactional(tmp_path)
    original = read("usgs_earthquake_1_1.xml")
    cancel = quake_cancel()
    # the alert's claim would be written first if the two were worked out side by side: make
    # the Cancel slow, so only keeping their order gives the right answer
    real = proc.adapter.ledger.cancel

    def slow_cancel(*args, **kw):
        time.sleep(0.3)
        return real(*args, **kw)
    proc.adapter.ledger.cancel = slow_cancel
    ingest_batch(proc, [(cancel, Position("alerts", 0, 0)),
                        (original, Position("alerts", 1, 0))])
    failed = [FailureRecord.from_bytes(v) for t, _, v in emitter.records if t == "failed"]
    assert sorted(f.reason for f in failed) == ["cancelled", "cap_cancel"]
    assert not [t for t, _, _ in emitter.records if t == SUBJECT]


def test_two_alerts_under_one_id_in_one_batch_the_first_claims_it(tmp_path):
    proc, emitter = transactional(tmp_path)
    real = proc.adapter.ledger.claim
    first_text = "A fire has broken out in the building"

    def slow_first(a, source, run):
        if a.text == first_text:
            time.sleep(0.3)  # side by side, the second would claim the id first
        return real(a, source, run)
    proc.adapter.ledger.claim = slow_first
    ingest_batch(proc, [(alert("dup", first_text), Position("alerts", 0, 0)),
                        (alert("dup", "Flash flood warning"), Position("alerts", 1, 0))])
    [hand_over] = [v for t, _, v in emitter.records if t == SUBJECT]
    assert StageMessage.from_bytes(hand_over).alert.text == first_text
    [failure] = [FailureRecord.from_bytes(v) for t, _, v in emitter.records if t == "failed"]
    assert failure.reason == "duplicate_id_conflict"


def test_unrelated_alerts_are_worked_out_side_by_side(tmp_path):
    proc, emitter = transactional(tmp_path)
    real = proc.adapter.ledger.claim
    inside, most = [0], [0]
    lock = threading.Lock()

    def counted(*args):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.05)
        try:
            return real(*args)
        finally:
            with lock:
                inside[0] -= 1
    proc.adapter.ledger.claim = counted
    ingest_batch(proc, [(alert(f"s{i}"), Position("alerts", i % 2, i)) for i in range(8)])
    assert len([t for t, _, _ in emitter.records if t == SUBJECT]) == 8
    assert most[0] > 1


def test_a_transaction_refused_as_a_whole_is_tried_one_input_at_a_time(tmp_path):
    from aiokafka.errors import MessageSizeTooLargeError

    proc, emitter = transactional(tmp_path)
    real = emitter.emit

    async def refuse_with_big(topic, partition, records, next_offset):
        if any(topic == SUBJECT and key == "big" for topic, key, *_ in records):
            raise MessageSizeTooLargeError("too large")
        await real(topic, partition, records, next_offset)
    emitter.emit = refuse_with_big
    ingest_batch(proc, [(alert("ok1"), Position("alerts", 0, 0)),
                        (alert("big"), Position("alerts", 0, 1)),
                        (alert("ok2"), Position("alerts", 0, 2))])
    # the batch's one transaction was refused: each input then alone, the bad one a failure
    assert emitter.transactions == [(0, [SUBJECT], 1), (0, ["failed"], 2), (0, [SUBJECT], 3)]
    failure = FailureRecord.from_bytes(emitter.records[1][2])
    assert failure.alert_id == "big"


@pytest.fixture
def with_fire(tmp_path, tiny):
    from alertanim.pipeline.library import entries

    proc, emitter = transactional(tmp_path)
    wanted = [e for e in entries() if e.name == "fire"]
    assert proc.adapter.library.build(proc.adapter.host.models(), wanted) == ["fire"]
    return proc, emitter


def subject_batch(proc, raws_at):
    asyncio.run(proc.process_inputs("subject", [
        Input(raw, at, StageMessage.from_bytes(raw).alert_id.encode()) for raw, at in raws_at]))


def instants(emitter, since: int) -> list[str]:
    return sorted(k for t, k, _ in emitter.records[since:] if t == "instant")


def test_copies_of_an_alert_send_one_instant_event(with_fire):
    proc, emitter = with_fire
    # the same alert published twice (another record), and another alert, in one batch each
    batch = [(alert("c1"), Position("alerts", 0, 0)), (alert("c1"), Position("alerts", 1, 0)),
             (alert("c2"), Position("alerts", 0, 1))]
    ingest_batch(proc, batch)
    handed = [v for t, _, v in emitter.records if t == SUBJECT]
    assert len(handed) == 3  # both copies run (the second is suppressed at the end)
    # the record that claimed each id sends its instant event, beside its hand-over
    assert instants(emitter, 0) == ["c1", "c2"]
    by_partition = {p: topics for p, topics, _ in emitter.transactions}
    assert by_partition[0].count("instant") == 2 and "instant" not in by_partition[1]
    # the batch's transaction did not commit (a worker killed): read again at the same
    # positions, the records that claimed the ids send the events again, and only those
    before = len(emitter.records)
    ingest_batch(proc, batch)
    assert instants(emitter, before) == ["c1", "c2"]
    # the subject stage sends none: the instant event left with ingest's hand-over
    before = len(emitter.records)
    subject_batch(proc, [(raw, Position(SUBJECT, 0, n)) for n, raw in enumerate(handed)])
    assert instants(emitter, before) == []
    assert sum(t == "alertanim.stage.generate" for t, _, _ in emitter.records[before:]) == 3


def test_an_alert_read_again_after_its_hand_over_committed_sends_no_instant_event(with_fire):
    """A copy of the alert under a new record (a re-publication, or a publisher's retry) after
    the first one's transaction committed: the first claim is the other record's."""
    proc, emitter = with_fire
    ingest_batch(proc, [(alert("k1"), Position("alerts", 0, 4))])
    assert instants(emitter, 0) == ["k1"]
    before = len(emitter.records)
    ingest_batch(proc, [(alert("k1"), Position("alerts", 2, 9))])
    assert instants(emitter, before) == []
    assert [t for t, _, _ in emitter.records[before:]] == [SUBJECT]  # it still runs


def test_front_batches_can_be_turned_off(tmp_path):
    from alertanim.agents.settings import Settings

    assert Settings(front_batch_max=1).front_batching is False
    assert Settings(front_batch_window_ms=0).front_batching is False
    assert Settings().front_batching is True
    with pytest.raises(ValueError):
        Settings(front_batch_max=0)
