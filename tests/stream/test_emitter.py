"""The transactional emitter against the real broker: records and the input offset commit
together, a read-committed consumer sees an aborted transaction's records never, and the producer
that takes an input partition over fences the one that had it."""

import asyncio
import gc
import uuid

from tests.support.kafka import consume


def test_records_and_the_input_offset_commit_together_and_a_new_owner_fences_the_old(kafka):
    from aiokafka.errors import (GroupCoordinatorNotAvailableError, InvalidProducerEpoch,
                                 ProducerFenced)

    from alertanim.agents.app import ensure_topics
    from alertanim.agents.emitter import Emitter
    from alertanim.agents.settings import Settings
    from alertanim.pipeline import graph

    name = f"emit-{uuid.uuid4().hex[:8]}"
    settings = Settings(broker=f"kafka://{kafka.bootstrap}", store="local", app_id=name,
                        topic_alerts=f"{name}.alerts", topic_ready=f"{name}.ready",
                        topic_failed=f"{name}.failed", topic_cap=f"{name}.cap",
                        topic_stage_prefix=f"{name}.stage.")
    asyncio.run(ensure_topics(settings))
    source, failed = settings.topic_alerts, settings.topic_failed

    async def run():
        old, new, last = (Emitter(settings, graph.NAMES[-1]) for _ in range(3))
        try:
            for _ in range(60):  # a fresh broker makes its offsets topic on the first ask
                try:
                    first = await old.committed(source, 1)
                    break
                except GroupCoordinatorNotAvailableError:
                    await asyncio.sleep(0.5)
            assert first == -1  # nothing committed yet
            await old.emit(source, 1, [(failed, "e1", b'{"n": 1}')], 8)
            # the partition's next owner starts its producer under the same id: that settles
            # what the old one left, so it reads the offset the transaction committed
            assert await new.committed(source, 1) == 8
            assert await new.committed(source, 0) == -1  # only the input's own partition
            try:
                await old.emit(source, 1, [(failed, "e2", b'{"n": 2}')], 9)
                fenced = None
            except Exception as exc:  # noqa: BLE001 - the class is what is asserted
                fenced = exc
            assert isinstance(fenced, (ProducerFenced, InvalidProducerEpoch)), fenced
            await new.emit(source, 1, [(failed, "e3", b'{"n": 3}')], 9)
            assert await last.committed(source, 1) == 9  # the fenced try committed nothing
        finally:
            for emitter in (old, new, last):
                await emitter.close()

    asyncio.run(run())
    # aiokafka leaves the fenced producer's futures failed and unread; their finalizers log, and
    # must run here rather than inside whatever allocates next
    gc.collect()
    # e1 and e3 are on partitions of their own: wait for both
    seen = consume(settings, [failed], until=lambda r: {b"e1", b"e3"} <= {x.key for x in r},
                   timeout=30)
    # read committed: the fenced transaction's record is not there
    assert sorted(r.key for r in seen) == [b"e1", b"e3"]
