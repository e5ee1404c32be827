"""Least privilege on the broker, against a real broker of its own that authorizes every request
(KRaft, StandardAuthorizer, `allow.everyone.if.no.acl.found=false`): the ACLs are the table of
alertanim.agents.acls (the one deploy/ ships), made with kafka.admin.AclCommand from the broker's
jars. Each role's worker logs in over SASL_SSL as its own user and runs in its own group; the
publisher and the reader of results are users of their own. A role's credentials cannot write
another role's topics, read its inputs, join its group or take its transactional ids, and the
pipeline still runs end to end: one alert, one `ready`."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from alertanim.agents import acls
from alertanim.pipeline import graph
from alertanim.schemas import AnimationReady
from tests.support.deployment import Pipeline, Worker

from .conftest import alert_bytes, consume, publish

FRONT, BACK = "alertanim-front", "alertanim-back"  # the two roles' users
MIDDLE = "alertanim-middle"  # a generate,score role: its ACLs only, no worker
PRODUCER, WATCHER = "alertanim-publisher", "alertanim-reader"
ACL_USERS = (FRONT, BACK, MIDDLE, PRODUCER, WATCHER)  # the users acl_kafka makes (conftest.py)
ROLES = {"front": ("ingest", "subject"), "back": graph.NAMES[1:]}


def as_user(kafka, user: str | None = None, **overrides) -> dict[str, str]:
    """Pipeline settings for the SASL_SSL listener, as `user` (the harness's super user when
    None)."""
    given = {k.removeprefix("ALERTANIM_").lower(): v for k, v in kafka.sasl_env(user).items()}
    given.update(overrides)
    return given


@pytest.fixture(scope="module")
def deployment(acl_kafka, s3, model_cache, tiny):
    """One deployment: topics made by the admin, the ACLs of its table, and the settings each
    principal connects with. Its workers are started by the tests."""
    p = Pipeline(acl_kafka, s3, model_cache, **as_user(acl_kafka))  # the admin makes the topics
    grants = acls.deployment(p.settings, ROLES, principals={
        "front": FRONT, "back": BACK, acls.PRODUCER: PRODUCER, acls.WATCHER: WATCHER})
    grants.append(acls.role_grant(p.settings.model_copy(update={
        "app_id": f"{p.settings.app_id}-middle"}), "generate,score", MIDDLE, "middle"))
    started = time.monotonic()
    acl_kafka.create_acls(grants)
    print(f"{len(acls.bindings(grants))} ACLs in {time.monotonic() - started:.1f} s")
    by_name = {g.name: g for g in grants}
    settings = {name: p.settings.model_copy(update={
        "sasl_username": g.principal, "sasl_password": SecretStr(acl_kafka.passwords[g.principal]),
        **({"app_id": g.groups[0]} if g.groups else {})}) for name, g in by_name.items()}
    yield p, by_name, settings
    p.stop()


async def _send(settings, topic: str, transactional_id: str | None = None) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), acks="all",
                                transactional_id=transactional_id,
                                enable_idempotence=transactional_id is not None,
                                request_timeout_ms=10_000)
    try:  # start too: a refused one must still be stopped
        await producer.start()
        if transactional_id is None:
            await producer.send_and_wait(topic, value=b"{}", key=b"k")
        else:
            async with producer.transaction():
                await producer.send(topic, value=b"{}", key=b"k")
    finally:
        await producer.stop()


async def _read(settings, topic: str, group: str | None = None) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, **settings.kafka_client_kwargs(), group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        await consumer.start()
        await consumer.getmany(timeout_ms=3000)
        await consumer.getmany(timeout_ms=1000)
    finally:
        await consumer.stop()


def refused(coro, error: type) -> None:
    with pytest.raises(error):
        asyncio.run(asyncio.wait_for(coro, 60))


def test_a_roles_credentials_cannot_use_another_roles_topics_group_or_transactions(deployment):
    from aiokafka.errors import (GroupAuthorizationFailedError, TopicAuthorizationFailedError,
                                 TransactionalIdAuthorizationFailed)

    p, grants, settings = deployment
    front, back, middle = settings["front"], settings["back"], settings["middle"]
    s = p.settings
    # what a role may do, it does
    asyncio.run(_send(front, s.stage_topic("subject")))
    asyncio.run(_send(middle, s.stage_topic("mask")))
    # a role that makes no completion cannot publish one (the ingest role can: it answers a
    # re-published alert with its stored result), nor write where other roles write
    for topic in (s.topic_ready, s.topic_cap, s.stage_topic("sample"), s.topic_alerts):
        refused(_send(middle, topic), TopicAuthorizationFailedError)
    # the ingest role's credentials cannot write another role's outputs, or alerts
    for topic in (s.stage_topic("score"), s.stage_topic("animate"), s.topic_alerts):
        refused(_send(front, topic), TopicAuthorizationFailedError)
    # nor can the last roles' write the first one's topics, or forge alerts
    for topic in (s.stage_topic("subject"), s.topic_alerts, s.topic_instant):
        refused(_send(back, topic), TopicAuthorizationFailedError)
    # the publisher writes alerts and nothing else; the reader writes nothing
    asyncio.run(_send(settings[acls.PRODUCER], s.topic_alerts))
    refused(_send(settings[acls.PRODUCER], s.topic_ready), TopicAuthorizationFailedError)
    refused(_send(settings[acls.WATCHER], s.topic_failed), TopicAuthorizationFailedError)
    # a role reads neither the alerts (another role's input) nor in another role's group
    refused(_read(back, s.topic_alerts), TopicAuthorizationFailedError)
    refused(_read(front, s.stage_topic("subject"), group=back.app_id),
            GroupAuthorizationFailedError)
    # and it cannot take over another role's transactional ids (which would fence its producer)
    theirs = f"{acls.transactional_prefix(back.app_id, s.stage_topic('score'))}0"
    refused(_send(front, s.stage_topic("generate"), transactional_id=theirs),
            TransactionalIdAuthorizationFailed)
    mine = f"{acls.transactional_prefix(front.app_id, s.stage_topic('subject'))}0"
    asyncio.run(_send(front, s.stage_topic("generate"), transactional_id=mine))


def test_the_broker_holds_exactly_the_table(deployment, acl_kafka):
    """What AclCommand made from the table is the table, and the protocol path the Kubernetes
    Job takes (`python -m alertanim.agents.acls apply`) makes the same ACLs."""
    p, grants, _ = deployment
    admin = p.settings
    wanted = set(acls.bindings(grants.values()))
    ours = {b for b in asyncio.run(acls.listed(admin)) if b.principal in
            {g.user for g in grants.values()}}
    assert ours == wanted
    other = acls.deployment(admin.model_copy(update={"app_id": f"{admin.app_id}x"}), ROLES,
                            principals={"front": "k8s-front", "back": "k8s-back",
                                        acls.PRODUCER: "k8s-producer",
                                        acls.WATCHER: "k8s-watcher"})
    assert asyncio.run(acls.apply(admin, other)) == len(acls.bindings(other))
    made = {b for b in asyncio.run(acls.listed(admin)) if b.principal.startswith("User:k8s-")}
    assert made == set(acls.bindings(other))
    asyncio.run(acls.apply(admin, other))  # again: nothing changes
    assert {b for b in asyncio.run(acls.listed(admin))
            if b.principal.startswith("User:k8s-")} == made


def test_the_pipeline_runs_end_to_end_under_the_acls(deployment, acl_kafka):
    """One worker per role, each as its own user in its own group: one alert, one `ready`,
    published and read by users that may do only that; no worker was refused anything, and the
    last role's status page shows the alert."""
    p, grants, settings = deployment
    logs = Path(os.environ.get("ALERTANIM_TEST_LOGS", "/tmp"))
    workers = {}
    for role, stages in ROLES.items():
        env = {**p.env, **{f"ALERTANIM_{k.upper()}": v for k, v in
                           as_user(acl_kafka, grants[role].principal).items()},
               "ALERTANIM_APP_ID": grants[role].groups[0]}
        workers[role] = Worker(env, ",".join(stages), log_dir=logs)
        p.workers.append(workers[role])
    for worker in workers.values():
        worker.wait_ready(timeout=240)
    publish(settings[acls.PRODUCER], [("acl-01", alert_bytes("acl-01", "A fire has broken out"))])
    reader = settings[acls.WATCHER]

    def of_the_alert(records):  # (the other tests' probes of the topics end as failure records)
        return [r for r in records if r.key == b"acl-01"]
    records = of_the_alert(consume(reader, [reader.topic_ready, reader.topic_failed],
                                   until=lambda r: of_the_alert(r), timeout=300))
    assert [r.topic for r in records] == [reader.topic_ready], records
    event = AnimationReady.from_bytes(records[0].value)
    assert event.alert_id == "acl-01" and event.hazard == "fire"
    time.sleep(3)  # nothing else follows
    again = of_the_alert(consume(reader, [reader.topic_ready, reader.topic_failed],
                                 until=lambda r: False, timeout=5))
    assert len(again) == 1
    # the status page of the last role follows the topics read-only, and saw it end
    deadline = time.monotonic() + 60
    while True:
        status, body = workers["back"].get("/status.json")
        rows = {a["alert_id"]: a["state"] for a in json.loads(body)["alerts"]} if status == 200 \
            else {}
        if rows.get("acl-01") == "ready":
            break
        assert time.monotonic() < deadline, body
        time.sleep(1)
    for role, worker in workers.items():
        log = worker.log.read_text(errors="replace")
        assert "AuthorizationFailed" not in log and "AuthorizationException" not in log, (
            role, log[-4000:])
        assert acl_kafka.passwords[grants[role].principal] not in log
