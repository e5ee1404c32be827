"""The stream commands: `worker`, `send`, `watch`, `topics`. Settings come from ALERTANIM_* env."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid


def _settings(**overrides):
    from .settings import Settings

    return Settings(**{k: v for k, v in overrides.items() if v is not None})


# How `alertanim worker` ends when it cannot start (1 stays an unexpected crash):
EXIT_SETTINGS = 2  # a setting is refused (the message names it)
EXIT_UNAVAILABLE = 69  # no broker answered within RETRY_DEADLINE_S (sysexits EX_UNAVAILABLE)
EXIT_REFUSED = 77  # the broker refused the worker: authentication failed, or its certificate
#                    is not trusted; waiting cannot fix either (EX_NOPERM)
EXIT_CONFIG = 78  # the TLS files (CA, client certificate, key) cannot be loaded (EX_CONFIG)


class BrokerCheckFailed(Exception):
    """The broker cannot be used as configured; `exit_code` (EXIT_*) says how the worker ends."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def _refusal(exc: BaseException | None, settings, address: str) -> str | None:
    """The cause, in one line, when `exc` (or an error in its chain) is one that waiting cannot
    fix: authentication refused, a certificate not trusted, a TLS handshake refused. Else None."""
    import ssl

    from aiokafka import errors

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ssl.SSLCertVerificationError):
            return (f"the broker's TLS certificate at {address} is not trusted: certificate "
                    f"verify failed: {exc.verify_message or exc.reason} (CA: "
                    f"{settings.ssl_cafile or 'the system store'}; ALERTANIM_SSL_CAFILE)")
        if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
            return None  # the connection closed mid-handshake: a broker starting or stopping
        if isinstance(exc, ssl.SSLError):
            return f"the TLS handshake with the broker at {address} failed: {exc.reason or exc}"
        if isinstance(exc, errors.SaslAuthenticationFailed):
            return (f"authentication failed at {address}: SASL {settings.sasl_mechanism} as user "
                    f"{settings.sasl_username!r} was refused ({exc}; ALERTANIM_SASL_USERNAME, "
                    "ALERTANIM_SASL_PASSWORD)")
        if isinstance(exc, (errors.UnsupportedSaslMechanismError, errors.IllegalSaslStateError)):
            return (f"authentication failed at {address}: the broker does not take SASL "
                    f"{settings.sasl_mechanism} there ({exc})")
        exc = exc.__cause__ or exc.__context__
    return None


def _tls_problem(settings) -> str | None:
    """Why the TLS settings cannot be loaded, or None."""
    import os
    import ssl

    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(settings, name)
        if path and not os.access(path, os.R_OK):
            return f"cannot read {name} {path} (ALERTANIM_{name.upper()}): no such readable file"
    try:
        settings.kafka_ssl_context()
    except (ssl.SSLError, OSError, ValueError) as exc:
        files = ", ".join(f"{n} {getattr(settings, n)}" for n in
                          ("ssl_cafile", "ssl_certfile", "ssl_keyfile") if getattr(settings, n))
        return f"cannot load the TLS settings ({files or 'the system CAs'}): {exc}"
    return None


async def _probe(host: str, port: int, client: dict, timeout: float) -> None:
    """One connection as the clients make it (TLS handshake, SASL login), then metadata."""
    from aiokafka.conn import create_conn
    from aiokafka.protocol.metadata import MetadataRequest

    conn = await asyncio.wait_for(
        create_conn(host, port, client_id="alertanim-preflight",
                    request_timeout_ms=int(timeout * 1000), **client), timeout)
    try:
        await asyncio.wait_for(conn.send(MetadataRequest([])), timeout)
    finally:
        conn.close()


async def broker_preflight(settings, wait_s: float | None = None, attempt_s: float = 10.0,
                           say=None) -> None:
    """Before the worker starts: reach a bootstrap server as its clients will (TLS, SASL) and read
    the cluster's metadata. A broker that refuses the worker (authentication failed, certificate
    not trusted) or TLS files that cannot be loaded raise `BrokerCheckFailed` at once; a broker
    that is not up yet is waited for, up to `wait_s` (RETRY_DEADLINE_S by default)."""
    problem = _tls_problem(settings) if settings.kafka_uses_tls else None
    if problem:
        raise BrokerCheckFailed(problem, EXIT_CONFIG)
    from aiokafka.conn import collect_hosts

    say = say or (lambda line: print(_scrub(line, settings), file=sys.stderr, flush=True))
    wait_s = settings.retry_deadline_s if wait_s is None else wait_s
    client = settings.kafka_client_kwargs()
    client.pop("bootstrap_servers")
    hosts = collect_hosts(settings.bootstrap_servers, randomize=False)
    deadline = time.monotonic() + wait_s
    delay, said_at, said = 0.5, 0.0, None
    while True:
        last = None
        for host, port, _ in hosts:
            address = f"{host}:{port}"
            try:
                await _probe(host, port, client, attempt_s)
                return
            except Exception as exc:  # noqa: BLE001 - sorted below: fatal or worth waiting for
                cause = _refusal(exc, settings, address)
                if cause:
                    raise BrokerCheckFailed(cause, EXIT_REFUSED) from None
                last = f"{address}: {type(exc).__name__}: {exc}".rstrip(": ")
                if settings.kafka_uses_tls and isinstance(exc, ConnectionResetError):
                    last += f" (does the listener at that port speak {settings.security_protocol}?)"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerCheckFailed(f"no Kafka broker answered at {settings.bootstrap_servers} "
                                    f"within {wait_s:g} s (RETRY_DEADLINE_S); last: {last}",
                                    EXIT_UNAVAILABLE)
        if last != said or time.monotonic() - said_at > 10:
            say(f"alertanim: Kafka broker not reachable yet ({last}); waiting up to "
                f"{remaining:.0f} s more")
            said, said_at = last, time.monotonic()
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, 5.0)


def _scrub(text: str, settings) -> str:
    """`text` without the configured secrets, whatever put them there."""
    for secret in (settings.sasl_password, settings.ssl_password):
        value = secret.get_secret_value() if secret else ""
        if value:
            text = text.replace(value, "**********")
    return text


def cmd_worker(args: argparse.Namespace) -> int:
    import faust
    from pydantic import ValidationError

    from .app import create_app, ensure_topics

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
        print(_scrub(f"alertanim: cannot start the worker: {exc}", settings), file=sys.stderr)
        return exc.exit_code
    asyncio.run(ensure_topics(settings))
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
