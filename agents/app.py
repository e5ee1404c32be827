"""The Faust app factory: one thin agent per stage a role runs, built from settings.

Each agent hands its messages, with their positions, to the StageProcessor (agents/processing.py),
which runs them off the event loop (the loop keeps polling Kafka and heartbeating); their outcomes
leave through the outbox (agents/outbox.py). The web port is agents/web.py, a server of its own on
its own thread and loop, which Faust starts and stops with the app (`app.web_server`).
"""

from __future__ import annotations

import asyncio
import logging
import time

import faust
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor

from alertanim.pipeline import graph

from .adapter import Adapter
from .emitter import Emitter, Position
from .events import traceparent_of
from .host import ModelHost
from .metrics import Metrics
from .outbox import Outbox
from .processing import Input, StageProcessor
from .settings import Settings
from .status import Board, follow
from .storage import store_from_settings
from .topology import INGEST, all_topics, batched, front, parse_stages, source_topic
from .web import Routes, WebPort

log = logging.getLogger("alertanim")


def _credentials(settings: Settings):
    """Faust's broker credentials: the same TLS context (CA, client certificate) and SASL
    login as `settings.kafka_client_kwargs()` gives the plain aiokafka clients."""
    ssl_context = settings.kafka_ssl_context() if settings.kafka_uses_tls else None
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value() if settings.sasl_password else None,
            mechanism=settings.sasl_mechanism, ssl_context=ssl_context)
    return ssl_context  # SSL: the context alone; PLAINTEXT: None


def create_app(settings: Settings, adapter: Adapter | None = None) -> faust.App:
    stages = parse_stages(settings.stages)
    if adapter is None:
        adapter = Adapter(settings, store_from_settings(settings), ModelHost(settings, stages))
    host, threads = adapter.host, adapter.threads
    app = faust.App(
        settings.app_id,
        broker=settings.broker,
        broker_credentials=_credentials(settings),
        key_serializer="raw",
        value_serializer="raw",
        store="memory://",
        autodiscover=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # The web port is our own server (agents/web.py, registered below with
        # app.web_server), so Faust's aiohttp stack is never built; its pages stay off.
        web_enabled=True,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
    )
    metrics = Metrics()
    # Faust's sensors (consumer offsets, rebalances, sends) in the stage metrics' registry
    app.monitor = PrometheusMonitor(metrics=FaustMetrics.create(metrics.registry, "faust"))
    board = Board(settings)
    # With transactions, every outcome commits its input's offset in its own transaction
    # (agents/emitter.py): the inputs are consumed without Faust's acks, so Faust commits none.
    emitter = Emitter(settings, graph.NAMES[-1]) if settings.transactions else None
    inputs = {source_topic(settings, stage) for stage in stages}
    topics = {name: app.topic(name, acks=emitter is None or name not in inputs)
              for name in all_topics(settings)}

    async def send(name: str, key: str | None, value: bytes, headers=()) -> None:
        # force: send now rather than when the offset commits, and wait for the broker's ack so
        # the input offset can only commit after the output is durable.
        fut = await topics[name].send(key=key.encode() if key else None, value=value,
                                      headers=list(headers) or None, force=True)
        await fut

    def owns(topic: str, partition: int) -> bool:
        try:
            return any(tp.topic == topic and tp.partition == partition
                       for tp in app.consumer.assignment())
        except Exception:  # noqa: BLE001 - no consumer yet: nothing is owned
            return False

    outbox = Outbox(settings, send, emitter, owns if emitter is not None else None)
    processor = StageProcessor(settings, adapter, outbox, metrics)
    if emitter is not None:
        @app.on_partitions_revoked.connect
        async def drop_emit_producers(app, revoked, **kwargs) -> None:
            emitter.revoked((tp.topic, tp.partition) for tp in revoked)

    @app.on_before_shutdown.connect
    async def close_on_shutdown(app, **kwargs) -> None:
        if emitter is not None:
            try:
                await asyncio.wait_for(emitter.close(), 10)
            except Exception as exc:  # noqa: BLE001 - shutting down regardless
                log.warning("transactional producers did not close cleanly: %r", exc)
        # the reports of events already out: drawn before the threads go, within reason
        await asyncio.get_running_loop().run_in_executor(None, adapter.completion.drain, 10)
        threads.close()

    def make_agent(stage: str):
        def one(event) -> Input:
            message = event.message
            return Input(event.value, Position.of(message), message.key or b"",
                         traceparent_of(message.headers) if stage == INGEST else None)

        if batched(settings, stage) or (front(stage) and settings.front_batching):
            size, window = ((settings.front_batch_max, settings.front_batch_window_ms)
                            if front(stage) else (settings.batch_max, settings.batch_window_ms))

            async def agent(stream):
                async for events in stream.take_events(size, within=window / 1000):
                    await processor.process_inputs(stage, [one(e) for e in events])
        else:
            async def agent(stream):
                async for event in stream.events():
                    await processor.process_inputs(stage, [one(event)])
        agent.__name__ = agent.__qualname__ = f"stage_{stage}"
        return app.agent(topics[source_topic(settings, stage)], name=f"alertanim.{stage}",
                         concurrency=1)(agent)

    for stage in stages:
        make_agent(stage)

    if host.needed:
        @app.task
        async def load_models_on_start() -> None:
            try:
                await asyncio.get_running_loop().run_in_executor(threads.gpu, host.models)
            except Exception as exc:  # noqa: BLE001 - a worker without models must not linger
                log.error("cannot load models %r: %s", settings.models, exc)
                await app.crash(exc)
                return
            log.info("models loaded: %s", settings.models)

    if settings.library_idle_s > 0 and host.needed and set(
            graph.components(graph.NAMES[1:])) <= set(host.parts):
        @app.task
        async def build_library_when_idle() -> None:
            """A worker that can render the whole graph fills the scene library's gaps, one
            entry at a time, whenever no stage message has come in for LIBRARY_IDLE_S."""
            loop = asyncio.get_running_loop()
            while True:
                await asyncio.sleep(settings.library_idle_s)
                if not host.ready or (time.monotonic() - processor.last_input
                                      < settings.library_idle_s):
                    continue
                try:
                    missing = await loop.run_in_executor(threads.cpu, adapter.library.missing)
                    if not missing:
                        return
                    await loop.run_in_executor(threads.gpu, adapter.library.build,
                                               host.models(), missing[:1])
                except Exception as exc:  # noqa: BLE001 - the library can wait; alerts cannot
                    log.warning("could not build a library entry: %r", exc)

    def ready_now() -> tuple[bool, str]:
        if not host.ready:
            return False, "models loading"
        try:
            assigned = app.consumer.assignment()
        except Exception:  # noqa: BLE001 - consumer not started yet
            assigned = set()
        if not assigned:
            return False, "no partitions assigned"
        return True, f"{len(assigned)} partitions assigned"

    @app.task
    async def follow_the_group() -> None:
        await follow(board, settings, on_lag=metrics.set_lag)

    app.web_server(WebPort(
        Routes(settings=settings, stages=stages, board=board, ledger=adapter.ledger,
               store=adapter.store, metrics=metrics, page_threads=threads.page,
               library=adapter.library, ready_now=ready_now),
        settings.web_host, settings.web_port))
    return app


async def ensure_topics(settings: Settings) -> None:
    """Create every topic the pipeline uses, with the configured partitions, if missing."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(n, settings.partitions, settings.replication_factor)
               for n in all_topics(settings) if n not in existing]
        if new:
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()
