"""The transactional producers' calls are bounded: a client that never answers (a fenced
producer waiting on a coordinator in the middle of a rebalance) ends as a TimeoutError, which
the outbox retries with a fresh producer, and never holds its partition for good."""

import asyncio
import time

import aiokafka
import pytest

from alertanim.agents import emitter as emitter_module
from alertanim.agents.emitter import Emitter
from alertanim.agents.settings import Settings
from alertanim.agents.retry import is_transient


class Producer:
    """Stands in for AIOKafkaProducer; `wedged` ones never finish a transaction or stop."""

    made: list["Producer"] = []
    wedge_next = True

    def __init__(self, **kwargs):
        self.transactional_id = kwargs["transactional_id"]
        self.wedged = Producer.wedge_next
        Producer.wedge_next = False
        self.committed, self.stopped = [], False
        Producer.made.append(self)

    async def start(self):
        pass

    async def stop(self):
        if self.wedged:
            await asyncio.Event().wait()
        self.stopped = True

    def transaction(self):
        class Transaction:
            async def __aenter__(self):
                return self

            async def __aexit__(self, *exc):
                return False
        return Transaction()

    async def send(self, topic, value=None, key=None, headers=None):
        fut = asyncio.get_running_loop().create_future()
        fut.set_exception(aiokafka.errors.ProducerFenced())  # never retrieved by the caller
        return fut

    async def send_offsets_to_transaction(self, offsets, group_id):
        if self.wedged:
            await asyncio.Event().wait()  # the coordinator never answers
        self.committed.append(offsets)


@pytest.fixture
def emitter(monkeypatch):
    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", Producer)
    monkeypatch.setattr(emitter_module, "STOP_S", 0.2)
    Producer.made, Producer.wedge_next = [], True
    return Emitter(Settings(store="local", transaction_timeout_ms=1_000), "animate")


def test_a_wedged_transaction_times_out_and_the_next_try_gets_a_fresh_producer(emitter):
    async def scenario():
        t0 = time.monotonic()
        with pytest.raises(TimeoutError) as wedged:
            await emitter.emit("in", 3, [("out", "a1", b"x")], 8)
        waited = time.monotonic() - t0
        await emitter.emit("in", 3, [("out", "a1", b"x")], 8)  # the retry: not locked out
        return wedged.value, waited

    error, waited = asyncio.run(scenario())
    assert is_transient(error), "retried by the outbox"
    assert 1.0 <= waited < 3.0, "one transaction timeout, and the wedged producer left behind"
    first, second = Producer.made
    assert not first.stopped and not second.stopped
    assert first.transactional_id == second.transactional_id  # the same id: fences the first
    assert first.committed == [] and len(second.committed) == 1
