"""The Faust app: one thin agent per stage, built by a factory from settings.

Each agent: decode → run its stage in the process's single GPU executor thread (the event loop
keeps polling Kafka and heartbeating) → send the result keyed by alert id, waiting for the broker's
acknowledgement before the offset can commit (at-least-once) → or, when the stage cannot succeed,
a failure record on `failed`. Faust acks a message whose agent raised, so nothing may escape.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import faust
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import ValidationError

from schemas import AnimationReady, FailureRecord, InvalidAlert, StageMessage

from .settings import Settings
from .stages import MODEL_STAGES, STAGES, StageRunner, parse_stages
from .storage import StoreUnavailable, store_from_settings

log = logging.getLogger("alertanim")

PERMANENT = (InvalidAlert, ValidationError)


def is_transient(exc: BaseException) -> bool:
    """Errors that waiting can fix: the store or network briefly gone, GPU memory pressure."""
    if isinstance(exc, (StoreUnavailable, ConnectionError, TimeoutError)):
        return True
    try:
        import torch

        return isinstance(exc, torch.cuda.OutOfMemoryError)
    except (ImportError, AttributeError):  # pragma: no cover
        return False


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.processed = Counter("alertanim_stage_processed", "Messages a stage completed",
                                 ["stage"], registry=r)
        self.failed = Counter("alertanim_stage_failed", "Messages a stage sent to the failed topic",
                              ["stage", "reason"], registry=r)
        self.retries = Counter("alertanim_stage_retries", "Stage attempts that were retried",
                               ["stage"], registry=r)
        self.seconds = Histogram("alertanim_stage_seconds", "Seconds a stage spent per message",
                                 ["stage"], registry=r,
                                 buckets=(.05, .1, .25, .5, 1, 2, 4, 8, 16, 32, 64))
        self.duplicates = Counter("alertanim_stage_duplicates",
                                  "Redelivered messages whose result had already gone out",
                                  ["stage"], registry=r)
        self.gpu_bytes = Gauge("alertanim_gpu_memory_bytes", "GPU memory allocated by this worker",
                               registry=r)

    def render(self) -> bytes:
        try:
            import torch

            if torch.cuda.is_available():
                self.gpu_bytes.set(torch.cuda.memory_allocated())
        except ImportError:  # pragma: no cover
            pass
        return generate_latest(self.registry)


def _credentials(settings: Settings):
    if settings.security_protocol.startswith("SASL"):
        ssl_context = None
        if settings.security_protocol == "SASL_SSL":
            from aiokafka.helpers import create_ssl_context

            ssl_context = create_ssl_context(cafile=settings.ssl_cafile)
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value() if settings.sasl_password else None,
            mechanism=settings.sasl_mechanism, ssl_context=ssl_context)
    if settings.security_protocol == "SSL":
        from aiokafka.helpers import create_ssl_context

        return create_ssl_context(cafile=settings.ssl_cafile)
    return None


def create_app(settings: Settings, runner: StageRunner | None = None) -> faust.App:
    stages = parse_stages(settings.stages)
    runner = runner or StageRunner(settings, store_from_settings(settings))
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
    )
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alertanim-gpu")
    metrics = Metrics()
    app.alertanim_runner = runner
    app.alertanim_metrics = metrics
    topic = {s: app.topic(settings.stage_topic(s)) for s in STAGES[1:]}
    topic["ingest"] = app.topic(settings.topic_alerts)
    ready = app.topic(settings.topic_ready)
    failed = app.topic(settings.topic_failed)

    async def publish(dest, key: str | None, value: bytes) -> None:
        # force: send now rather than when the offset commits, and wait for the broker's ack so
        # the input offset can only commit after the output is durable.
        fut = await dest.send(key=key.encode() if key else None, value=value, force=True)
        await fut

    async def fail(stage: str, raw: bytes, exc: BaseException, attempts: int,
                   alert_id: str | None) -> None:
        try:
            payload, encoding = raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            payload, encoding = base64.b64encode(raw).decode(), "base64"
        record = FailureRecord(
            alert_id=alert_id, stage=stage,
            reason=getattr(exc, "reason", "stage_error" if not is_transient(exc)
                           else "transient_error"),
            error_class=f"{type(exc).__module__}.{type(exc).__qualname__}",
            message=str(exc)[:2000], attempts=attempts, transient=is_transient(exc),
            payload=payload, payload_encoding=encoding, failed_at=time.time())
        metrics.failed.labels(stage, record.reason).inc()
        log.warning("alert %s failed at %s after %d attempt(s): %s", alert_id, stage, attempts,
                    record.reason)
        await publish(failed, alert_id, record.to_bytes())

    async def process(stage: str, raw: bytes, source: str) -> None:
        loop = asyncio.get_running_loop()
        alert_id = None
        try:
            payload = raw if stage == "ingest" else StageMessage.from_bytes(raw)
        except (ValidationError, ValueError) as exc:
            await fail(stage, raw, exc, 1, None)
            return
        if isinstance(payload, StageMessage):
            alert_id = payload.alert_id
        handler = runner.handler(stage)
        call = partial(handler, raw, source) if stage == "ingest" else partial(handler, payload)
        attempt = 0
        while True:
            attempt += 1
            t0 = time.perf_counter()
            try:
                result = await loop.run_in_executor(executor, call)
            except PERMANENT as exc:
                await fail(stage, raw, exc, attempt, getattr(exc, "alert_id", None) or alert_id)
                return
            except Exception as exc:  # noqa: BLE001 - every error ends as retry or record
                limit = settings.max_attempts * (4 if is_transient(exc) else 1)
                if attempt >= limit:
                    await fail(stage, raw, exc, attempt, alert_id)
                    return
                metrics.retries.labels(stage).inc()
                delay = min(settings.retry_backoff_max_s,
                            settings.retry_backoff_s * 2 ** (attempt - 1))
                log.info("retrying %s for %s in %.1fs (attempt %d): %r", stage, alert_id, delay,
                         attempt, exc)
                await asyncio.sleep(delay)
                continue
            metrics.seconds.labels(stage).observe(time.perf_counter() - t0)
            metrics.processed.labels(stage).inc()
            if result is None:
                metrics.duplicates.labels(stage).inc()
            elif isinstance(result, AnimationReady):
                await publish(ready, result.alert_id, result.to_bytes())
                await _retrying(stage, lambda: loop.run_in_executor(
                    executor, runner.mark_emitted, result))
            else:
                await publish(topic[result.stage], result.alert_id, result.to_bytes())
            return

    async def _retrying(stage: str, thunk) -> None:
        """Bookkeeping after a send: retried through storage blips; if it still fails the cost
        is at most one duplicate event on a later redelivery, so it is logged, not fatal."""
        for attempt in range(1, settings.max_attempts * 4 + 1):
            try:
                await thunk()
                return
            except Exception as exc:  # noqa: BLE001
                if not is_transient(exc):
                    break
                await asyncio.sleep(min(settings.retry_backoff_max_s,
                                        settings.retry_backoff_s * 2 ** (attempt - 1)))
        log.warning("could not record the completion of a %s message", stage)

    def make_agent(stage: str):
        async def agent(stream):
            async for event in stream.events():
                m = event.message
                await process(stage, event.value, f"{m.topic}:{m.partition}:{m.offset}")
        agent.__name__ = agent.__qualname__ = f"stage_{stage}"
        return app.agent(topic[stage], name=f"alertanim.{stage}", concurrency=1)(agent)

    for stage in stages:
        make_agent(stage)

    if MODEL_STAGES & set(stages):
        @app.task
        async def load_models_on_start() -> None:
            await asyncio.get_running_loop().run_in_executor(executor, runner.models)
            log.info("models loaded: %s", settings.models)

    def ready_now() -> tuple[bool, str]:
        if MODEL_STAGES & set(stages) and not runner.models_loaded:
            return False, "models loading"
        try:
            assigned = app.consumer.assignment()
        except Exception:  # noqa: BLE001 - consumer not started yet
            assigned = set()
        if not assigned:
            return False, "no partitions assigned"
        return True, f"{len(assigned)} partitions assigned"

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


async def ensure_topics(settings: Settings) -> None:
    """Create every topic the pipeline uses, with the configured partitions, if missing."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    names = [settings.topic_alerts, settings.topic_ready, settings.topic_failed,
             *(settings.stage_topic(s) for s in STAGES[1:])]
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(n, settings.partitions, settings.replication_factor)
               for n in names if n not in existing]
        if new:
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()
