"""One retry policy for everything the worker retries: stage runs, sends and ledger writes.

Whether an error is worth waiting out is read from the error itself, never from its class
family: the project's errors carry `transient`; aiokafka's carry `retriable`; a timeout or a
refused connection is transient by nature; a CUDA out-of-memory error passes once the batch
before it is freed. Faust and boto wrap errors, so the whole `__cause__` chain is read.

An error that waiting cannot fix gets `max_attempts` tries; a transient one is retried until
`retry_deadline_s` has passed since the first try. Waits grow exponentially from
`retry_backoff_s` up to `retry_backoff_max_s`, with full jitter so that workers that lost the
store together do not come back in lockstep.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging

from tenacity import (AsyncRetrying, RetryCallState, Retrying, retry_if_exception,
                      stop_after_attempt, stop_after_delay, wait_random_exponential)

from alertanim.schemas.errors import AlertanimError

log = logging.getLogger("alertanim")


def _decide(exc: BaseException) -> bool | None:
    if isinstance(exc, AlertanimError):
        return exc.transient
    retriable = getattr(type(exc), "retriable", None)
    if isinstance(retriable, bool):  # aiokafka's KafkaError family
        from aiokafka.errors import KafkaTimeoutError

        return retriable or isinstance(exc, KafkaTimeoutError)
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    try:
        import torch
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return None


def is_transient(exc: BaseException) -> bool:
    """Can waiting fix this? Reads the error and what it wraps, outermost decision first."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        decided = _decide(cur)
        if decided is not None:
            return decided
        cur = cur.__cause__ or cur.__context__
    return False


CANCELLED = (asyncio.CancelledError, concurrent.futures.CancelledError)


class _Stop:
    """max_attempts for errors that waiting cannot fix, a deadline for those it can."""

    def __init__(self, attempts: int, deadline_s: float):
        self.attempts = stop_after_attempt(attempts)
        self.deadline = stop_after_delay(deadline_s)

    def __call__(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        if exc is not None and is_transient(exc):
            return self.deadline(state)
        return self.attempts(state)


def policy(settings, *, retry_on=lambda exc: True, forever_if_transient: bool = False,
           on_retry=None) -> dict:
    """tenacity keyword arguments for `settings`' policy. `retry_on` narrows what is retried at
    all; `forever_if_transient` (for sends: nothing can move without the broker, and giving up
    would commit the input with no output) lifts the deadline for transient errors."""
    deadline = float("inf") if forever_if_transient else settings.retry_deadline_s

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None:
            on_retry(state)

    return dict(
        # a cancellation (the task's, or a pool's future cancelled at shutdown) goes on out:
        # tenacity would otherwise take it for one more error to retry
        retry=retry_if_exception(lambda exc: not isinstance(exc, CANCELLED) and retry_on(exc)),
        stop=_Stop(settings.max_attempts, deadline),
        wait=wait_random_exponential(multiplier=settings.retry_backoff_s,
                                     max=settings.retry_backoff_max_s),
        before_sleep=before_sleep,
        reraise=True,
    )


def async_retrying(settings, **kw) -> AsyncRetrying:
    return AsyncRetrying(**policy(settings, **kw))


def retrying(settings, **kw) -> Retrying:
    return Retrying(**policy(settings, **kw))


async def run_retried(settings, executor, fn, *args, retry_on=lambda exc: True,
                      on_retry=None):
    """`fn(*args)` on `executor` under the policy, off the event loop. Giving up raises
    RetriesExhausted with the last error and the number of tries."""
    import asyncio

    from alertanim.schemas.errors import RetriesExhausted

    loop = asyncio.get_running_loop()
    tries = 0
    try:
        async for attempt in async_retrying(settings, retry_on=retry_on, on_retry=on_retry):
            with attempt:
                tries += 1
                return await loop.run_in_executor(executor, fn, *args)
    except Exception as exc:  # noqa: BLE001 - every error ends here, with its tries
        raise RetriesExhausted(exc, tries) from exc
