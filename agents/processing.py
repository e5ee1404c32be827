"""What happens to one message, whatever the transport: decode → run the stage in the GPU
executor → retry what waiting can fix → send the result, or a failure record. Never raises: Faust
acks a message whose agent raised, so an escaped exception would be a silently lost alert.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from functools import partial

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from schemas import AnimationReady, FailureRecord, InvalidAlert, StageMessage

from .settings import Settings
from .stages import MODEL_STAGES, StageRunner
from .storage import StoreUnavailable

log = logging.getLogger("alertanim")

Send = Callable[[str, "str | None", bytes], Awaitable[None]]  # (topic, key, value)

PERMANENT = (InvalidAlert, ValidationError)


def is_transient(exc: BaseException) -> bool:
    """Errors that waiting can fix: the store or network briefly gone, GPU memory pressure."""
    if isinstance(exc, (StoreUnavailable, ConnectionError, TimeoutError, KafkaError)):
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
        self.batch_size = Histogram("alertanim_stage_batch_size",
                                    "Alerts per GPU batch in the batching stages", ["stage"],
                                    registry=r, buckets=(1, 2, 3, 4, 6, 8, 12, 16))
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


class StageProcessor:
    def __init__(self, settings: Settings, runner: StageRunner, send: Send,
                 metrics: Metrics | None = None, executor: Executor | None = None,
                 cpu_executor: Executor | None = None):
        self.settings = settings
        self.runner = runner
        self.send = send
        self.metrics = metrics or Metrics()
        # One thread owns the GPU; the CPU stages (ingest, animate) and the completion markers
        # run beside it, so one alert's GIF encodes and uploads while the next one denoises.
        self.executor = executor or ThreadPoolExecutor(1, thread_name_prefix="alertanim-gpu")
        self.cpu_executor = cpu_executor or ThreadPoolExecutor(
            2, thread_name_prefix="alertanim-cpu")

    def executor_for(self, stage: str) -> Executor:
        return self.executor if stage in MODEL_STAGES else self.cpu_executor

    async def _send(self, topic: str, key: str | None, value: bytes) -> None:
        """Send, waiting out a broker that is away: nothing can move without it, and giving up
        would ack the input with no output. Offsets stay uncommitted meanwhile, so a worker
        stopped here sees the message again after restart."""
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.send(topic, key, value)
                return
            except Exception as exc:  # noqa: BLE001
                if not is_transient(exc):
                    raise
                log.warning("send to %s failed (attempt %d), retrying: %r", topic, attempt, exc)
                await asyncio.sleep(self._backoff(attempt))

    def _backoff(self, attempt: int) -> float:
        s = self.settings
        return min(s.retry_backoff_max_s, s.retry_backoff_s * 2 ** (attempt - 1))

    async def process(self, stage: str, raw: bytes, source: str = "") -> None:
        try:
            await self._process(stage, raw, source)
        except Exception as exc:  # noqa: BLE001 - last line of defence: record, never drop
            log.exception("unexpected error at %s", stage)
            await self.fail(stage, raw, exc, 1, None)

    async def _process(self, stage: str, raw: bytes, source: str) -> None:
        loop = asyncio.get_running_loop()
        if stage == "ingest":
            alert_id, call = None, partial(self.runner.ingest, raw, source)
        else:
            try:
                msg = StageMessage.from_bytes(raw)
            except (ValidationError, ValueError) as exc:
                await self.fail(stage, raw, exc, 1, None)
                return
            alert_id, call = msg.alert_id, partial(self.runner.handler(stage), msg)
        attempt = 0
        while True:
            attempt += 1
            t0 = time.perf_counter()
            try:
                result = await loop.run_in_executor(self.executor_for(stage), call)
            except PERMANENT as exc:
                await self.fail(stage, raw, exc, attempt,
                                getattr(exc, "alert_id", None) or alert_id)
                return
            except Exception as exc:  # noqa: BLE001 - every error ends as retry or record
                limit = self.settings.max_attempts * (4 if is_transient(exc) else 1)
                if attempt >= limit:
                    await self.fail(stage, raw, exc, attempt, alert_id)
                    return
                self.metrics.retries.labels(stage).inc()
                log.info("retrying %s for %s (attempt %d): %r", stage, alert_id, attempt, exc)
                await asyncio.sleep(self._backoff(attempt))
                continue
            await self._emit(stage, result, time.perf_counter() - t0)
            return

    async def process_many(self, stage: str, raws: list[bytes]) -> None:
        """Several messages of a batching stage in one GPU call. A batch that fails is run again
        one message at a time, so one bad alert (or a batch too big for the GPU) costs only
        itself."""
        if len(raws) == 1:
            await self.process(stage, raws[0])
            return
        try:
            msgs, kept = [], []
            for raw in raws:
                try:
                    msgs.append(StageMessage.from_bytes(raw))
                    kept.append(raw)
                except (ValidationError, ValueError) as exc:
                    await self.fail(stage, raw, exc, 1, None)
            if not msgs:
                return
            t0 = time.perf_counter()
            try:
                results = await asyncio.get_running_loop().run_in_executor(
                    self.executor_for(stage), partial(self.runner.batch_handler(stage), msgs))
            except Exception as exc:  # noqa: BLE001 - fall back to one at a time
                log.info("batch of %d at %s failed (%r); running them one by one", len(msgs),
                         stage, exc)
                for raw in kept:
                    await self.process(stage, raw)
                return
            self.metrics.batch_size.labels(stage).observe(len(msgs))
            elapsed = time.perf_counter() - t0
            for result in results:
                await self._emit(stage, result, elapsed)
        except Exception as exc:  # noqa: BLE001 - last line of defence: record, never drop
            log.exception("unexpected error at %s", stage)
            for raw in raws:
                await self.fail(stage, raw, exc, 1, None)

    async def _emit(self, stage: str, result, seconds: float) -> None:
        self.metrics.seconds.labels(stage).observe(seconds)
        self.metrics.processed.labels(stage).inc()
        if result is None:
            self.metrics.duplicates.labels(stage).inc()
        elif isinstance(result, AnimationReady):
            await self._send(self.settings.topic_ready, result.alert_id, result.to_bytes())
            await self._record_emitted(result)
        else:
            await self._send(self.settings.stage_topic(result.stage), result.alert_id,
                             result.to_bytes())

    async def _record_emitted(self, ready: AnimationReady) -> None:
        """Retried through storage blips; if it still fails the cost is at most one duplicate
        event on a later redelivery, so it is logged, not fatal."""
        loop = asyncio.get_running_loop()
        for attempt in range(1, self.settings.max_attempts * 4 + 1):
            try:
                await loop.run_in_executor(self.cpu_executor, self.runner.mark_emitted, ready)
                return
            except Exception as exc:  # noqa: BLE001
                if not is_transient(exc):
                    break
                await asyncio.sleep(self._backoff(attempt))
        log.warning("could not record that %s's completion went out", ready.alert_id)

    async def fail(self, stage: str, raw: bytes, exc: BaseException, attempts: int,
                   alert_id: str | None) -> None:
        try:
            payload, encoding = raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            payload, encoding = base64.b64encode(raw).decode(), "base64"
        transient = is_transient(exc)
        reason = getattr(exc, "reason", None)
        if not isinstance(reason, str):
            reason = "transient_error" if transient else (
                "invalid_message" if isinstance(exc, (ValidationError, ValueError)) else
                "stage_error")
        record = FailureRecord(
            alert_id=alert_id, stage=stage, reason=reason,
            error_class=f"{type(exc).__module__}.{type(exc).__qualname__}",
            message=str(exc)[:2000], attempts=attempts, transient=transient,
            payload=payload, payload_encoding=encoding, failed_at=time.time())
        self.metrics.failed.labels(stage, record.reason).inc()
        log.warning("alert %s failed at %s after %d attempt(s): %s", alert_id, stage, attempts,
                    record.reason)
        await self._send(self.settings.topic_failed, alert_id, record.to_bytes())
