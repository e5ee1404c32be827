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
