"""The per-message logic without a broker: a LocalStore, a list for the sent messages."""

import asyncio
import json
import string

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from alertanim.agents.emitter import Position
from alertanim.agents.processing import Input
from alertanim.agents.host import ModelHost
from alertanim.agents.settings import Settings
from alertanim.agents.topology import parse_stages
from alertanim.pipeline import graph
from alertanim.schemas import FailureRecord, ImageRefs, StageMessage, StoreUnavailable
from tests.support.processor import FakeEmitter, FlakyEmitter, at, drive, make

def ingest(processor, raw, source="alerts:0:0"):
    asyncio.run(processor.process("ingest", raw, at(source)))


def test_valid_alert_goes_to_the_first_stage(tmp_path):
    proc, sent = make(tmp_path)
    ingest(proc, json.dumps({"id": "a1", "text": "서울 화재 발생"}).encode())
    [(topic, key, value)] = sent
    msg = StageMessage.from_bytes(value)
    assert topic == "alertanim.stage.subject" and key == "a1"
    assert msg.stage == "subject" and msg.artifacts == {} and msg.schema_version == 2
    asyncio.run(proc.process("subject", value))
    subject = StageMessage.from_bytes(sent[-1][2]).artifacts["subject"].value
    assert sent[-1][0] == "alertanim.stage.generate"
    assert subject["word"] == "fire" and subject["prompt"].isascii()


def test_redelivery_goes_on_until_the_animation_went_out(tmp_path):
    proc, sent = make(tmp_path)
    raw = json.dumps({"id": "a2", "text": "flood"}).encode()
    ingest(proc, raw, "alerts:1:5")
    ingest(proc, raw, "alerts:1:5")  # redelivered after a crash, nothing sent yet
    ingest(proc, raw, "alerts:1:9")  # re-published while in flight: not lost either
    assert [t for t, _, _ in sent] == ["alertanim.stage.subject"] * 3
    run = StageMessage.from_bytes(sent[0][2]).run
    proc.adapter.store.put(proc.adapter.ledger.emitted_key("a2", run), b"", "x")
    ingest(proc, raw, "alerts:1:5")  # redelivered after its event went out
    assert len(sent) == 3
    assert proc.metrics.value("alertanim_stage_duplicates_total", stage="ingest") == 1


def first_stage_message(proc, sent, alert_id="a3"):
    ingest(proc, json.dumps({"id": alert_id, "text": "fire"}).encode())
    return sent[-1][2]


def test_non_transient_error_is_retried_then_recorded(tmp_path):
    proc, sent = make(tmp_path, max_attempts=3)
    calls = []
    handed = first_stage_message(proc, sent)

    def broken(stage, msgs):
        calls.append(stage)
        raise RuntimeError("model exploded")
    proc.adapter.run_stage = broken
    asyncio.run(proc.process("subject", handed))
    record = FailureRecord.from_bytes(sent[-1][2])
    assert sent[-1][0] == "failed"
    assert len(calls) == 3 and record.attempts == 3
    assert record.stage == "subject" and record.reason == "stage_error"
    assert record.error_class == "builtins.RuntimeError" and not record.transient
    assert json.loads(record.payload)["alert"]["id"] == "a3"
    assert proc.metrics.value("alertanim_stage_retries_total", stage="subject") == 2


def test_transient_error_is_retried_until_the_deadline_and_can_succeed(tmp_path):
    proc, sent = make(tmp_path, max_attempts=2, retry_deadline_s=30)
    raw = first_stage_message(proc, sent, "a4")
    calls = []
    real = proc.adapter.run_stage

    def flaky(stage, msgs):
        calls.append(1)
        if len(calls) < 6:  # more than max_attempts: transient errors go by the deadline
            raise StoreUnavailable("connection reset")
        return real(stage, msgs)
    proc.adapter.run_stage = flaky
    asyncio.run(proc.process("subject", raw))
    assert len(calls) == 6 and sent[-1][0] == "alertanim.stage.generate"
    assert proc.metrics.value("alertanim_stage_retries_total", stage="subject") == 5


def test_transient_errors_past_the_deadline_are_recorded(tmp_path):
    proc, sent = make(tmp_path, retry_deadline_s=0.3, retry_backoff_s=0.05,
                      retry_backoff_max_s=0.05)
    raw = first_stage_message(proc, sent, "a5")

    def down(stage, msgs):
        raise StoreUnavailable("store away")
    proc.adapter.run_stage = down
    asyncio.run(proc.process("subject", raw))
    record = FailureRecord.from_bytes(sent[-1][2])
    assert record.reason == "store_unavailable" and record.transient and record.attempts > 3


@pytest.mark.parametrize("raw, reason", [
    (b'{"schema_version": 2}', "invalid_message"),
    (b"\xff\xfe", "invalid_message"),
])
def test_garbage_on_an_internal_topic_is_recorded(tmp_path, raw, reason):
    proc, sent = make(tmp_path)
    asyncio.run(proc.process("mask", raw))
    record = FailureRecord.from_bytes(sent[0][2])
    assert record.stage == "mask" and record.reason == reason and record.attempts == 1


def test_a_message_naming_another_alerts_objects_is_refused(tmp_path, tiny):
    """A stage message is not trusted to name keys: the ledger derives them."""
    proc, sent = make(tmp_path)
    raw = first_stage_message(proc, sent, "victim")
    asyncio.run(proc.process("subject", raw))
    asyncio.run(proc.process("generate", sent[-1][2]))
    good = StageMessage.from_bytes(sent[-1][2])
    victim_key = good.artifacts["candidates"].keys[0]
    before = proc.adapter.store.get(victim_key)
    ingest(proc, json.dumps({"id": "attacker", "text": "fire"}).encode(), "alerts:0:1")
    evil = StageMessage.from_bytes(sent[-1][2]).model_copy(update={
        "stage": "score", "artifacts": good.artifacts})
    asyncio.run(proc.process("score", evil.to_bytes()))
    record = FailureRecord.from_bytes(sent[-1][2])
    assert record.reason == "invalid_message" and record.alert_id == "attacker"
    assert "outside this alert's run" in record.message
    traversal = evil.model_copy(update={"run": good.run, "artifacts": {
        "candidates": ImageRefs(keys=[f"runs/attacker/{good.run}/../../victim/x.png"])}})
    asyncio.run(proc.process("score", traversal.to_bytes()))
    assert FailureRecord.from_bytes(sent[-1][2]).reason == "invalid_message"
    assert proc.adapter.store.get(victim_key) == before


def test_a_stage_message_missing_an_input_is_refused(tmp_path):
    proc, sent = make(tmp_path)
    msg = StageMessage.from_bytes(first_stage_message(proc, sent, "m1"))
    asyncio.run(proc.process("sample", msg.model_copy(update={"stage": "sample"}).to_bytes()))
    record = FailureRecord.from_bytes(sent[-1][2])
    assert record.reason == "invalid_message" and "reads 'best'" in record.message


def test_a_send_the_broker_refuses_ends_in_a_record_and_the_next_message_flows(tmp_path):
    from aiokafka.errors import MessageSizeTooLargeError

    proc, sent = make(tmp_path)
    refused = []

    async def picky(topic, key, value, headers=()):
        if key == "big" and topic != "failed":
            refused.append(topic)
            raise MessageSizeTooLargeError("record too large")
        sent.append((topic, key, value))
    proc.outbox.send_one = picky
    ingest(proc, json.dumps({"id": "big", "text": "fire"}).encode(), "alerts:0:1")
    ingest(proc, json.dumps({"id": "next", "text": "fire"}).encode(), "alerts:0:2")
    assert refused == ["alertanim.stage.subject"], "not retried: the broker will never take it"
    record = FailureRecord.from_bytes(sent[0][2])
    assert sent[0][0] == "failed" and record.reason == "send_refused"
    assert sent[1][:2] == ("alertanim.stage.subject", "next")


def test_a_failure_record_too_large_for_the_broker_is_cut_and_says_so(tmp_path):
    import base64
    import hashlib

    proc, sent = make(tmp_path, max_record_bytes=20_000)
    raw = b"\xff" + bytes(range(256)) * 200  # not UTF-8, base64 grows it by a third
    ingest(proc, raw)
    record = FailureRecord.from_bytes(sent[0][2])
    assert len(sent[0][2]) <= 20_000
    assert record.reason == "not_utf8" and record.payload_truncated
    assert record.payload_bytes == len(raw)
    assert record.payload_sha256 == hashlib.sha256(raw).hexdigest()
    assert raw.startswith(base64.b64decode(record.payload))
    assert proc.adapter.store.get(record.payload_key) == raw


def test_a_broker_that_is_away_is_waited_for(tmp_path):
    from aiokafka.errors import KafkaConnectionError

    proc, sent = make(tmp_path)
    failures = []

    async def flaky_send(topic, key, value, headers=()):
        if len(failures) < 3:
            failures.append(topic)
            raise KafkaConnectionError("broker away")
        sent.append((topic, key, value))
    proc.outbox.send_one = flaky_send
    ingest(proc, json.dumps({"id": "k1", "text": "fire"}).encode())
    assert len(failures) == 3
    assert [(t, k) for t, k, _ in sent] == [("alertanim.stage.subject", "k1")]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4), max_leaves=12)
alertish = st.fixed_dictionaries(
    {}, optional={"schema_version": st.sampled_from([1, 2, "1", None]),
                  "id": st.text(string.ascii_letters + string.digits + "-._:/ ", max_size=20)
                  | st.integers(),
                  "text": st.text(max_size=60) | st.integers() | st.none(),
                  "sent": st.text(max_size=30), "language": st.text(max_size=8),
                  "event": st.text(max_size=20) | st.none()})


@pytest.mark.parametrize("kind", ["bytes", "json", "alertish"])
def test_ingest_never_raises_and_always_answers(tmp_path_factory, kind):
    strategy = {"bytes": st.binary(max_size=300),
                "json": json_values.map(lambda v: json.dumps(v).encode()),
                "alertish": alertish.map(lambda v: json.dumps(v).encode())}[kind]

    @hsettings(max_examples=150, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(raw=strategy)
    def check(raw):
        proc, sent = make(tmp_path_factory.mktemp("store"))
        ingest(proc, raw)
        assert len(sent) == 1, "exactly one answer: the next stage or a failure record"
        topic, _, value = sent[0]
        if topic == "failed":
            record = FailureRecord.from_bytes(value)
            assert record.stage == "ingest" and record.reason and record.message
        else:
            assert topic == "alertanim.stage.subject"
            StageMessage.from_bytes(value)
    check()


@pytest.mark.parametrize("raw", [b"[" * 100_000 + b"]" * 100_000,
                                 b'{"id": "n1", "text": "fire", "x": ' + b"9" * 5000 + b"}"])
def test_hostile_json_is_refused_as_not_json(tmp_path, raw):
    proc, sent = make(tmp_path)
    ingest(proc, raw)
    record = FailureRecord.from_bytes(sent[0][2])
    assert record.reason == "not_json" and record.attempts == 1


def advance_to(proc, sent, stage, alert_id, text):
    """Run one alert through ingest and the stages before `stage`; its message for `stage`."""
    ingest(proc, json.dumps({"id": alert_id, "text": text}).encode(),
           f"alerts:0:{int.from_bytes(alert_id.encode(), 'big')}")
    current = "subject"
    while current != stage:
        asyncio.run(proc.process(current, sent[-1][2]))
        current = StageMessage.from_bytes(sent[-1][2]).stage
    return sent[-1][2]


@pytest.mark.parametrize("stage", ["generate", "sample"])
def test_a_batch_of_alerts_gives_one_result_each(tmp_path, tiny, stage):
    proc, sent = make(tmp_path)
    raws = [advance_to(proc, sent, stage, f"b{i}", t) for i, t in
            enumerate(["fire", "flood", "지진"])]
    before = len(sent)
    asyncio.run(proc.process_many(stage, raws + [b"{broken"]))
    out = sent[before:]
    assert sorted(key for _, key, _ in out if key) == ["b0", "b1", "b2"]
    assert [FailureRecord.from_bytes(v).reason for t, _, v in out if t == "failed"] == [
        "invalid_message"]
    assert proc.metrics.value("alertanim_stage_batch_size_sum", stage=stage) == 3


def fail_batches_and(proc, alert_id: str) -> None:
    """The adapter refuses every batch of more than one message, and `alert_id` alone."""
    real = proc.adapter.run_stage

    def fussy(stage, msgs):
        if len(msgs) > 1 or msgs[0].alert_id == alert_id:
            raise RuntimeError("out of memory for this batch")
        return real(stage, msgs)
    proc.adapter.run_stage = fussy


def test_a_failing_batch_is_retried_one_alert_at_a_time(tmp_path, tiny):
    proc, sent = make(tmp_path, max_attempts=1)
    raws = [advance_to(proc, sent, "generate", f"c{i}", "fire") for i in range(3)]
    fail_batches_and(proc, "c1")
    before = len(sent)
    asyncio.run(proc.process_many("generate", raws))
    topics = {key: topic for topic, key, _ in sent[before:]}
    assert topics == {"c0": "alertanim.stage.score", "c1": "failed", "c2": "alertanim.stage.score"}


def test_animation_runs_beside_the_gpu_stages(tmp_path):
    """An animate that can only finish while a GPU stage is running: with one thread for both
    this would wait out its timeout and fail."""
    import threading

    proc, sent = make(tmp_path, max_attempts=1)
    gen_started, animated = threading.Event(), threading.Event()
    msg = StageMessage.from_bytes(first_stage_message(proc, sent, "o1"))

    def run_stage(stage, msgs):
        if stage == "generate":
            gen_started.set()
            assert animated.wait(10), "animate never ran while the GPU stage held its thread"
            return [msgs[0].model_copy(update={"stage": "score"})]
        assert gen_started.wait(10)
        animated.set()
        return [msgs[0].model_copy(update={"stage": "done"})]
    proc.adapter.run_stage = run_stage

    async def both():
        await asyncio.gather(
            proc.process("generate", msg.model_copy(update={"stage": "generate"}).to_bytes()),
            proc.process("animate", msg.model_copy(update={"stage": "animate"}).to_bytes()))
    asyncio.run(both())
    assert sorted(t for t, _, _ in sent[1:]) == ["alertanim.stage.done", "alertanim.stage.score"]
    assert proc.threads.for_stage("generate") is not proc.threads.for_stage("animate")


def test_a_compiling_worker_warms_up_before_it_counts_as_ready(tmp_path, monkeypatch, tiny):
    import alertanim.agents.host

    calls = []

    def record(models, config, sizes, names):
        assert not host.ready  # readiness waits for the warm-up
        calls.append((list(sizes), list(names)))
        return []
    monkeypatch.setattr(alertanim.agents.host.graph, "warm_up", record)
    settings = Settings(store="local", local_dir=str(tmp_path), models="tiny", compile="default",
                        batch_max=3, stages="ingest,subject,generate,score")
    host = ModelHost(settings, parse_stages(settings.stages))
    models = host.models()
    assert calls == [([1, 2, 3], ["subject", "generate", "score"])]
    assert host.ready and models.fast_path[-1] == "compile=default"
    plain = ModelHost(Settings(store="local", local_dir=str(tmp_path), models="tiny"),
                      parse_stages("all"))
    plain.models()
    assert len(calls) == 1  # no compilation, no warm-up


def drive_cap_alert(proc, sent) -> None:
    """A CAP alert through every stage, each stage's input at offset 7 of partition 1."""
    from tests.support.cap import read

    start = len(sent)
    asyncio.run(proc.process("ingest", read("ipaws_evacuation_multilingual.xml"),
                             Position("alerts", 0, 0)))
    emitter = proc.outbox.emitter
    for stage in graph.NAMES:  # what left plainly or in a transaction
        for topic, _, value in [*sent[start:], *(emitter.records if emitter else [])]:
            if topic == proc.settings.stage_topic(stage):
                asyncio.run(proc.process(stage, value, Position(topic, 1, 7)))


@pytest.mark.parametrize("out", [True, False])
def test_a_stored_completion_without_its_marker_is_sent_only_if_not_already_out(tmp_path, out):
    from alertanim.agents.adapter import Stored
    from alertanim.pipeline import graph
    from alertanim.schemas import AnimationReady

    proc, sent = make(tmp_path)
    [(_, _, value)] = [s for s in drive(proc, sent, json.dumps(
        {"id": "tx1", "text": "fire"}).encode()) if s[0] == "ready"]
    ready = AnimationReady.from_bytes(value)
    proc.outbox.emitter = FakeEmitter(out)
    last = graph.NAMES[-1]
    # a worker stopped between storing the completion and marking it sent; the input comes again
    at = Position(f"alertanim.stage.{last}", 3, 41)
    asyncio.run(proc._leave(last, Input(b"{}", at), Stored(ready), 0.1))
    assert proc.outbox.emitter.asked == [(3, "tx1")]
    # already out: its offset commits alone; else the event goes with it
    assert proc.outbox.emitter.transactions == [(3, [] if out else ["ready"], 42)]
    assert proc.adapter.ledger.emitted("tx1", ready.run)  # either way it is marked now


def test_a_fresh_completion_leaves_in_one_transaction_with_its_offset(tmp_path):
    proc, sent = make(tmp_path)
    proc.outbox.emitter = FakeEmitter(out=False)
    drive_cap_alert(proc, sent)
    # every stage's message left in a transaction with its input's next offset, and the event
    # with its CAP answer in the last one; nothing was sent plainly
    *forwards, last = proc.outbox.emitter.transactions
    assert last == (1, ["ready", "cap"], 8)
    assert forwards[0] == (0, [proc.settings.stage_topic("subject")], 1)  # from alerts:0:0
    assert [f[1] for f in forwards[1:]] == [[proc.settings.stage_topic(s)]
                                           for s in graph.NAMES[1:]]
    assert proc.outbox.emitter.asked == [] and sent == []


@pytest.mark.parametrize("key", [b"k1", b"", None, b"KSTO-region-7", b"\xff not the id"])
def test_any_kafka_key_or_none_is_accepted_and_the_run_is_keyed_by_the_alert_id(tmp_path, key):
    proc, sent = make(tmp_path)
    asyncio.run(proc.process("ingest", json.dumps({"id": "k1", "text": "fire"}).encode(),
                             Position("alerts", 0, 3), key))
    [(topic, out_key, value)] = sent
    assert topic == "alertanim.stage.subject" and out_key == "k1"
    assert StageMessage.from_bytes(value).alert.id == "k1"
    assert proc.adapter.store.exists(proc.adapter.ledger.alert_key("k1"))  # claimed


def test_copies_under_other_keys_and_partitions_are_one_alert(tmp_path):
    from alertanim.schemas import AnimationReady

    proc, sent = make(tmp_path)
    raw = json.dumps({"id": "k2", "text": "fire"}).encode()
    drive(proc, sent, raw, "alerts:0:3")
    runs = {StageMessage.from_bytes(v).run for t, _, v in sent if t.startswith("alertanim.")}
    start = len(sent)
    asyncio.run(proc.process("ingest", raw, Position("alerts", 2, 9), b"publisher-key"))
    # the finished alert's stored result, not a second run
    assert [t for t, _, _ in sent[start:]] == ["ready"]
    assert AnimationReady.from_bytes(sent[-1][2]).run in runs


def test_a_re_published_alert_gets_its_stored_result_with_its_own_offset(tmp_path):
    proc, sent = make(tmp_path)
    raw = json.dumps({"id": "tx2", "text": "flood"}).encode()
    drive(proc, sent, raw, "alerts:2:5")
    proc.outbox.emitter = FakeEmitter(out=False)
    out = drive(proc, sent, raw, "alerts:2:9")  # the same alert published again
    assert out == []  # nothing plain, nothing recomputed
    # the stored result, in one transaction with the re-published record's own offset
    assert proc.outbox.emitter.transactions == [(2, ["ready"], 10)]
    assert proc.outbox.emitter.inputs == [("alerts", 2)]


def finished_alert(tmp_path, alert_id):
    from alertanim.schemas import AnimationReady

    proc, sent = make(tmp_path)
    [(_, _, value)] = [s for s in drive(proc, sent, json.dumps(
        {"id": alert_id, "text": "fire"}).encode()) if s[0] == "ready"]
    return proc, sent, AnimationReady.from_bytes(value)


@pytest.mark.parametrize("out", [True, False])
def test_a_retry_after_an_unclear_commit_asks_first(tmp_path, out):
    from aiokafka.errors import KafkaTimeoutError
    from alertanim.pipeline import graph

    proc, sent, ready = finished_alert(tmp_path, "tx3")
    proc.outbox.emitter = FlakyEmitter(KafkaTimeoutError(), out=out)
    last = graph.NAMES[-1]
    at = Position(f"alertanim.stage.{last}", 0, 4)
    asyncio.run(proc._leave(last, Input(b"{}", at), ready, 0.1))
    assert proc.outbox.emitter.asked == [(0, "tx3")]  # the retry asked before sending again
    assert proc.outbox.emitter.transactions == ([] if out else [(0, ["ready"], 5)])


def test_a_worker_fenced_off_a_partition_it_lost_leaves_the_alert_to_the_new_owner(tmp_path):
    from aiokafka.errors import ProducerFenced
    from alertanim.pipeline import graph

    proc, sent, ready = finished_alert(tmp_path, "tx4")
    (tmp_path / proc.adapter.ledger.emitted_key("tx4", ready.run)).unlink()
    proc.outbox.emitter = FlakyEmitter(ProducerFenced())
    proc.outbox.owns = lambda topic, partition: False
    before = len(sent)
    last = graph.NAMES[-1]
    at = Position(f"alertanim.stage.{last}", 2, 8)
    asyncio.run(proc._leave(last, Input(b"{}", at), ready, 0.1))
    assert proc.outbox.emitter.transactions == [] and len(sent) == before  # no failure record either
    assert not proc.adapter.ledger.emitted("tx4", ready.run)  # the new owner will send it


def test_a_fenced_producer_on_a_partition_still_owned_is_replaced_and_sends(tmp_path):
    from aiokafka.errors import ProducerFenced
    from alertanim.pipeline import graph

    proc, sent, ready = finished_alert(tmp_path, "tx5")
    proc.outbox.emitter = FlakyEmitter(ProducerFenced())
    last = graph.NAMES[-1]
    at = Position(f"alertanim.stage.{last}", 1, 2)
    asyncio.run(proc._leave(last, Input(b"{}", at), ready, 0.1))
    assert proc.outbox.emitter.transactions == [(1, ["ready"], 3)]
    assert proc.adapter.ledger.emitted("tx5", ready.run)


@pytest.mark.parametrize("stage, source", [("ingest", "alerts:4:10"),
                                           ("animate", "alertanim.stage.animate:2:6")])
def test_a_failure_record_leaves_in_one_transaction_with_its_input_offset(tmp_path, stage,
                                                                          source):
    proc, sent = make(tmp_path)
    proc.outbox.emitter = FakeEmitter(out=False)
    asyncio.run(proc.process(stage, b"\xff\xfe not utf-8", at(source)))
    topic, partition, offset = source.rsplit(":", 2)
    partition, offset = int(partition), int(offset)
    assert proc.outbox.emitter.transactions == [(partition, ["failed"], offset + 1)]
    assert proc.outbox.emitter.inputs == [(topic, partition)]
    [(_, _, value)] = proc.outbox.emitter.records
    assert FailureRecord.from_bytes(value).payload_bytes == len(b"\xff\xfe not utf-8")
    assert sent == []  # nothing plain: a worker killed before the commit sends neither


def test_a_failure_whose_transaction_may_have_committed_is_not_sent_twice(tmp_path):
    from aiokafka.errors import KafkaTimeoutError

    proc, sent = make(tmp_path)

    class CommittedThenTimedOut(FakeEmitter):
        async def emit(self, topic, partition, records, next_offset):
            await super().emit(topic, partition, records, next_offset)
            if len(self.transactions) == 1:
                raise KafkaTimeoutError()  # it committed, but the answer was lost

    proc.outbox.emitter = CommittedThenTimedOut(out=False)
    asyncio.run(proc.process("ingest", b"{not json", Position("alerts", 1, 20)))
    assert proc.outbox.emitter.offsets_asked == [("alerts", 1)]  # the retry read the offset first
    assert proc.outbox.emitter.transactions == [(1, ["failed"], 21)] and sent == []


def test_a_failure_on_a_partition_that_moved_is_left_to_the_new_owner(tmp_path):
    from aiokafka.errors import ProducerFenced

    proc, sent = make(tmp_path)
    proc.outbox.emitter = FlakyEmitter(ProducerFenced())
    proc.outbox.owns = lambda topic, partition: (topic, partition) != ("alerts", 3)
    asyncio.run(proc.process("ingest", b"{not json", Position("alerts", 3, 0)))
    assert proc.outbox.emitter.transactions == [] and sent == []


def test_a_failure_record_the_transaction_refuses_still_goes_out_plainly(tmp_path):
    from aiokafka.errors import UnsupportedVersionError

    proc, sent = make(tmp_path)
    proc.outbox.emitter = FlakyEmitter(UnsupportedVersionError())
    asyncio.run(proc.process("ingest", b"{not json", Position("alerts", 0, 2)))
    [(topic, _, value)] = sent
    assert topic == "failed" and FailureRecord.from_bytes(value).reason == "not_json"
    assert proc.outbox.emitter.transactions == []


def test_a_cap_answer_that_cannot_be_made_rides_in_the_completions_transaction(tmp_path,
                                                                            monkeypatch):
    proc, sent = make(tmp_path)
    proc.outbox.emitter = FakeEmitter(out=False)

    def broken(ready):
        raise ValueError("no CAP today")
    monkeypatch.setattr(proc.adapter.completion, "cap_answer", broken)
    drive_cap_alert(proc, sent)
    # the event and the CAP answer's failure record, with the offset, in one transaction
    assert proc.outbox.emitter.transactions[-1] == (1, ["ready", "failed"], 8)
    record = FailureRecord.from_bytes(proc.outbox.emitter.records[-1][2])
    assert record.stage == "cap" and "no CAP today" in record.message


def test_a_batchs_outcomes_leave_in_input_order_so_a_committed_offset_passes_only_ended_ones(
        tmp_path, tiny):
    proc, sent = make(tmp_path)
    raws = [advance_to(proc, sent, "generate", f"o{i}", "fire") for i in range(2)]
    before = len(sent)
    proc.outbox.emitter = FakeEmitter(out=False)
    topic = proc.settings.stage_topic("generate")
    asyncio.run(proc.process_many("generate", [raws[0], b"{broken", raws[1]],
                                  [Position(topic, 0, n) for n in (10, 11, 12)]))
    score = proc.settings.stage_topic("score")
    # one transaction per input, in input order: no offset commits before an earlier input's
    assert proc.outbox.emitter.transactions == [(0, [score], 11), (0, ["failed"], 12),
                                                (0, [score], 13)]
    assert [k for _, k, _ in proc.outbox.emitter.records] == ["o0", None, "o1"]
    assert len(sent) == before


def test_failures_in_one_batch_commit_offsets_that_only_go_up(tmp_path, tiny):
    proc, sent = make(tmp_path, max_attempts=1)
    raws = [advance_to(proc, sent, "generate", f"u{i}", "fire") for i in range(3)]
    fail_batches_and(proc, "u1")
    proc.outbox.emitter = FakeEmitter(out=False)
    topic = proc.settings.stage_topic("generate")
    asyncio.run(proc.process_many("generate", [b"{broken", *raws],
                                  [Position(topic, 2, n) for n in range(20, 24)]))
    score = proc.settings.stage_topic("score")
    # the refusal at 20, u0 on, u1 (offset 22) failing, u2 on: offsets only go up
    assert proc.outbox.emitter.transactions == [(2, ["failed"], 21), (2, [score], 22),
                                                (2, ["failed"], 23), (2, [score], 24)]
    assert proc.outbox.emitter.inputs == [(topic, 2)] * 4


def test_a_retry_on_a_partition_no_longer_owned_sends_nothing(tmp_path):
    from aiokafka.errors import KafkaTimeoutError

    proc, sent = make(tmp_path)
    proc.outbox.emitter = FlakyEmitter(KafkaTimeoutError())
    proc.outbox.owns = lambda topic, partition: False  # lost in a rebalance while the broker was away
    asyncio.run(proc.process("ingest", b"{not json", Position("alerts", 5, 1)))
    assert proc.outbox.emitter.transactions == [] and proc.outbox.emitter.offsets_asked == [] and sent == []


def test_a_store_blip_while_reading_a_batch_is_waited_out(tmp_path, tiny):
    from alertanim.schemas.errors import StoreUnavailable

    proc, sent = make(tmp_path)
    raws = [advance_to(proc, sent, "generate", f"w{i}", "fire") for i in range(2)]
    real, calls = proc.adapter.decode, []

    def blip(stage, raw):
        calls.append(raw)
        if len(calls) == 1:
            raise StoreUnavailable("the store is restarting")
        return real(stage, raw)
    proc.adapter.decode = blip
    before = len(sent)
    asyncio.run(proc.process_many("generate", raws))
    assert sorted(k for _, k, _ in sent[before:]) == ["w0", "w1"]  # no failure record
    assert len(calls) == 3 and proc.metrics.value("alertanim_stage_retries_total",
                                                   stage="generate") == 1


@pytest.mark.parametrize("transactions", [True, False])
def test_with_transactions_the_inputs_are_consumed_without_fausts_acks(tmp_path, transactions):
    """With transactions, every input's offset commits in its outcome's transaction: Faust
    must commit none of its own (a consumer commit landing after a transaction's could move the
    group back, and the broker warns against mixing the two). Faust's public `acks` switch on
    each input topic says so; without transactions Faust commits from its acks as usual."""
    from alertanim.agents.app import create_app

    settings = Settings(store="local", local_dir=str(tmp_path), models="tiny",
                        transactions=transactions, stages="all")
    app = create_app(settings)
    channels = {agent.channel.get_topic_name(): agent.channel for agent in app.agents.values()}
    assert set(channels) == {settings.topic_alerts,
                             *(settings.stage_topic(s) for s in parse_stages("all")[1:])}
    assert all(ch.acks is (not transactions) for ch in channels.values())
