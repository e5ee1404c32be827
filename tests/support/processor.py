"""A stage processor without a broker: a LocalStore for the objects, a list for what it sends."""

from __future__ import annotations

import asyncio

SMALL = {"steps": 2, "candidates": 2, "variants": 2, "frames": 2}


class Sent(list):
    """The processor's send function: every `(topic, key, value)` it sent, in order."""

    async def __call__(self, topic, key, value, headers=()):
        self.append((topic, key, value))
        self.headers.append(dict(headers))

    def __init__(self):
        super().__init__()
        self.headers = []  # each record's headers, by name


def make(tmp_path, method=None, **kw):
    """A processor running every stage on the tiny models with `SMALL` method settings."""
    from alertanim.agents.adapter import Adapter
    from alertanim.agents.host import ModelHost
    from alertanim.agents.outbox import Outbox
    from alertanim.agents.processing import StageProcessor
    from alertanim.agents.settings import Settings
    from alertanim.agents.storage import LocalStore
    from alertanim.agents.topology import parse_stages

    kw = {"retry_backoff_s": 0.0, **kw}
    settings = Settings(store="local", local_dir=str(tmp_path), models="tiny",
                        method={**SMALL, **(method or {})}, **kw)
    sent = Sent()
    adapter = Adapter(settings, LocalStore(tmp_path), ModelHost(settings, parse_stages("all")))
    return StageProcessor(settings, adapter, Outbox(settings, sent)), sent


def at(position: str):
    """The Position written "topic:partition:offset"."""
    from alertanim.agents.emitter import Position

    topic, partition, offset = position.rsplit(":", 2)
    return Position(topic, int(partition), int(offset))


def drive(proc, sent: Sent, raw: bytes, source: str = "alerts:0:0") -> list:
    """Ingest one message (read at `source`) and run whatever it sends through every stage;
    everything sent."""
    from alertanim.agents.topology import WORKER_STAGES

    start = len(sent)
    asyncio.run(proc.process("ingest", raw, at(source)))
    for stage in WORKER_STAGES[1:]:
        for topic, _, value in list(sent[start:]):
            if topic == proc.settings.stage_topic(stage):
                asyncio.run(proc.process(stage, value))
    return sent[start:]


def records(out, topic):
    """The `(key, value)` of each record in `out` sent to `topic`."""
    return [(k, v) for t, k, v in out if t == topic]


class FakeEmitter:
    """Records transactions; `out` answers whether an event is already on `ready`."""

    def __init__(self, out: bool, committed: int = -1):
        from alertanim.pipeline import graph

        self.stage = graph.NAMES[-1]
        self.out, self.transactions, self.asked = out, [], []
        self.records, self.committed_offset, self.offsets_asked = [], committed, []
        self.inputs = []  # the input (topic, partition) of each transaction
        self.headers = []  # each record's headers, by name

    async def emit(self, topic, partition, records, next_offset):
        self.transactions.append((partition, [r[0] for r in records], next_offset))
        self.inputs.append((topic, partition))
        self.records.extend(r[:3] for r in records)
        self.headers.extend(dict(r[3]) for r in records)
        self.committed_offset = next_offset

    async def committed(self, topic, partition):
        self.offsets_asked.append((topic, partition))
        return self.committed_offset

    async def already_out(self, partition, alert_id, run, since=None):
        assert since is not None  # read from when the completion was stored
        self.asked.append((partition, alert_id))
        return self.out


class FlakyEmitter(FakeEmitter):
    """The first transaction fails with `error` (after it may or may not have committed)."""

    def __init__(self, error, out=False):
        super().__init__(out)
        self.error = error

    async def emit(self, topic, partition, records, next_offset):
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        await super().emit(topic, partition, records, next_offset)
