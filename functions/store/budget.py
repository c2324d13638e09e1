"""A time budget for the store calls of one latency-critical request: a switch's
authorization (POST /v1/authz), which must answer before the switch gives up on it.

The other Lambdas' clients wait long and retry much (functions.store `client`: 5 attempts,
botocore's 60 s timeouts): a file can wait, a ringing call cannot. Inside `within(limits)`
the store's adapters use their own clients and PynamoDB models (`active()` keys their
caches), built with `limits`' short timeouts and attempts, and every attempt is checked
against the request's deadline:

- an attempt never starts unless it can end (connect + read timeout) before the deadline:
  the request's store time is bounded by the deadline, whatever the store does;
- a failed attempt is retried (at most `max_attempts` in all) only when botocore's standard
  retry rules call it retryable (timeouts, connection errors, throttling, 5xx) and the retry
  fits too, after a short jittered pause of at most PAUSE_SECONDS (botocore's own pause after
  a throttle is up to 1 s, half the budget);
- past the deadline, DeadlineExceeded (a StoreError) ends the request: `unavailable()` tells
  it, and every timeout, connection or throttling error, apart from the rest.

The handlers are registered on every botocore session the store makes (functions.store
`botocore_session`, PynamoDB's too) and do nothing outside `within`.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotocoreConnectionError
from botocore.retries.standard import RetryContext, StandardRetryConditions

PAUSE_SECONDS = 0.05  # the longest pause before a retry inside a budget
# DynamoDB's answers when it cannot serve (after our retries): the store is unavailable.
UNAVAILABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "SlowDown",
    }
)


@dataclass(frozen=True, slots=True)
class Limits:
    """One request's budget. The defaults, for a switch's authorization:

    - connect 0.3 s: a TCP/TLS connect to DynamoDB in the same region takes a few ms; one
      that has not connected in 0.3 s is lost (and the pool reuses warm connections anyway);
    - read 0.5 s: DynamoDB's p99 for a GetItem/BatchGetItem/TransactWriteItems is ~10-20 ms,
      so 0.5 s is a store in trouble, not a slow answer;
    - 2 attempts: one retry covers a single lost connection or a throttled burst; more would
      not fit in the deadline;
    - deadline 1.5 s for the whole request: Kamailio's http_async_client and FreeSWITCH's
      mod_xml_curl are typically given ~2 s, and the answer must reach the switch before
      that, with the rendering and API Gateway's own time on top.
    """

    connect_timeout: float = 0.3
    read_timeout: float = 0.5
    max_attempts: int = 2
    deadline_seconds: float = 1.5
    name: str = "authz"

    @property
    def attempt_seconds(self) -> float:
        """The longest one attempt can take (a small answer: one connect, one read)."""
        return self.connect_timeout + self.read_timeout


def _number(env: dict[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    value = float(raw)
    if not low <= value <= high:
        raise ValueError(f"{name} must be from {low} to {high}, not {raw!r}")
    return value


def authz_limits(env: dict[str, str] | None = None) -> Limits:
    """The authorization's budget: the defaults above, or TOLLGATE_AUTHZ_CONNECT_TIMEOUT,
    TOLLGATE_AUTHZ_READ_TIMEOUT, TOLLGATE_AUTHZ_MAX_ATTEMPTS, TOLLGATE_AUTHZ_DEADLINE
    (seconds; attempts a whole number)."""
    env = dict(os.environ) if env is None else env
    base = Limits()
    return Limits(
        connect_timeout=_number(
            env, "TOLLGATE_AUTHZ_CONNECT_TIMEOUT", base.connect_timeout, 0.05, 10
        ),
        read_timeout=_number(env, "TOLLGATE_AUTHZ_READ_TIMEOUT", base.read_timeout, 0.05, 30),
        max_attempts=int(_number(env, "TOLLGATE_AUTHZ_MAX_ATTEMPTS", base.max_attempts, 1, 5)),
        deadline_seconds=_number(env, "TOLLGATE_AUTHZ_DEADLINE", base.deadline_seconds, 0.1, 30),
    )


class DeadlineExceeded(Exception):
    """The request's budget is spent: no store attempt may start any more."""


@dataclass(frozen=True, slots=True)
class _Active:
    limits: Limits
    deadline: float  # time.monotonic() value


_active: ContextVar[_Active | None] = ContextVar("tollgate_store_budget", default=None)
clock = time.monotonic  # tests move it


@contextmanager
def within(limits: Limits) -> Iterator[Limits]:
    """Run the store calls of the block under `limits` (its deadline starts now)."""
    token = _active.set(_Active(limits, clock() + limits.deadline_seconds))
    try:
        yield limits
    finally:
        _active.reset(token)


def active() -> Limits | None:
    state = _active.get()
    return None if state is None else state.limits


def _before_send(**_: Any) -> None:
    state = _active.get()
    if state is not None and clock() + state.limits.attempt_seconds > state.deadline:
        raise DeadlineExceeded(
            f"the {state.limits.name} budget of {state.limits.deadline_seconds} s is spent"
        )


def _needs_retry(
    *, attempts: int, operation: Any, response: Any, caught_exception: Any, request_dict: Any,
    **_: Any,
) -> float | bool | None:  # fmt: skip
    """Inside a budget this handler decides alone (it answers first, never None): a pause
    in seconds to retry, False not to."""
    state = _active.get()
    if state is None:
        return None  # botocore's own retry handler decides
    if isinstance(caught_exception, DeadlineExceeded):
        return False
    http_response, parsed = response if response is not None else (None, None)
    context = RetryContext(
        attempt_number=attempts,
        operation_model=operation,
        parsed_response=parsed,
        http_response=http_response,
        caught_exception=caught_exception,
        request_context=request_dict.get("context", {}),
    )
    if not StandardRetryConditions(max_attempts=state.limits.max_attempts).is_retryable(context):
        return False
    pause = random.uniform(0, PAUSE_SECONDS)
    if clock() + pause + state.limits.attempt_seconds > state.deadline:
        return False
    return pause


def register(session: Any) -> None:
    """The budget's handlers on a botocore session (every client made from it inherits them;
    without an active budget they do nothing)."""
    events = session.get_component("event_emitter")
    events.register_first("before-send", _before_send, unique_id="tollgate-budget-send")
    events.register_first("needs-retry", _needs_retry, unique_id="tollgate-budget-retry")


def client_config(limits: Limits) -> dict[str, Any]:
    """botocore Config arguments of a client made for `limits`."""
    return {
        "connect_timeout": limits.connect_timeout,
        "read_timeout": limits.read_timeout,
        # standard mode, but the budget's handler decides the retries (its pause is short)
        "retries": {"mode": "standard", "total_max_attempts": limits.max_attempts},
    }


def model_meta(limits: Limits) -> dict[str, Any]:
    """PynamoDB Meta settings of a model bound for `limits` (PynamoDB builds its own botocore
    client from them: connect/read timeouts and 1 + max_retry_attempts attempts)."""
    return {
        "connect_timeout_seconds": limits.connect_timeout,
        "read_timeout_seconds": limits.read_timeout,
        "max_retry_attempts": limits.max_attempts - 1,
    }


def unavailable(error: BaseException) -> str | None:
    """Why the store could not answer in time, if that is what `error` says: `store_timeout`
    (a connect or read timeout, the deadline), `store_unreachable` (no connection),
    `store_throttled` (throttling or 5xx after the retries); None for any other error.
    PynamoDB's errors carry botocore's as their `cause`; chained errors are followed."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DeadlineExceeded | ReadTimeoutError | ConnectTimeoutError):
            return "store_timeout"
        if isinstance(
            current,
            EndpointConnectionError | ConnectionClosedError | BotocoreConnectionError,
        ):
            return "store_unreachable"
        if isinstance(current, HTTPClientError):
            return "store_unreachable"
        if isinstance(current, ClientError):
            code = current.response.get("Error", {}).get("Code")
            if code in UNAVAILABLE_CODES:
                return "store_throttled"
            reasons = current.response.get("CancellationReasons") or []
            if any(r.get("Code") in {"ThrottlingError", "ProvisionedThroughputExceeded"}
                   for r in reasons):  # fmt: skip
                return "store_throttled"
        cause = getattr(current, "cause", None)
        current = cause if isinstance(cause, BaseException) else current.__cause__
    return None
