"""Transient or not is read from the errors' own flags, through the chain of causes."""

import pytest
from aiokafka.errors import (KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError,
                             NotLeaderForPartitionError, TopicAuthorizationFailedError)

from alertanim.agents.retry import is_transient, retrying
from alertanim.agents.settings import Settings
from alertanim.schemas import InvalidAlert, SendRefused, StoreRefused, StoreUnavailable


def wrapped(inner: BaseException) -> BaseException:
    """As Faust raises it: its own error, from aiokafka's."""
    try:
        try:
            raise inner
        except BaseException as exc:
            raise RuntimeError("Error while sending") from exc
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize("exc, transient", [
    (StoreUnavailable("reset"), True),
    (StoreRefused("403"), False),
    (InvalidAlert("not_json", "x"), False),
    (SendRefused("too big"), False),
    (KafkaConnectionError(), True),
    (NotLeaderForPartitionError(), True),
    (KafkaTimeoutError(), True),
    (MessageSizeTooLargeError(), False),
    (TopicAuthorizationFailedError(), False),
    (ConnectionResetError(), True),
    (TimeoutError(), True),
    (ValueError("x"), False),
    (wrapped(KafkaConnectionError()), True),
    (wrapped(MessageSizeTooLargeError()), False),
])
def test_transient_is_read_from_the_error(exc, transient):
    assert is_transient(exc) is transient


def test_cuda_out_of_memory_is_transient():
    import torch

    assert is_transient(torch.cuda.OutOfMemoryError("CUDA out of memory"))


def test_the_policy_gives_other_errors_max_attempts_and_transient_ones_a_deadline():
    settings = Settings(max_attempts=2, retry_deadline_s=0.2, retry_backoff_s=0.01,
                        retry_backoff_max_s=0.01)
    calls = []

    def fail(exc):
        calls.append(1)
        raise exc
    with pytest.raises(ValueError):
        retrying(settings)(fail, ValueError("no"))
    assert len(calls) == 2
    calls.clear()
    with pytest.raises(StoreUnavailable):
        retrying(settings)(fail, StoreUnavailable("away"))
    assert len(calls) > 2, "a transient error is retried past max_attempts, until the deadline"
