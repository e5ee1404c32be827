"""Real infrastructure on loopback: an Apache Kafka broker (single-node KRaft, jars from Maven
Central) and an S3-compatible HTTP server (moto's standalone server). The test suite and a
developer's shell use the same code:

    python -m deploy.local.harness      # starts both, prints the ALERTANIM_* settings, Ctrl-C stops

Needs Java 17+ and Maven on PATH. Nothing here is skipped when it cannot start: it raises.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
LIBS = HERE / "target" / "kafka-libs"


class InfraError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kafka_classpath() -> str:
    """The broker's jars, resolved by Maven on first use and cached in deploy/local/target."""
    if not LIBS.is_dir() or not any(LIBS.glob("kafka_2.13-*.jar")):
        mvn = shutil.which("mvn")
        if mvn is None:
            raise InfraError("Maven (mvn) is needed to fetch the Kafka broker jars")
        subprocess.run([mvn, "-q", "-B", "-f", str(HERE / "pom.xml"),
                        "dependency:copy-dependencies"], check=True)
    return f"{LIBS}/*"


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise InfraError("Java 17+ is needed to run the Kafka broker")
    return java


class KafkaBroker:
    """One KRaft node (broker + controller) on 127.0.0.1; `restart()` keeps its data and port."""

    def __init__(self, workdir: Path | None = None, port: int | None = None):
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="alertanim-kafka-"))
        self.port = port or free_port()
        self.controller_port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / "broker.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        props = self.workdir / "server.properties"
        props.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={self.workdir / 'data'}",
            "num.partitions=4",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=true",
            "log.flush.interval.messages=1",
        ]) + "\n")
        return props

    def start(self, timeout: float = 90.0) -> "KafkaBroker":
        cp = kafka_classpath()
        java = _java()
        props = self.workdir / "server.properties"
        env = {**os.environ, "KAFKA_HEAP_OPTS": "-Xmx512m"}
        jvm = [java, "-Xms256m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
               f"-Dlog4j.configuration=file:{self._log4j()}", "-cp", cp]
        if not (self.workdir / "data" / "meta.properties").exists():
            self._write_config()
            cluster_id = _cluster_id()
            subprocess.run([*jvm, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c",
                            str(props)], check=True, env=env, stdout=subprocess.DEVNULL)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([*jvm, "kafka.Kafka", str(props)], stdout=log,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self._wait_ready(timeout)
        return self

    def _log4j(self) -> Path:
        path = self.workdir / "log4j.properties"
        path.write_text("log4j.rootLogger=WARN, stdout\n"
                        "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
                        "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
                        "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
                        "log4j.logger.kafka=WARN\nlog4j.logger.org.apache.kafka=WARN\n")
        return path

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise InfraError(f"Kafka exited with {self.proc.returncode}; see {self.log_path}:\n"
                                 + self.log_path.read_text()[-3000:])
            try:
                asyncio.run(_metadata(self.bootstrap))
                return
            except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
                last = exc
                time.sleep(0.5)
        raise InfraError(f"Kafka not ready on {self.bootstrap} after {timeout}s: {last!r}")

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _cluster_id() -> str:
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


async def _metadata(bootstrap: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    await admin.start()
    try:
        await admin.describe_cluster()
    finally:
        await admin.close()


class S3Server:
    """moto's standalone S3-compatible server; `stop()`/`start()` keep the port (data is lost on
    restart, as with any in-memory server: tests that restart it keep that in mind).

    With `auth=True` the server checks every request's signature against an IAM user it makes at
    start (its keys become `access_key`/`secret_key`): a wrong secret is refused as S3 refuses it.
    """

    access_key = "alertanim-test"
    secret_key = "alertanim-test-secret"
    region = "us-east-1"

    # Requests moto serves before it checks signatures: the readiness probe, the bucket, and
    # the IAM user, its key and its policy.
    _SETUP_REQUESTS = 5

    def __init__(self, port: int | None = None, bucket: str = "alertanim", auth: bool = False):
        self.port = port or free_port()
        self.bucket = bucket
        self.auth = auth
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "S3Server":
        env = dict(os.environ)
        if self.auth:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(self._SETUP_REQUESTS)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise InfraError(f"moto server exited with {self.proc.returncode}")
            try:
                urllib.request.urlopen(self.endpoint + "/", timeout=1).read()
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise InfraError(f"S3 server not ready on {self.endpoint} after {timeout}s")
        self.client().create_bucket(Bucket=self.bucket)
        if self.auth:
            self._make_user()
        return self

    def _make_user(self) -> None:
        import boto3

        iam = boto3.client("iam", endpoint_url=self.endpoint, region_name=self.region,
                           aws_access_key_id=self.access_key,
                           aws_secret_access_key=self.secret_key)
        iam.create_user(UserName="alertanim")
        key = iam.create_access_key(UserName="alertanim")["AccessKey"]
        iam.put_user_policy(UserName="alertanim", PolicyName="bucket", PolicyDocument=(
            '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", '
            f'"Resource": ["arn:aws:s3:::{self.bucket}", "arn:aws:s3:::{self.bucket}/*"]}}]}}'))
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None


class TcpProxy:
    """A loopback TCP proxy that can cut a server off (`pause`) and bring it back (`resume`)
    without restarting it: the network outage a client sees, with the server's state kept."""

    def __init__(self, target_port: int, port: int | None = None):
        import threading

        self.target_port = target_port
        self.port = port or free_port()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "TcpProxy":
        import threading

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        import threading

        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def pause(self) -> None:
        """Refuse new connections and reset the open ones."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except OSError:
                pass

    def resume(self) -> None:
        self.start()

    def stop(self) -> None:
        self.pause()


def worker_env(broker: KafkaBroker, s3: S3Server, **extra: str) -> dict[str, str]:
    """ALERTANIM_* settings that point a worker at this harness."""
    env = {
        "ALERTANIM_BROKER": f"kafka://{broker.bootstrap}",
        "ALERTANIM_STORE": "s3",
        "ALERTANIM_S3_ENDPOINT_URL": s3.endpoint,
        "ALERTANIM_S3_BUCKET": s3.bucket,
        "ALERTANIM_S3_REGION": s3.region,
        "ALERTANIM_S3_ACCESS_KEY_ID": s3.access_key,
        "ALERTANIM_S3_SECRET_ACCESS_KEY": s3.secret_key,
    }
    env.update(extra)
    return env


def main() -> int:  # pragma: no cover - interactive
    broker = KafkaBroker().start()
    s3 = S3Server().start()
    for k, v in worker_env(broker, s3).items():
        print(f"export {k}={v}")
    print("# Kafka and S3 are up; Ctrl-C stops them", file=sys.stderr)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        s3.stop()
        broker.cleanup()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
