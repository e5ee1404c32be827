"""A real Kafka broker and a real S3-compatible server on loopback for the whole session, and
deployments on them whose workers start exactly as an operator starts them (`alertanim worker`,
see tests/support/deployment.py).

If either server cannot start, these fixtures raise: the tests error, they are never skipped.
Every test in this folder is marked `integration`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.local.harness import KafkaBroker, S3Proxy, TcpProxy
from tests.support.deployment import Pipeline
# test_security.py imports these from here
from tests.support.deployment import Worker  # noqa: F401
from tests.support.kafka import alert_bytes, consume, publish  # noqa: F401

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items):
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)


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


@pytest.fixture(scope="module")
def acl_kafka(request, tmp_path_factory):
    """A broker of the module's own that authorizes every request (StandardAuthorizer, no ACL
    means no access), with a SASL_SSL listener and one user for each name in the module's
    `ACL_USERS`; the harness's admin (PLAINTEXT on loopback, and `username`) is a super user."""
    users = tuple(getattr(request.module, "ACL_USERS", ()))
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka-acls"), acls=True, users=users).start()
    yield broker
    broker.cleanup()
