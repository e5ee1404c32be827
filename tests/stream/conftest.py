"""A real Kafka broker and a real S3-compatible server on loopback for the whole session, and
worker processes started exactly as an operator starts them (`alertanim worker`).

If either server cannot start, these fixtures raise: the tests error, they are never skipped.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from deploy.local.harness import KafkaBroker, S3Proxy, TcpProxy, free_port, worker_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka")).start()
    yield broker
    broker.cleanup()


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    """S3Proxy on its filesystem backend, with signatures checked: conditional writes
    (If-None-Match: *) are atomic, and objects survive a restart."""
    server = S3Proxy(tmp_path_factory.mktemp("s3")).start()
    yield server
    server.cleanup()


@pytest.fixture
def own_s3(tmp_path):
    """An S3Proxy of the test's own, for a test that kills it: the session's is never killed."""
    server = S3Proxy(tmp_path / "s3")
    try:
        yield server.start()
    finally:
        server.cleanup()


@pytest.fixture
def own_kafka(tmp_path):
    """A broker of the test's own, for a test that kills it: the session's is never killed."""
    workdir = tmp_path / "kafka"
    workdir.mkdir()
    broker = KafkaBroker(workdir)
    try:
        yield broker.start()
    finally:
        broker.stop(kill=True)
        broker.cleanup()


@pytest.fixture(scope="session")
def s3_proxy(s3):
    """The S3 server behind a TCP proxy, so a test can cut storage off without losing its data."""
    proxy = TcpProxy(s3.port).start()
    yield proxy
    proxy.stop()


class Pipeline:
    """One isolated deployment: its own topics, consumer group and object prefix."""

    def __init__(self, kafka, s3, model_cache: Path, s3_endpoint: str | None = None, **settings):
        name = f"t{uuid.uuid4().hex[:8]}"
        self.kafka, self.s3 = kafka, s3
        self.env = worker_env(kafka, s3, **{
            "ALERTANIM_APP_ID": name,
            "ALERTANIM_TOPIC_ALERTS": f"{name}.alerts",
            "ALERTANIM_TOPIC_READY": f"{name}.ready",
            "ALERTANIM_TOPIC_FAILED": f"{name}.failed",
            "ALERTANIM_TOPIC_STAGE_PREFIX": f"{name}.stage.",
            "ALERTANIM_S3_PREFIX": name,
            "ALERTANIM_MODELS": "tiny",
            "ALERTANIM_METHOD__STEPS": "4",
            "ALERTANIM_RETRY_BACKOFF_S": "0.2",
            "ALERTANIM_CACHE": str(model_cache),
            "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",
        })
        if s3_endpoint:
            self.env["ALERTANIM_S3_ENDPOINT_URL"] = s3_endpoint
        method = settings.pop("method", {})
        self.env.update({f"ALERTANIM_{k.upper()}": str(v) for k, v in settings.items()})
        self.env.update({f"ALERTANIM_METHOD__{k.upper()}": str(v) for k, v in method.items()})
        self.workers: list[Worker] = []
        self.settings = self.make_settings()
        asyncio.run(_ensure_topics(self.settings))

    def make_settings(self):
        from alertanim.agents.settings import Settings

        flat, method = {}, {}
        for k, v in self.env.items():
            if k.startswith("ALERTANIM_") and k != "ALERTANIM_CACHE":
                name = k.removeprefix("ALERTANIM_").lower()
                if name.startswith("method__"):
                    method[name.removeprefix("method__")] = v
                else:
                    flat[name] = v
        return Settings(**flat, method=method)

    def start_worker(self, stages: str = "all", wait: bool = True) -> "Worker":
        worker = Worker(self.env, stages, log_dir=Path(os.environ.get("ALERTANIM_TEST_LOGS", "/tmp")))
        self.workers.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    def stop(self):
        for w in self.workers:
            w.stop()


async def _ensure_topics(settings):
    from alertanim.agents.app import ensure_topics

    await ensure_topics(settings)


class Worker:
    def __init__(self, env: dict, stages: str, log_dir: Path):
        self.port = free_port()
        self.log = log_dir / f"alertanim-worker-{self.port}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "alertanim.agents.cli", "worker", "--stages", stages,
             "--web-port", str(self.port), "--loglevel", "info"],
            env={**os.environ, **env}, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT,
            start_new_session=True)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited {self.proc.returncode}:\n"
                                   + self.log.read_text()[-4000:])
            try:
                status, body = self.get("/ready")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"worker not ready after {timeout}s:\n" + self.log.read_text()[-4000:])

    def metric(self, name: str, suffix: str = "_total", **labels) -> float:
        _, body = self.get("/metrics")
        want = ",".join(f'{k}="{v}"' for k, v in labels.items())
        total = 0.0
        for line in body.decode().splitlines():
            if line.startswith(f"{name}{suffix}{{") and want in line:
                total += float(line.rsplit(" ", 1)[1])
        return total

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def pipeline_on(model_cache, tiny):
    """Pipelines on the servers a test names (`pipeline_on(own_kafka, s3)`). Ask for it after
    those servers' fixtures, so that its workers stop before the servers go."""
    made: list[Pipeline] = []

    def make(kafka, s3, **kw) -> Pipeline:
        p = Pipeline(kafka, s3, model_cache, **kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


@pytest.fixture
def pipeline_factory(kafka, s3, pipeline_on):
    """Pipelines on the session's broker and S3 server."""
    return lambda **kw: pipeline_on(kafka, s3, **kw)


# -- Kafka helpers used by the tests ---------------------------------------------------------

def publish(settings, records: list[tuple[str | None, bytes]]) -> None:
    async def run():
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), acks="all")
        await producer.start()
        try:
            for key, value in records:
                await producer.send_and_wait(settings.topic_alerts, value=value,
                                             key=key.encode() if key else None)
        finally:
            await producer.stop()
    asyncio.run(run())


def alert_bytes(alert_id: str, text: str, **extra) -> bytes:
    return json.dumps({"schema_version": 1, "id": alert_id, "text": text, **extra},
                      ensure_ascii=False).encode()


def consume(settings, topics: list[str], until, timeout: float) -> list:
    """Every record on `topics` from the beginning until `until(records)` is true or time runs out."""
    async def run():
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(*topics, group_id=None, auto_offset_reset="earliest",
                                    **settings.kafka_client_kwargs())
        await consumer.start()
        records = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and not until(records):
                batch = await consumer.getmany(timeout_ms=500)
                for msgs in batch.values():
                    records.extend(msgs)
        finally:
            await consumer.stop()
        return records
    return asyncio.run(run())


@pytest.fixture(scope="module")
def acl_kafka(request, tmp_path_factory):
    """A broker of the module's own that authorizes every request (StandardAuthorizer, no ACL
    means no access), with a SASL_SSL listener and one user for each name in the module's
    `ACL_USERS`; the harness's admin (PLAINTEXT on loopback, and `username`) is a super user."""
    users = tuple(getattr(request.module, "ACL_USERS", ()))
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka-acls"), acls=True, users=users).start()
    yield broker
    broker.cleanup()
