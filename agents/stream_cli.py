"""The stream commands: `worker`, `send`, `watch`, `topics`. Settings come from ALERTANIM_* env."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid

# The broker check before a worker starts; its exit codes are the worker's too.
from .preflight import (EXIT_CONFIG, EXIT_REFUSED, EXIT_UNAVAILABLE,  # noqa: F401
                        BrokerCheckFailed, broker_preflight, scrub)


def _settings(**overrides):
    from .settings import Settings

    return Settings(**{k: v for k, v in overrides.items() if v is not None})


# How `alertanim worker` ends when it cannot start (1 stays an unexpected crash): a setting is
# refused (the message names it), or the broker cannot be used (agents/preflight.py: EXIT_CONFIG,
# EXIT_REFUSED, EXIT_UNAVAILABLE).
EXIT_SETTINGS = 2


def cmd_worker(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    try:
        settings = _settings(stages=args.stages, web_port=args.web_port, models=args.models,
                             app_id=args.app_id)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}"
                             for e in exc.errors(include_input=False, include_url=False))
        print(f"alertanim: settings refused: {problems}", file=sys.stderr)
        return EXIT_SETTINGS
    try:
        asyncio.run(broker_preflight(settings))
    except BrokerCheckFailed as exc:
        print(scrub(f"alertanim: cannot start the worker: {exc}", settings), file=sys.stderr)
        return exc.exit_code
    # The app (models, torch) is imported once the broker is known to take the worker: a worker
    # that cannot start says so in seconds, however long those imports take.
    import faust

    from .app import create_app, ensure_topics

    asyncio.run(ensure_topics(settings))
    sys.setswitchinterval(settings.switch_interval_ms / 1000)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=args.loglevel, quiet=True)
    worker.execute_from_commandline()
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from .app import ensure_topics

    asyncio.run(ensure_topics(_settings()))
    return 0


async def _send(settings, records: list[bytes], keys: list[str]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(acks="all", enable_idempotence=True,
                                **settings.kafka_client_kwargs())
    await producer.start()
    try:
        for key, value in zip(keys, records):
            await producer.send_and_wait(settings.topic_alerts, value=value, key=key.encode())
    finally:
        await producer.stop()


def cmd_send(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from alertanim.schemas import Alert

    settings = _settings()
    if (args.text is None) == (args.cap is None):
        print("alertanim: give the alert's text or --cap FILE (one of them)", file=sys.stderr)
        return 2
    if args.cap is not None:
        from pathlib import Path

        from alertanim.schemas import InvalidAlert, parse_cap

        try:
            document = Path(args.cap).read_bytes()
            cap = parse_cap(document, settings.max_cap_bytes)
        except OSError as exc:
            print(f"alertanim: cannot read {args.cap}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        except InvalidAlert as exc:
            print(f"alertanim: not a CAP 1.2 alert ({exc.reason}): {exc}", file=sys.stderr)
            return 2
        # published as is: the worker reads the XML, and keys it by its CAP identity
        asyncio.run(_send(settings, [document], [cap.alert_id]))
        print(cap.alert_id)
        return 0
    alert = Alert(id=args.id or uuid.uuid4().hex, text=args.text, language=args.language,
                  sent=datetime.now(timezone.utc), event=args.event, severity=args.severity,
                  area=args.area)
    asyncio.run(_send(settings, [alert.to_bytes()], [alert.id]))
    print(alert.id)
    return 0


async def _watch(settings, topics: list[str], count: int | None, timeout: float | None,
                 from_beginning: bool = False, out=sys.stdout) -> int:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(*topics, group_id=None,
                                auto_offset_reset="earliest" if from_beginning else "latest",
                                **settings.kafka_client_kwargs())
    await consumer.start()
    seen = 0
    deadline = time.monotonic() + timeout if timeout else None
    try:
        while count is None or seen < count:
            wait = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            if wait <= 0:
                break
            batch = await consumer.getmany(timeout_ms=int(wait * 1000))
            for tp, messages in batch.items():
                for m in messages:
                    try:
                        body = json.loads(m.value)
                    except ValueError:
                        body = {"raw": m.value.decode("utf-8", "replace")}
                    out.write(json.dumps({"topic": tp.topic, **body}, ensure_ascii=False) + "\n")
                    out.flush()
                    seen += 1
    finally:
        await consumer.stop()
    return seen


def cmd_watch(args: argparse.Namespace) -> int:
    settings = _settings()
    topics = [settings.topic_ready] + ([settings.topic_failed] if args.failed else [])
    asyncio.run(_watch(settings, topics, args.count, args.timeout, args.from_beginning))
    return 0


def add_commands(sub) -> None:
    worker = sub.add_parser("worker", help="run stage agents against Kafka (ALERTANIM_* settings)")
    worker.add_argument("--stages", help="all, or a subset such as generate,score")
    worker.add_argument("--web-port", type=int, help="health/metrics port (default 6066)")
    worker.add_argument("--models", help="default, tiny, random-full or a directory")
    worker.add_argument("--app-id", help="consumer group; give each role its own")
    worker.add_argument("--loglevel", default="info")
    worker.set_defaults(func=cmd_worker)

    send = sub.add_parser("send", help="publish an alert to the alerts topic; prints its id")
    send.add_argument("text", nargs="?")
    send.add_argument("--cap", metavar="FILE", help="publish this CAP 1.2 document instead")
    send.add_argument("--id")
    send.add_argument("--language")
    send.add_argument("--event", help="CAP event, e.g. 'Flood Warning'")
    send.add_argument("--severity")
    send.add_argument("--area")
    send.set_defaults(func=cmd_send)

    watch = sub.add_parser("watch", help="print completion events (JSON lines) as they arrive")
    watch.add_argument("--failed", action="store_true", help="also print failure records")
    watch.add_argument("--from-beginning", action="store_true",
                       help="also print events published before the watch started")
    watch.add_argument("--count", type=int, help="stop after this many events")
    watch.add_argument("--timeout", type=float, help="stop after this many seconds")
    watch.set_defaults(func=cmd_watch)

    topics = sub.add_parser("topics", help="create the pipeline's topics if missing")
    topics.set_defaults(func=cmd_topics)
