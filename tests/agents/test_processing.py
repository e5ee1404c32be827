"""The per-message logic without a broker: a LocalStore, a list for the sent messages."""

import asyncio
import json
import string

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from agents.processing import StageProcessor, is_transient
from agents.settings import Settings
from agents.stages import StageRunner
from agents.storage import LocalStore, StoreUnavailable
from schemas import FailureRecord, StageMessage


class Sent(list):
    async def __call__(self, topic, key, value):
        self.append((topic, key, value))


def make(tmp_path, **kw):
    settings = Settings(store="local", local_dir=str(tmp_path), models="tiny",
                        retry_backoff_s=0.0, **kw)
    sent = Sent()
    return StageProcessor(settings, StageRunner(settings, LocalStore(tmp_path)), sent), sent


def ingest(processor, raw, source="alerts:0:0"):
    asyncio.run(processor.process("ingest", raw, source))


def test_valid_alert_goes_to_generate(tmp_path):
    proc, sent = make(tmp_path)
    ingest(proc, json.dumps({"id": "a1", "text": "서울 화재 발생"}).encode())
    [(topic, key, value)] = sent
    msg = StageMessage.from_bytes(value)
    assert topic == "alertanim.stage.generate" and key == "a1"
    assert msg.subject == "fire" and msg.stage == "generate" and msg.prompt.isascii()


def test_redelivery_goes_on_until_the_animation_went_out(tmp_path):
    proc, sent = make(tmp_path)
    raw = json.dumps({"id": "a2", "text": "flood"}).encode()
    ingest(proc, raw, "alerts:1:5")
    ingest(proc, raw, "alerts:1:5")  # redelivered after a crash, nothing sent yet
    ingest(proc, raw, "alerts:1:9")  # re-published while in flight: not lost either
    assert [t for t, _, _ in sent] == ["alertanim.stage.generate"] * 3
    run = StageMessage.from_bytes(sent[0][2]).run
    proc.runner.store.put(proc.runner.emitted_key("a2", run), b"", "application/octet-stream")
    ingest(proc, raw, "alerts:1:5")  # redelivered after its event went out
    assert len(sent) == 3
    assert proc.metrics.duplicates.labels("ingest")._value.get() == 1


def test_non_transient_error_is_retried_then_recorded(tmp_path):
    proc, sent = make(tmp_path, max_attempts=3)
    calls = []

    def broken(msg):
        calls.append(1)
        raise RuntimeError("model exploded")
    proc.runner.generate = broken
    ingest(proc, json.dumps({"id": "a3", "text": "fire"}).encode())
    _, _, value = sent[0]
    asyncio.run(proc.process("generate", value))
    record = FailureRecord.from_bytes(sent[-1][2])
    assert sent[-1][0] == "failed"
    assert len(calls) == 3 and record.attempts == 3
    assert record.stage == "generate" and record.reason == "stage_error"
    assert record.error_class == "builtins.RuntimeError" and not record.transient
    assert json.loads(record.payload)["alert"]["id"] == "a3"


def test_transient_error_is_retried_longer_and_can_succeed(tmp_path):
    proc, sent = make(tmp_path, max_attempts=2)
    ingest(proc, json.dumps({"id": "a4", "text": "fire"}).encode())
    message = StageMessage.from_bytes(sent[0][2])
    calls = []

    def flaky(msg):
        calls.append(1)
        if len(calls) < 6:
            raise StoreUnavailable("connection reset")
        return msg.model_copy(update={"stage": "score"})
    proc.runner.generate = flaky
    asyncio.run(proc.process("generate", message.to_bytes()))
    assert len(calls) == 6 and sent[-1][0] == "alertanim.stage.score"
    assert proc.metrics.retries.labels("generate")._value.get() == 5


def test_garbage_on_an_internal_topic_is_recorded(tmp_path):
    proc, sent = make(tmp_path)
    asyncio.run(proc.process("mask", b'{"schema_version": 1}'))
    record = FailureRecord.from_bytes(sent[0][2])
    assert record.stage == "mask" and record.reason == "invalid_message"


def test_transient_classification():
    assert is_transient(StoreUnavailable("x")) and is_transient(ConnectionResetError())
    assert not is_transient(ValueError("x"))


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
            assert topic == "alertanim.stage.generate"
            StageMessage.from_bytes(value)
    check()


def advance_to(proc, sent, stage, alert_id, text):
    """Run one alert through ingest and the stages before `stage`; its message for `stage`."""
    ingest(proc, json.dumps({"id": alert_id, "text": text}).encode(), f"alerts:0:{alert_id}")
    current = "generate"
    while current != stage:
        asyncio.run(proc.process(current, sent[-1][2]))
        current = StageMessage.from_bytes(sent[-1][2]).stage
    return sent[-1][2]


@pytest.mark.parametrize("stage", ["generate", "sample"])
def test_a_batch_of_alerts_gives_one_result_each(tmp_path, tiny, stage):
    proc, sent = make(tmp_path, steps=2, candidates=2, variants=2)
    raws = [advance_to(proc, sent, stage, f"b{i}", t) for i, t in
            enumerate(["fire", "flood", "지진"])]
    before = len(sent)
    asyncio.run(proc.process_many(stage, raws + [b"{broken"]))
    out = sent[before:]
    assert sorted(key for _, key, _ in out if key) == ["b0", "b1", "b2"]
    assert [FailureRecord.from_bytes(v).reason for t, _, v in out if t == "failed"] == [
        "invalid_message"]
    assert proc.metrics.batch_size.labels(stage)._sum.get() == 3


def test_a_failing_batch_is_retried_one_alert_at_a_time(tmp_path, tiny):
    proc, sent = make(tmp_path, steps=2, candidates=2, max_attempts=1)
    raws = [advance_to(proc, sent, "generate", f"c{i}", "fire") for i in range(3)]
    real = proc.runner.generate_many

    def fussy(msgs):
        if len(msgs) > 1 or msgs[0].alert_id == "c1":
            raise RuntimeError("out of memory for this batch")
        return real(msgs)
    proc.runner.generate_many = fussy
    proc.runner.generate = lambda msg: fussy([msg])[0]
    before = len(sent)
    asyncio.run(proc.process_many("generate", raws))
    topics = {key: topic for topic, key, _ in sent[before:]}
    assert topics == {"c0": "alertanim.stage.score", "c1": "failed", "c2": "alertanim.stage.score"}


def test_a_broker_that_is_away_is_waited_for(tmp_path):
    from aiokafka.errors import KafkaConnectionError

    proc, sent = make(tmp_path)
    failures = []

    async def flaky_send(topic, key, value):
        if len(failures) < 3:
            failures.append(topic)
            raise KafkaConnectionError("broker away")
        sent.append((topic, key, value))
    proc.send = flaky_send
    ingest(proc, json.dumps({"id": "k1", "text": "fire"}).encode())
    assert len(failures) == 3
    assert [(t, k) for t, k, _ in sent] == [("alertanim.stage.generate", "k1")]


def test_animation_runs_beside_the_gpu_stages(tmp_path):
    """An animate that can only finish while a GPU stage is running: with one thread for both
    this would wait out its timeout and fail."""
    import threading

    proc, sent = make(tmp_path, max_attempts=1)
    gen_started, animated = threading.Event(), threading.Event()
    ingest(proc, json.dumps({"id": "o1", "text": "fire"}).encode())
    msg = StageMessage.from_bytes(sent[0][2])

    def slow_generate(m):
        gen_started.set()
        assert animated.wait(10), "animate never ran while the GPU stage held its thread"
        return m.model_copy(update={"stage": "score"})

    def animate(m):
        assert gen_started.wait(10)
        animated.set()
        return m.model_copy(update={"stage": "done"})  # stands for the AnimationReady
    proc.runner.generate = slow_generate
    proc.runner.animate = animate

    async def both():
        await asyncio.gather(proc.process("generate", msg.to_bytes()),
                             proc.process("animate", msg.model_copy(
                                 update={"stage": "animate"}).to_bytes()))
    asyncio.run(both())
    assert [t for t, _, _ in sent[1:]] == ["alertanim.stage.score", "alertanim.stage.done"] or \
        [t for t, _, _ in sent[1:]] == ["alertanim.stage.done", "alertanim.stage.score"]
    assert proc.executor_for("generate") is not proc.executor_for("animate")


def test_a_compiling_worker_warms_up_before_it_counts_as_loaded(tmp_path, monkeypatch, tiny):
    import agents.stages

    calls = []

    def record(models, config, sizes, stages):
        assert not runner.models_loaded  # readiness waits for the warm-up
        calls.append((list(sizes), list(stages)))
        return []
    monkeypatch.setattr(agents.stages, "warm_up", record)
    settings = Settings(store="local", local_dir=str(tmp_path), models="tiny", compile="default",
                        batch_max=3, stages="ingest,generate,score")
    runner = StageRunner(settings, LocalStore(tmp_path))
    models = runner.models()
    assert calls == [([1, 2, 3], ["generate"])]
    assert runner.models_loaded and models.fast_path[-1] == "compile=default"
    plain = StageRunner(Settings(store="local", local_dir=str(tmp_path), models="tiny"),
                        LocalStore(tmp_path))
    plain.models()
    assert len(calls) == 1  # no compilation, no warm-up
