"""A worker shutting down (a scale-in, a rolling update) ends what it had in flight without a
word: no failure record and no offset, so the partition's next owner reads the input again and
the alert completes there. Before, the pools closing under a stage run made its retries fail
("cannot schedule new futures after shutdown") and the alert ended as a `stage_error` record."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import pytest

from alertanim.agents.retry import run_retried
from alertanim.agents.settings import Settings
from alertanim.agents.threads import WorkerStopping
from alertanim.schemas.errors import RetriesExhausted

from tests.support.kafka import alert_bytes
from tests.support.processor import at, make


def test_an_input_in_flight_when_the_pools_close_ends_with_nothing_sent(tmp_path):
    proc, sent = make(tmp_path)
    asyncio.run(proc.process("ingest", alert_bytes("inflight", "Flood warning for the valley"),
                             at("alerts:0:0")))
    [(_, _, to_subject)] = sent
    started, release = threading.Event(), threading.Event()
    run_stage = proc.adapter.run_stage

    def slow(stage, msgs):  # the stage is mid-run when the worker is told to stop
        started.set()
        release.wait(10)
        proc.threads.io.submit(len, ())  # its images go to the store on the IO threads: closed
        return run_stage(stage, msgs)

    proc.adapter.run_stage = slow

    async def scenario():
        task = asyncio.ensure_future(proc.process("subject", to_subject, at("subject:0:0")))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
        proc.threads.close()  # what the worker does on shutdown, under the running stage
        release.set()
        await task

    with pytest.raises(WorkerStopping):
        asyncio.run(scenario())
    assert len(sent) == 1, "nothing after the hand-over into the stage: no failure record"


def test_a_failure_while_stopping_is_not_recorded(tmp_path):
    proc, sent = make(tmp_path)
    proc.threads.close()
    with pytest.raises(WorkerStopping):  # ingest cannot run: its pool is gone
        asyncio.run(proc.process("ingest", alert_bytes("late", "Flood warning"), at("a:0:1")))
    assert sent == []


def test_a_cancelled_future_is_not_retried():
    """tenacity swallows every exception it is given, a cancellation included; the policy
    hands a cancellation straight back instead of retrying it or counting it a failure."""
    calls = []
    pool = concurrent.futures.ThreadPoolExecutor(1)
    gate = threading.Event()
    pool.submit(gate.wait, 10)  # the one thread is busy: the next job waits in the queue

    def job():
        calls.append(1)

    async def scenario():
        run = asyncio.ensure_future(run_retried(Settings(retry_backoff_s=0.0), pool, job))
        await asyncio.sleep(0.1)
        pool.shutdown(wait=False, cancel_futures=True)  # the queued job's future is cancelled
        gate.set()
        return await run

    with pytest.raises(asyncio.CancelledError) as caught:
        asyncio.run(scenario())
    assert not isinstance(caught.value, RetriesExhausted) and calls == []
