"""One isolated deployment on a broker and an object store, and its worker processes, started
exactly as an operator starts them (`alertanim worker`)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from deploy.local.harness import free_port, worker_env


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
            "ALERTANIM_TOPIC_INSTANT": f"{name}.instant",
            "ALERTANIM_TOPIC_CAP": f"{name}.cap",
            # the scene library is built by the tests that want it (build_library), never by
            # an idle worker behind a test's back
            "ALERTANIM_LIBRARY_IDLE_S": "0",
            "ALERTANIM_S3_PREFIX": name,
            "ALERTANIM_MODELS": "tiny",
            "ALERTANIM_METHOD__STEPS": "4",
            "ALERTANIM_RETRY_BACKOFF_S": "0.2",
            "ALERTANIM_CACHE": str(model_cache),
            "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",
        })
        from alertanim.agents.settings import Settings

        shared = [f for f in Settings.model_fields
                  if f.startswith("topic_") and f"ALERTANIM_{f.upper()}" not in self.env]
        # a topic left at its default is shared by every test's pipeline, and one test reads
        # another's records (it happened: `cap`)
        assert not shared, f"a Pipeline must name its own {shared}"
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

    def build_library(self, *entries: str) -> str:
        """`alertanim library build --only ENTRIES` for this deployment, as an operator runs
        it; what it printed."""
        done = subprocess.run(
            [sys.executable, "-m", "alertanim.agents.cli", "library", "build", "--quiet",
             "--only", ",".join(entries)], env={**os.environ, **self.env}, capture_output=True,
            text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-4000:]
        return done.stderr

    def stop(self):
        for w in self.workers:
            w.stop()


async def _ensure_topics(settings):
    from alertanim.agents.app import ensure_topics

    await ensure_topics(settings)


class Worker:
    def __init__(self, env: dict, stages: str, log_dir: Path):
        self.port = free_port()
        self.token = env.get("ALERTANIM_WEB_TOKEN")  # sent on the routes that ask for it
        self.log = log_dir / f"alertanim-worker-{self.port}.log"
        with open(self.log, "wb") as log:  # the worker writes to its own copy of the file
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "alertanim.agents.cli", "worker", "--stages", stages,
                 "--web-port", str(self.port), "--loglevel", "info"],
                env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)

    def get(self, path: str, headers: dict | None = None) -> tuple[int, bytes]:
        auth = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}",
                                         headers={**auth, **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=2) as r:
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
