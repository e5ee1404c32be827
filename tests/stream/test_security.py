"""Kafka over SASL_SSL, against a real broker of its own: TLS with a certificate signed by a CA
made for the test, SASL PLAIN (and SCRAM-SHA-256) logins. A worker with the right CA and login
runs the pipeline; a wrong password or a CA that did not sign the broker's certificate ends the
worker within seconds, with the cause in one line and no password in its log; a broker that is not
up yet is waited for."""

import os
import subprocess
import time
from pathlib import Path

import pytest

from alertanim.agents.stream_cli import EXIT_REFUSED
from deploy.local.harness import KafkaBroker, TcpProxy, free_port, make_ca, make_cert
from alertanim.schemas import AnimationReady

from .conftest import Pipeline, Worker, alert_bytes, consume, publish

FAIL_WITHIN_S = 30


@pytest.fixture(scope="module")
def sasl_kafka(tmp_path_factory):
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka-sasl"), sasl_ssl=True).start()
    yield broker
    broker.cleanup()


def _sasl_settings(broker: KafkaBroker, **overrides) -> dict[str, str]:
    """Pipeline keyword settings for the broker's SASL_SSL listener."""
    given = {k.removeprefix("ALERTANIM_").lower(): v for k, v in broker.sasl_env().items()}
    given.update(overrides)
    return given


@pytest.fixture
def secure_pipeline(sasl_kafka, s3, model_cache, tiny):
    made: list[Pipeline] = []

    def make(**overrides) -> Pipeline:
        p = Pipeline(sasl_kafka, s3, model_cache, **_sasl_settings(sasl_kafka, **overrides))
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


def _start(p: Pipeline, **env: str) -> Worker:
    """A worker of `p` with some of its settings replaced."""
    worker = Worker({**p.env, **env}, "all",
                    log_dir=Path(os.environ.get("ALERTANIM_TEST_LOGS", "/tmp")))
    p.workers.append(worker)
    return worker


def _exit_within(worker: Worker, seconds: float) -> tuple[int, float, str]:
    start = time.monotonic()
    try:
        code = worker.proc.wait(seconds)
    except subprocess.TimeoutExpired:
        worker.kill()
        raise AssertionError(f"the worker still ran after {seconds} s:\n"
                             + worker.log.read_text(errors="replace")[-3000:])
    return code, time.monotonic() - start, worker.log.read_text(errors="replace")


def test_a_worker_over_sasl_ssl_animates_an_alert(secure_pipeline, sasl_kafka):
    p = secure_pipeline()
    assert p.settings.security_protocol == "SASL_SSL"
    assert p.settings.bootstrap_servers == sasl_kafka.sasl_bootstrap
    worker = p.start_worker()
    publish(p.settings, [("sasl-01", alert_bytes("sasl-01", "A fire has broken out"))])
    records = consume(p.settings, [p.settings.topic_ready, p.settings.topic_failed],
                      until=lambda r: len(r) >= 1, timeout=240)
    assert [r.topic for r in records] == [p.settings.topic_ready], records
    event = AnimationReady.from_bytes(records[0].value)
    assert event.alert_id == "sasl-01" and event.hazard == "fire"
    assert worker.metric("alertanim_stage_processed", stage="animate") == 1
    log = worker.log.read_text(errors="replace")
    assert sasl_kafka.password not in log


def test_a_wrong_password_ends_the_worker_at_once_without_the_passwords(secure_pipeline,
                                                                        sasl_kafka):
    p = secure_pipeline()
    wrong = "wrong-" + sasl_kafka.password[::-1]
    worker = _start(p, ALERTANIM_SASL_PASSWORD=wrong)
    code, took, log = _exit_within(worker, FAIL_WITHIN_S)
    assert code == EXIT_REFUSED, log
    assert "authentication failed" in log, log
    assert "SaslAuthenticationFailed" in log and "'alertanim'" in log, log
    assert "Traceback" not in log, log
    for secret in (wrong, sasl_kafka.password):
        assert secret not in log
    print(f"wrong password: exit {code} after {took:.1f} s")


def test_a_ca_that_did_not_sign_the_broker_ends_the_worker_at_once(secure_pipeline, tmp_path,
                                                                   sasl_kafka):
    p = secure_pipeline()
    other_ca, _ = make_ca(tmp_path, "other", common_name="some other CA")
    worker = _start(p, ALERTANIM_SSL_CAFILE=str(other_ca))
    code, took, log = _exit_within(worker, FAIL_WITHIN_S)
    assert code == EXIT_REFUSED, log
    assert "certificate" in log and "not trusted" in log and "certificate verify failed" in log
    assert str(other_ca) in log, log
    assert "Traceback" not in log, log
    assert sasl_kafka.password not in log
    print(f"untrusted certificate: exit {code} after {took:.1f} s")


def test_a_worker_waits_for_a_broker_that_is_not_up_yet(secure_pipeline, sasl_kafka):
    """Nothing listens at the worker's bootstrap address at first: the worker says so and waits;
    once the address answers (a TCP proxy to the broker), it starts."""
    p = secure_pipeline()
    port = free_port()
    worker = _start(p, ALERTANIM_BROKER=f"kafka://127.0.0.1:{port}",
                    ALERTANIM_RETRY_DEADLINE_S="120")
    proxy = None
    try:
        deadline = time.monotonic() + 60
        while "not reachable yet" not in worker.log.read_text(errors="replace"):
            assert worker.proc.poll() is None, worker.log.read_text(errors="replace")
            assert time.monotonic() < deadline, worker.log.read_text(errors="replace")
            time.sleep(0.2)
        time.sleep(3)
        assert worker.proc.poll() is None, worker.log.read_text(errors="replace")
        proxy = TcpProxy(sasl_kafka.sasl_port, port=port).start()
        worker.wait_ready()
    finally:
        if proxy is not None:
            proxy.stop()


def test_scram_and_a_client_certificate_pass_the_preflight(sasl_kafka, tmp_path):
    """The other login the listener takes, with a client certificate (encrypted key) signed by
    the broker's CA, as the worker's preflight makes them."""
    import asyncio

    from alertanim.agents.settings import Settings
    from alertanim.agents.stream_cli import BrokerCheckFailed, broker_preflight
    from alertanim.schemas.errors import AlertanimError

    cert, key = make_cert(tmp_path, "client", (sasl_kafka.ca_file, sasl_kafka.ca_key_file),
                          key_password="client-key-pw")
    good = Settings(**_sasl_settings(sasl_kafka, sasl_mechanism="SCRAM-SHA-256",
                                     ssl_certfile=str(cert), ssl_keyfile=str(key),
                                     ssl_password="client-key-pw"))
    asyncio.run(broker_preflight(good, wait_s=10))
    bad = Settings(**_sasl_settings(sasl_kafka, sasl_mechanism="SCRAM-SHA-256",
                                    sasl_password="not-the-password"))
    start = time.monotonic()
    with pytest.raises(BrokerCheckFailed, match="authentication failed") as refused:
        asyncio.run(broker_preflight(bad, wait_s=10))
    assert refused.value.exit_code == EXIT_REFUSED
    assert refused.value.reason == "broker_refused" and not refused.value.transient
    assert isinstance(refused.value, AlertanimError)
    assert "not-the-password" not in str(refused.value)
    assert time.monotonic() - start < 5
