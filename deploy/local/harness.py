"""Real infrastructure on loopback: an Apache Kafka broker (single-node KRaft, jars from Maven
Central) and S3-compatible HTTP servers: S3Proxy on its filesystem backend (jars from Maven
Central; objects persist on disk across a restart or a SIGKILL) and moto's standalone server
(in memory; it can also check signatures against IAM users). The test suite and a developer's
shell use the same code:

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
import threading
import time
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
LIBS = HERE / "target" / "kafka-libs"


class InfraError(RuntimeError):
    pass


_GIVEN: set[int] = set()  # every port free_port handed out in this process
_GIVEN_LOCK = threading.Lock()


def free_port() -> int:
    """A loopback port nothing listens on now, and never one this process was given before:
    the system may hand a port just released out again (one broker got one port for two
    listeners)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with _GIVEN_LOCK:
            if port not in _GIVEN:
                _GIVEN.add(port)
                return port


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


# -- certificates (openssl, keytool) ---------------------------------------------------------

def _tool(name: str, *args: str) -> None:
    exe = shutil.which(name)
    if exe is None:
        raise InfraError(f"{name} is needed to make the test certificates")
    done = subprocess.run([exe, *args], capture_output=True)
    if done.returncode:
        raise InfraError(f"{name} {args[0]} failed ({done.returncode}): "
                         + done.stderr.decode(errors="replace")[-2000:])


def make_ca(directory: Path, name: str = "ca", common_name: str = "alertanim test CA",
            days: int = 30) -> tuple[Path, Path]:
    """A self-signed CA in `directory`: (`<name>.pem`, `<name>-key.pem`)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    _tool("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
          "-days", str(days), "-subj", f"/CN={common_name}", "-keyout", str(key),
          "-out", str(cert), "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return cert, key


def make_cert(directory: Path, name: str, ca: tuple[Path, Path],
              hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
              key_password: str | None = None, days: int = 30) -> tuple[Path, Path]:
    """A certificate for `hosts`, for servers and clients, signed by `ca` (cert, key):
    (`<name>.pem`, `<name>-key.pem`), the key PKCS#8, encrypted when `key_password` is given."""
    import ipaddress

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    csr, ext = directory / f"{name}.csr", directory / f"{name}.ext"
    sans = []
    for host in hosts:
        try:
            ipaddress.ip_address(host)
            sans.append(f"IP:{host}")
        except ValueError:
            sans.append(f"DNS:{host}")
    ext.write_text(f"subjectAltName={','.join(sans)}\n"
                   "basicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth,clientAuth\n"
                   "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")
    secret = ["-aes-256-cbc", "-pass", f"pass:{key_password}"] if key_password else []
    _tool("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
          "-out", str(key), *secret)
    _tool("openssl", "req", "-new", "-key", str(key), "-subj", f"/CN={name}", "-out", str(csr),
          *(["-passin", f"pass:{key_password}"] if key_password else []))
    _tool("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
          "-CAcreateserial", "-sha256", "-days", str(days), "-extfile", str(ext),
          "-out", str(cert))
    csr.unlink()
    ext.unlink()
    return cert, key


def make_keystore(path: Path, cert: Path, key: Path, ca_cert: Path, password: str) -> Path:
    """A PKCS12 keystore (for a Java server) with the key and its chain up to `ca_cert`."""
    _tool("openssl", "pkcs12", "-export", "-in", str(cert), "-inkey", str(key),
          "-certfile", str(ca_cert), "-name", "server", "-out", str(path),
          "-passout", f"pass:{password}")
    return path


def make_truststore(path: Path, ca_cert: Path, password: str) -> Path:
    """A PKCS12 truststore (for a Java server) that trusts `ca_cert`."""
    _tool("keytool", "-importcert", "-noprompt", "-alias", "ca", "-file", str(ca_cert),
          "-keystore", str(path), "-storetype", "PKCS12", "-storepass", password)
    return path


class KafkaBroker:
    """One KRaft node (broker + controller) on 127.0.0.1; `restart()` keeps its data and port.

    With `sasl_ssl=True` it also listens SASL_SSL on `sasl_bootstrap`: TLS with a certificate for
    127.0.0.1 and localhost signed by a CA made in its workdir (`ca_file`, PEM), then SASL PLAIN or
    SCRAM-SHA-256 as `username` with `password` (random per broker), or as any of `users` (each
    with a random password of its own, `passwords[user]`). A client certificate signed by the
    same CA is accepted, not required. The PLAINTEXT listener stays, for the broker's own
    traffic.

    With `acls=True` (which implies `sasl_ssl`) the broker authorizes every request
    (StandardAuthorizer, `allow.everyone.if.no.acl.found=false`): the harness's admin, the
    PLAINTEXT listener's `User:ANONYMOUS` on loopback (which the controller connection also
    is), and `username` are super users; every other user may do only what its ACLs allow
    (`create_acls`, made with kafka.admin.AclCommand from the broker's own jars).
    """

    username = "alertanim"
    AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"

    def __init__(self, workdir: Path | None = None, port: int | None = None,
                 sasl_ssl: bool = False, acls: bool = False, users: tuple[str, ...] = ()):
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="alertanim-kafka-"))
        self.port = port or free_port()
        self.controller_port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / "broker.log"
        self.acls = acls
        self.sasl_ssl = sasl_ssl or acls or bool(users)
        self.sasl_port = free_port() if self.sasl_ssl else None
        self.password = f"pw-{uuid.uuid4().hex}" if self.sasl_ssl else None
        self.passwords: dict[str, str] = {}
        if self.sasl_ssl:
            self.passwords = {self.username: self.password,
                              **{u: f"pw-{uuid.uuid4().hex}" for u in users}}
        self.tls_dir = self.workdir / "tls"
        self._store_password = uuid.uuid4().hex

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        if not self.sasl_ssl:
            raise InfraError("this broker has no SASL_SSL listener: KafkaBroker(sasl_ssl=True)")
        return f"127.0.0.1:{self.sasl_port}"

    @property
    def ca_file(self) -> Path:
        """The CA that signed the broker's certificate (PEM, for Python's ssl)."""
        return self.tls_dir / "ca.pem"

    @property
    def ca_key_file(self) -> Path:
        """The CA's private key, to sign client certificates the broker accepts."""
        return self.tls_dir / "ca-key.pem"

    def sasl_client_kwargs(self, user: str | None = None, **overrides) -> dict:
        """aiokafka keyword arguments for the SASL_SSL listener (PLAIN), as `user` (default:
        `username`, a super user when `acls`)."""
        from aiokafka.helpers import create_ssl_context

        user = user or self.username
        return {"bootstrap_servers": self.sasl_bootstrap, "security_protocol": "SASL_SSL",
                "ssl_context": create_ssl_context(cafile=str(self.ca_file)),
                "sasl_mechanism": "PLAIN", "sasl_plain_username": user,
                "sasl_plain_password": self.passwords[user], **overrides}

    def sasl_env(self, user: str | None = None) -> dict[str, str]:
        """ALERTANIM_* settings that point a worker at the SASL_SSL listener, as `user`."""
        user = user or self.username
        return {"ALERTANIM_BROKER": f"kafka://{self.sasl_bootstrap}",
                "ALERTANIM_SECURITY_PROTOCOL": "SASL_SSL",
                "ALERTANIM_SASL_MECHANISM": "PLAIN",
                "ALERTANIM_SASL_USERNAME": user,
                "ALERTANIM_SASL_PASSWORD": self.passwords[user],
                "ALERTANIM_SSL_CAFILE": str(self.ca_file)}

    def create_acls(self, grants) -> int:
        """Make the ACLs of `grants` (alertanim.agents.acls.Grant, the table deploy/ ships too)
        with kafka.admin.AclCommand, as the harness's admin on the PLAINTEXT listener; how many
        commands ran. AclCommand is what kafka-acls.sh runs: the same arguments as the compose
        file's ACL service."""
        from alertanim.agents.acls import acl_command_args

        if not self.acls:
            raise InfraError("this broker authorizes nothing: KafkaBroker(acls=True)")
        commands = [args for grant in grants for args in acl_command_args(grant)]
        jvm = [_java(), "-Xms32m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
               "-Xshare:auto", f"-Dlog4j.configuration=file:{self._log4j()}",
               "-cp", kafka_classpath(), "kafka.admin.AclCommand",
               "--bootstrap-server", self.bootstrap]
        # a few at a time: each is a JVM start, which is most of what one costs
        running: list[tuple[list[str], subprocess.Popen]] = []
        for args in commands:
            running.append((args, subprocess.Popen([*jvm, *args], stdout=subprocess.PIPE,
                                                   stderr=subprocess.STDOUT)))
            if len(running) >= 3:
                self._acl_done(*running.pop(0))
        for item in running:
            self._acl_done(*item)
        return len(commands)

    @staticmethod
    def _acl_done(args: list[str], proc: subprocess.Popen) -> None:
        out, _ = proc.communicate(timeout=120)
        if proc.returncode:
            raise InfraError(f"AclCommand {' '.join(args)} failed ({proc.returncode}):\n"
                             + out.decode(errors="replace")[-3000:])

    def _make_tls(self) -> None:
        """The CA, the broker's certificate, and its PKCS12 keystore and truststore."""
        keystore, truststore = self.tls_dir / "broker.p12", self.tls_dir / "truststore.p12"
        if keystore.exists() and truststore.exists():
            return
        self.tls_dir.mkdir(parents=True, exist_ok=True)
        ca = make_ca(self.tls_dir, "ca", common_name="alertanim test CA")
        cert, key = make_cert(self.tls_dir, "broker", ca)
        make_keystore(keystore, cert, key, ca[0], self._store_password)
        make_truststore(truststore, ca[0], self._store_password)

    def _write_config(self) -> Path:
        props = self.workdir / "server.properties"
        listeners = [f"PLAINTEXT://127.0.0.1:{self.port}"]
        protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
        if self.sasl_ssl:
            listeners.append(f"SASL_SSL://127.0.0.1:{self.sasl_port}")
            protocols.append("SASL_SSL:SASL_SSL")
        props.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            f"listeners={','.join(listeners)},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners={','.join(listeners)}",
            f"listener.security.protocol.map={','.join(protocols)}",
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
            *self._sasl_ssl_config(),
            *self._acl_config(),
        ]) + "\n")
        return props

    def _acl_config(self) -> list[str]:
        if not self.acls:
            return []
        return [f"authorizer.class.name={self.AUTHORIZER}",
                f"super.users=User:ANONYMOUS;User:{self.username}",
                "allow.everyone.if.no.acl.found=false"]

    def _sasl_ssl_config(self) -> list[str]:
        if not self.sasl_ssl:
            return []
        tls, pw = self.tls_dir, self._store_password
        return [
            "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256",
            "listener.name.sasl_ssl.plain.sasl.jaas.config="
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            + " ".join(f'user_{user}="{password}"' for user, password in self.passwords.items())
            + ";",
            "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "ssl.keystore.type=PKCS12",
            f"ssl.keystore.location={tls / 'broker.p12'}",
            f"ssl.keystore.password={pw}",
            f"ssl.key.password={pw}",
            "ssl.truststore.type=PKCS12",
            f"ssl.truststore.location={tls / 'truststore.p12'}",
            f"ssl.truststore.password={pw}",
            "listener.name.sasl_ssl.ssl.client.auth=requested",
        ]

    def start(self, timeout: float = 90.0) -> "KafkaBroker":
        cp = kafka_classpath()
        java = _java()
        props = self.workdir / "server.properties"
        env = {**os.environ, "KAFKA_HEAP_OPTS": "-Xmx512m"}
        jvm = [java, "-Xms256m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
               f"-Dlog4j.configuration=file:{self._log4j()}", "-cp", cp]
        if not (self.workdir / "data" / "meta.properties").exists():
            scram: list[str] = []
            if self.sasl_ssl:
                self._make_tls()
                for user, password in self.passwords.items():
                    scram += ["--add-scram", f"SCRAM-SHA-256=[name={user},password={password}]"]
            self._write_config()
            cluster_id = _cluster_id()
            subprocess.run([*jvm, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c",
                            str(props), *scram], check=True, env=env, stdout=subprocess.DEVNULL)
        with open(self.log_path, "ab") as log:  # the broker keeps its own handle
            self.proc = subprocess.Popen([*jvm, "kafka.Kafka", str(props)], stdout=log,
                                         stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
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
                if self.sasl_ssl:  # real metadata through TLS and SASL
                    asyncio.run(_metadata(self.sasl_bootstrap, **self.sasl_client_kwargs()))
                return
            except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
                last = exc
                time.sleep(0.5)
        raise InfraError(f"Kafka not ready on {self.bootstrap} after {timeout}s: {last!r}; see "
                         f"{self.log_path}:\n" + self.log_path.read_text()[-3000:])

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
    """A KRaft cluster id: 16 random bytes, URL-safe base64. One that starts with "-" would be
    read as an option by the storage tool, so that draw is made again."""
    import base64

    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


async def _metadata(bootstrap: str, **client) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    client.pop("bootstrap_servers", None)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000, **client)
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


S3PROXY_POM = HERE / "s3proxy-pom.xml"
S3PROXY_LIBS = HERE / "target" / "s3proxy"


def s3proxy_jar() -> Path:
    """S3Proxy's self-contained jar (the version s3proxy-pom.xml names), resolved by Maven on
    first use and cached in deploy/local/target."""
    import re

    found = re.search(r"<s3proxy\.version>([^<]+)</s3proxy\.version>", S3PROXY_POM.read_text())
    if found is None:
        raise InfraError(f"{S3PROXY_POM} names no s3proxy.version")
    jar = S3PROXY_LIBS / f"s3proxy-{found.group(1)}-jar-with-dependencies.jar"
    if not jar.is_file():
        mvn = shutil.which("mvn")
        if mvn is None:
            raise InfraError("Maven (mvn) is needed to fetch S3Proxy")
        subprocess.run([mvn, "-q", "-B", "-f", str(S3PROXY_POM), "dependency:copy"], check=True)
        if not jar.is_file():
            raise InfraError(f"Maven did not leave {jar}")
    return jar


class S3Proxy:
    """S3Proxy (Java, jars from Maven Central) on its filesystem backend: an S3-compatible server
    whose objects are files under `data_dir`, so they outlive the process. Every request must be
    signed (AWS v2 or v4) with `access_key`/`secret_key`; a wrong secret is refused as S3 refuses
    it, and `If-None-Match: *` on a PUT is a real conditional write (412 when the key exists).

    `stop(kill=True)` is SIGKILL; `start()` again, or `restart()`, keeps the port, the keys and
    the data. Ready means a signed S3 request was answered, and the bucket exists.
    """

    region = "us-east-1"

    def __init__(self, workdir: Path | None = None, port: int | None = None,
                 bucket: str = "alertanim", access_key: str = "alertanim-test",
                 secret_key: str | None = None):
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="alertanim-s3proxy-"))
        self.data_dir = self.workdir / "data"
        self.port = port or free_port()
        self.bucket = bucket
        self.access_key = access_key
        self.secret_key = secret_key or f"alertanim-{uuid.uuid4().hex}"
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / "s3proxy.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _write_config(self) -> Path:
        props = self.workdir / "s3proxy.properties"
        props.write_text("\n".join([
            f"s3proxy.endpoint={self.endpoint}",
            "s3proxy.authorization=aws-v2-or-v4",
            f"s3proxy.identity={self.access_key}",
            f"s3proxy.credential={self.secret_key}",
            "jclouds.provider=filesystem",
            f"jclouds.filesystem.basedir={self.data_dir}",
        ]) + "\n")
        return props

    def start(self, timeout: float = 60.0) -> "S3Proxy":
        if self.running:
            raise InfraError(f"S3Proxy already runs on {self.endpoint}")
        jar, java = s3proxy_jar(), _java()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        props = self._write_config()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [java, "-Xms64m", "-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                 "-jar", str(jar), "--properties", str(props)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "LOG_LEVEL": "warn"})
        try:
            self._wait_ready(timeout)
            self._ensure_bucket()
        except BaseException:
            self.stop(kill=True)
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        probe = self.client(config=Config(connect_timeout=1, read_timeout=5,
                                          retries={"max_attempts": 1}))
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise InfraError(f"S3Proxy exited with {code}; see {self.log_path}:\n"
                                 + self.log_path.read_text(errors="replace")[-3000:])
            try:
                probe.list_buckets()
                return
            except ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if status < 500:  # it answered, and refused: waiting will not help
                    raise InfraError(f"S3Proxy on {self.endpoint} refused a signed request: "
                                     f"{exc}") from exc
                last = exc
                time.sleep(0.3)
            except (BotoCoreError, OSError) as exc:
                last = exc
                time.sleep(0.3)
        raise InfraError(f"S3Proxy not ready on {self.endpoint} after {timeout}s: {last!r}")

    def _ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        s3 = self.client()
        try:
            s3.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 404:
                raise
            s3.create_bucket(Bucket=self.bucket)

    def client(self, config=None):
        import boto3
        from botocore.config import Config

        base = Config(signature_version="s3v4")
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key,
                            config=base.merge(config) if config is not None else base)

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
                self.proc.wait(30)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def restart(self, kill: bool = False) -> "S3Proxy":
        self.stop(kill=kill)
        return self.start()

    def cleanup(self) -> None:
        self.stop(kill=True)
        shutil.rmtree(self.workdir, ignore_errors=True)


class TcpProxy:
    """A loopback TCP proxy that can cut a server off (`pause`) and bring it back (`resume`)
    without restarting it: the network outage a client sees, with the server's state kept."""

    def __init__(self, target_port: int, port: int | None = None):
        import threading

        self.target_port = target_port
        self.port = port or free_port()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._closers: list[threading.Thread] = []
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
            upstream.settimeout(None)  # the timeout was for the connect; an idle link stays up
            with self._lock:
                if self._listener is not listener:  # paused while this one was connecting
                    client.close()
                    upstream.close()
                    return
                self._conns += [client, upstream]
            pumps = [threading.Thread(target=self._pump, args=(a, b), daemon=True)
                     for a, b in ((client, upstream), (upstream, client))]
            for pump in pumps:
                pump.start()
            closer = threading.Thread(target=self._close_when_done,
                                      args=(pumps, client, upstream), daemon=True)
            closer.start()
            with self._lock:
                self._closers = [t for t in self._closers if t.is_alive()] + [closer]

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):  # either side ending ends the link both ways
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _close_when_done(self, pumps: list, *socks: socket.socket) -> None:
        for pump in pumps:
            pump.join()
        with self._lock:
            self._conns = [c for c in self._conns if c not in socks]
        for sock in socks:
            sock.close()

    def pause(self) -> None:
        """Refuse new connections and reset the open ones."""
        with self._lock:
            listener, self._listener = self._listener, None
            conns = list(self._conns)
        if listener is not None:
            # shutdown wakes the thread blocked in accept(); a close alone leaves that accept
            # running on Linux, and it takes one more connection during the outage
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        for sock in conns:  # the pumps wake, and their links are closed once both are done
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def resume(self) -> None:
        self.start()

    def stop(self) -> None:
        """Pause, and wait until every link is closed."""
        self.pause()
        with self._lock:
            closers = list(self._closers)
        for closer in closers:
            closer.join(timeout=5)


def worker_env(broker: KafkaBroker, s3: "S3Server | S3Proxy",
               **extra: str) -> dict[str, str]:
    """ALERTANIM_* settings that point a worker at this harness (either S3 server)."""
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
    s3 = S3Proxy().start()  # objects on disk, signatures checked
    for k, v in worker_env(broker, s3).items():
        print(f"export {k}={v}")
    print("# Kafka and S3 are up; Ctrl-C stops them", file=sys.stderr)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        s3.cleanup()
        broker.cleanup()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
