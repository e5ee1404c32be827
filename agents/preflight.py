"""Before a worker starts: reach the Kafka broker as its clients will, or say in one line why not.

`broker_preflight` connects with aiokafka's admin client (`AIOKafkaAdminClient`: TLS handshake,
SASL login, the cluster's metadata, then a broker that metadata names) and sorts what went wrong:

- the TLS files (CA, client certificate, key) cannot be loaded: `EXIT_CONFIG`, before connecting;
- the broker refused the worker (authentication failed, its certificate is not trusted, the TLS
  handshake refused): `EXIT_REFUSED`, at once, since waiting cannot fix it;
- no broker answered: waited for, up to RETRY_DEADLINE_S, then `EXIT_UNAVAILABLE`.

Each ends as `BrokerCheckFailed` (schemas/errors.py) with that exit code, its reason code and a
one-line message that names the cause and the setting to look at.

aiokafka's clients do not raise why a connection failed: they log it (the exception is an
argument of the log record) and try the next server, then raise "Unable to bootstrap". So while a
check runs, a handler on the `aiokafka` logger keeps those exceptions to sort them; it also keeps
the records from being printed on their own, so the worker's one line stays the only one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import sys
import threading
import time
from contextlib import contextmanager

from alertanim.schemas.errors import BrokerCheckFailed

__all__ = ["BrokerCheckFailed", "EXIT_CONFIG", "EXIT_REFUSED", "EXIT_UNAVAILABLE",
           "broker_preflight", "scrub"]

# How `alertanim worker` ends when the broker cannot be used (sysexits codes):
EXIT_UNAVAILABLE = 69  # no broker answered within RETRY_DEADLINE_S (EX_UNAVAILABLE)
EXIT_REFUSED = 77  # the broker refused the worker: authentication failed, or its certificate
#                    is not trusted; waiting cannot fix either (EX_NOPERM)
EXIT_CONFIG = 78  # the TLS files (CA, client certificate, key) cannot be loaded (EX_CONFIG)

# The reason code of each (BrokerCheckFailed.reason).
_REASONS = {EXIT_UNAVAILABLE: "broker_unavailable", EXIT_REFUSED: "broker_refused",
            EXIT_CONFIG: "broker_tls_files"}


def _failed(message: str, exit_code: int) -> BrokerCheckFailed:
    return BrokerCheckFailed(message, exit_code, reason=_REASONS[exit_code],
                             transient=exit_code == EXIT_UNAVAILABLE)


def scrub(text: str, settings) -> str:
    """`text` without the configured secrets, whatever put them there."""
    for secret in (settings.sasl_password, settings.ssl_password):
        value = secret.get_secret_value() if secret else ""
        if value:
            text = text.replace(value, "**********")
    return text


def _refusal(exc: BaseException | None, settings, address: str) -> str | None:
    """The cause, in one line, when `exc` (or an error in its chain) is one that waiting cannot
    fix: authentication refused, a certificate not trusted, a TLS handshake refused. Else None."""
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


class _Causes(logging.Handler):
    """The exceptions aiokafka logs (as arguments of a record) from this thread, in order."""

    def __init__(self):
        super().__init__()
        self.thread = threading.get_ident()
        self.errors: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread:
            return
        args = record.args if isinstance(record.args, tuple) else ()
        found = [a for a in args if isinstance(a, BaseException)]
        if record.exc_info and record.exc_info[1] is not None:
            found.append(record.exc_info[1])
        self.errors.extend(found)


@contextmanager
def _aiokafka_causes():
    causes = _Causes()
    logger = logging.getLogger("aiokafka")
    logger.addHandler(causes)
    try:
        yield causes
    finally:
        logger.removeHandler(causes)


async def _probe(server: str, client: dict, timeout: float) -> None:
    """One connection to `server` as the clients make it (TLS handshake, SASL login) and its
    metadata, then the metadata again from a broker it names; each step within `timeout`."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=server, client_id="alertanim-preflight",
                                request_timeout_ms=int(timeout * 1000), **client)
    try:
        await asyncio.wait_for(admin.start(), timeout)
        await asyncio.wait_for(admin.describe_cluster(), timeout)
    finally:
        await admin.close()
        await asyncio.sleep(0)  # the connections it closed without waiting finish closing


async def broker_preflight(settings, wait_s: float | None = None, attempt_s: float = 10.0,
                           say=None) -> None:
    """Before the worker starts: reach a bootstrap server as its clients will (TLS, SASL) and read
    the cluster's metadata. A broker that refuses the worker (authentication failed, certificate
    not trusted) or TLS files that cannot be loaded raise `BrokerCheckFailed` at once; a broker
    that is not up yet is waited for, up to `wait_s` (RETRY_DEADLINE_S by default)."""
    problem = _tls_problem(settings) if settings.kafka_uses_tls else None
    if problem:
        raise _failed(problem, EXIT_CONFIG)
    say = say or (lambda line: print(scrub(line, settings), file=sys.stderr, flush=True))
    wait_s = settings.retry_deadline_s if wait_s is None else wait_s
    client = settings.kafka_client_kwargs()
    servers = [s.strip() for s in client.pop("bootstrap_servers").split(",") if s.strip()]
    deadline = time.monotonic() + wait_s
    delay, said_at, said = 0.5, 0.0, None
    while True:
        last = None
        for server in servers:
            with _aiokafka_causes() as causes:
                try:
                    await _probe(server, client, attempt_s)
                    return
                except Exception as exc:  # noqa: BLE001 - sorted below: fatal or worth waiting
                    raised = exc
            for error in (*causes.errors, raised):
                cause = _refusal(error, settings, server)
                if cause:
                    raise _failed(cause, EXIT_REFUSED) from None
            error = causes.errors[-1] if causes.errors else raised
            last = f"{server}: {type(error).__name__}: {error}".rstrip(": ")
            if settings.kafka_uses_tls and isinstance(error, ConnectionResetError):
                last += f" (does the listener at that port speak {settings.security_protocol}?)"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _failed(f"no Kafka broker answered at {settings.bootstrap_servers} within "
                          f"{wait_s:g} s (RETRY_DEADLINE_S); last: {last}", EXIT_UNAVAILABLE)
        if last != said or time.monotonic() - said_at > 10:
            say(f"alertanim: Kafka broker not reachable yet ({last}); waiting up to "
                f"{remaining:.0f} s more")
            said, said_at = last, time.monotonic()
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, 5.0)
