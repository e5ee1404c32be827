"""The Faust app: one thin agent per stage a role runs, built by a factory from settings.

Each agent hands its messages to the StageProcessor, which runs them through the adapter off the
event loop (the event loop keeps polling Kafka and heartbeating), then sends the result keyed by
alert id, or a failure record. Sends wait for the broker's acknowledgement, so an input offset
commits only after its output is durable (at-least-once).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import faust
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor

from alertanim.pipeline import graph
from alertanim.schemas.errors import ArtifactMissing

from .adapter import Adapter
from .emitter import Emitter
from .host import ModelHost
from .metrics import Metrics
from .processing import StageProcessor
from .settings import Settings
from .status import Board, follow, render_status
from .storage import store_from_settings
from .topology import all_topics, batched, parse_stages, source_topic

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
        host = ModelHost(settings, stages)
        adapter = Adapter(settings, store_from_settings(settings), host)
    host = adapter.host
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
        web_enabled=True,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        # Faust's own pages (/router, /table, /graph, statistics) are not used: off.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
    )
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alertanim-gpu")
    metrics = Metrics()
    # Faust's sensors (consumer offsets, rebalances, sends) in the stage metrics' registry
    app.monitor = PrometheusMonitor(metrics=FaustMetrics.create(metrics.registry, "faust"))
    board = Board(settings)
    topics = {name: app.topic(name) for name in all_topics(settings)}

    async def send(name: str, key: str | None, value: bytes) -> None:
        # force: send now rather than when the offset commits, and wait for the broker's ack so
        # the input offset can only commit after the output is durable.
        fut = await topics[name].send(key=key.encode() if key else None, value=value, force=True)
        await fut

    # completions and failure records leave in transactions with their input offsets
    emitter = Emitter(settings, graph.NAMES[-1]) if settings.transactions else None

    def owns(topic: str, partition: int) -> bool:
        try:
            return any(tp.topic == topic and tp.partition == partition
                       for tp in app.consumer.assignment())
        except Exception:  # noqa: BLE001 - no consumer yet: nothing is owned
            return False

    async def committing(topic: str, partition: int, next_offset: int) -> None:
        if owns(topic, partition):
            await hold_commits(app.consumer, topic, partition, next_offset)

    processor = StageProcessor(settings, adapter, send, metrics, executor, emitter=emitter,
                               owns=owns if emitter is not None else None,
                               committing=committing if emitter is not None else None)
    if emitter is not None:
        @app.on_partitions_revoked.connect
        async def drop_emit_producers(app, revoked, **kwargs) -> None:
            emitter.revoked((tp.topic, tp.partition) for tp in revoked)

        @app.on_before_shutdown.connect
        async def close_emit_producers(app, **kwargs) -> None:
            try:
                await asyncio.wait_for(emitter.close(), 10)
            except Exception as exc:  # noqa: BLE001 - shutting down regardless
                log.warning("transactional producers did not close cleanly: %r", exc)

    def make_agent(stage: str):
        if batched(settings, stage):
            async def agent(stream):
                # Faust acks the whole batch only after this body has sent its results.
                async for events in stream.take_events(settings.batch_max,
                                                       within=settings.batch_window_ms / 1000):
                    await processor.process_many(stage, [e.value for e in events],
                                                 [_where(e.message) for e in events],
                                                 [e.message.key or b"" for e in events])
        else:
            async def agent(stream):
                async for event in stream.events():
                    await processor.process(stage, event.value, _where(event.message),
                                            event.message.key or b"")
        agent.__name__ = agent.__qualname__ = f"stage_{stage}"
        return app.agent(topics[source_topic(settings, stage)], name=f"alertanim.{stage}",
                         concurrency=1)(agent)

    for stage in stages:
        make_agent(stage)

    if host.needed:
        @app.task
        async def load_models_on_start() -> None:
            try:
                await asyncio.get_running_loop().run_in_executor(executor, host.models)
            except Exception as exc:  # noqa: BLE001 - a worker without models must not linger
                log.error("cannot load models %r: %s", settings.models, exc)
                await app.crash(exc)
                return
            log.info("models loaded: %s", settings.models)

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

    @app.page("/")
    async def status_page(web, request):
        return web.html(render_status(board, worker=f"{settings.app_id} · {', '.join(stages)}"),
                        headers={"Content-Security-Policy": "default-src 'none'; img-src 'self'; "
                                                            "style-src 'unsafe-inline'",
                                 "X-Content-Type-Options": "nosniff",
                                 "Cache-Control": "no-store"})

    @app.page("/status.json")
    async def status_json(web, request):
        return web.json(board.snapshot())

    # The page's fetches from the store have threads of their own: a slow store, or many
    # viewers, must not hold up the stages' threads.
    page_io = ThreadPoolExecutor(max_workers=2, thread_name_prefix="alertanim-page")

    async def stored(key: str, content_type: str, web):
        try:
            data = await asyncio.get_running_loop().run_in_executor(page_io, adapter.store.get,
                                                                    key)
        except ArtifactMissing:
            return web.text("not in the store", status=404)
        except Exception as exc:  # noqa: BLE001 - unreachable: the page goes on
            return web.text(f"store unavailable: {type(exc).__name__}", status=503)
        # a run's objects never change under their keys
        headers = {"Cache-Control": "private, max-age=86400, immutable",
                   "X-Content-Type-Options": "nosniff"}
        if content_type == "text/html":  # the report: inline images and style, nothing else
            headers["Content-Security-Policy"] = (
                "default-src 'none'; img-src data:; style-src 'unsafe-inline'")
            return web.html(data.decode("utf-8"), headers=headers)
        return web.bytes(data, content_type=content_type, headers=headers)

    @app.page("/alerts/{alert_id}/animation.gif")
    async def thumbnail(web, request, alert_id):
        row = board.ready_run(alert_id)  # only alerts on the page; keys from the ledger
        if row is None or "image/gif" not in row.media:
            return web.text("no such animation", status=404)
        return await stored(adapter.ledger.rendition_key(alert_id, row.run, "image/gif"),
                            "image/gif", web)

    @app.page("/alerts/{alert_id}/report.html")
    async def report(web, request, alert_id):
        row = board.ready_run(alert_id)
        if row is None or not row.report:
            return web.text("no such report", status=404)
        return await stored(adapter.ledger.report_key(alert_id, row.run), "text/html", web)

    @app.page("/healthz")
    async def healthz(web, request):
        return web.json({"ok": True})

    @app.page("/ready")
    async def readiness(web, request):
        ok, why = ready_now()
        return web.json({"ready": ok, "detail": why, "stages": list(stages)},
                        status=200 if ok else 503)

    @app.page("/metrics")
    async def prometheus(web, request):
        return web.bytes(metrics.render(), content_type="text/plain; version=0.0.4")

    return app


async def hold_commits(consumer, topic: str, partition: int, next_offset: int) -> None:
    """Faust commits offsets from its own acks and knows nothing of our transactions: a commit
    of an earlier ack landing after a transaction would move the group's offset back (and a kill
    then would bring an ended input round again). Before a transaction commits `next_offset`,
    Faust is held from committing this partition at or below the input's own offset, and a
    commit of its already under way is waited out. The input's ack still counts, so Faust's own
    commit after it equals the transaction's."""
    from faust.types import TP

    committed = getattr(consumer, "_committed_offset", None)
    if committed is None:
        return
    tp, floor = TP(topic, partition), next_offset - 1

    def hold() -> None:
        current = committed.get(tp)
        if current is None or current < floor:
            committed[tp] = floor
    hold()
    await consumer.maybe_wait_for_commit_to_finish()
    hold()  # a commit that was under way wrote its own, lower, value


def _where(message) -> str:
    """An input's place, "topic:partition:offset": the offset its transaction commits."""
    return f"{message.topic}:{message.partition}:{message.offset}"


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
