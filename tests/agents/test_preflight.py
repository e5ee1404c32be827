"""The worker's broker preflight without a broker: nothing listening is waited for and then ends
the worker as unavailable, and a TLS listener whose certificate the configured CA did not sign is
refused at once, each with its cause in one line. (A real SASL_SSL broker: tests/stream/
test_security.py.)"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

from alertanim.agents.preflight import (EXIT_REFUSED, EXIT_UNAVAILABLE, BrokerCheckFailed,
                                        broker_preflight)
from alertanim.agents.settings import Settings
from alertanim.schemas.errors import AlertanimError
from deploy.local.harness import free_port, make_ca, make_cert


def test_nothing_listening_is_waited_for_then_unavailable():
    port = free_port()
    said: list[str] = []
    started = time.monotonic()
    with pytest.raises(BrokerCheckFailed) as failed:
        asyncio.run(broker_preflight(Settings(broker=f"kafka://127.0.0.1:{port}"), wait_s=1.5,
                                     say=said.append))
    assert time.monotonic() - started < 10
    error = failed.value
    assert isinstance(error, AlertanimError)
    assert error.exit_code == EXIT_UNAVAILABLE
    assert error.reason == "broker_unavailable" and error.transient
    message = str(error)
    assert f"no Kafka broker answered at 127.0.0.1:{port} within 1.5 s" in message
    # the cause aiokafka met, not its "Unable to bootstrap"
    assert f"last: 127.0.0.1:{port}: ConnectionRefusedError" in message, message
    assert said and "not reachable yet" in said[0] and "ConnectionRefusedError" in said[0]


@pytest.fixture
def tls_listener(tmp_path):
    """A TLS listener (no Kafka behind it) with a certificate signed by a CA of its own; yields
    (port, that CA's file, another CA's file)."""
    ca = make_ca(tmp_path, "ca")
    other, _ = make_ca(tmp_path, "other", common_name="some other CA")
    cert, key = make_cert(tmp_path, "server", ca)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    with context.wrap_socket(conn, server_side=True):
                        pass
                except OSError:
                    pass  # the client refused the certificate

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], ca[0], other
    stop.set()
    thread.join()
    listener.close()


def test_a_certificate_the_ca_did_not_sign_is_refused_at_once(tls_listener):
    port, _, other_ca = tls_listener
    settings = Settings(broker=f"kafka://127.0.0.1:{port}", security_protocol="SSL",
                        ssl_cafile=str(other_ca))
    started = time.monotonic()
    with pytest.raises(BrokerCheckFailed) as refused:
        asyncio.run(broker_preflight(settings, wait_s=30))
    assert time.monotonic() - started < 5
    error = refused.value
    assert error.exit_code == EXIT_REFUSED
    assert error.reason == "broker_refused" and not error.transient
    message = str(error)
    assert f"certificate at 127.0.0.1:{port} is not trusted" in message
    assert "certificate verify failed" in message and str(other_ca) in message


def test_the_worker_ends_with_one_line_per_wait_and_no_library_logs(tmp_path):
    """The command itself: its stderr has the wait and the cause, in the worker's own lines."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTANIM_")}
    env.update(ALERTANIM_BROKER=f"kafka://127.0.0.1:{port}", ALERTANIM_RETRY_DEADLINE_S="1")
    done = subprocess.run([sys.executable, "-m", "alertanim.agents.cli", "worker", "--stages",
                           "ingest"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_UNAVAILABLE, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines and all(line.startswith("alertanim: ") for line in lines), done.stderr
    assert "cannot start the worker: no Kafka broker answered" in lines[-1]
    assert "Traceback" not in done.stderr and "Unable connect" not in done.stderr
