"""Shared fixtures: a moto-backed AWS account holding every Tollgate store, in-process or as
the embedded local stack."""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.responses import DynamoHandler

from functions import store
from functions.local.stack import LocalStack
from functions.shared.settings import settings
from functions.store import ledger

FAKE_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "1",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}
# The authorization's time budget (functions/store/budget.py) is real time: 1.5 s a request.
# On a loaded 2-core machine a START against moto can take longer and would get the tenant's
# fallback instead of its answer. tests/test_authz_degraded.py tests the budget itself with
# explicit limits on its own clock; everywhere else the budget must not be what is tested.
for _name, _value in (("TOLLGATE_AUTHZ_DEADLINE", "30"), ("TOLLGATE_AUTHZ_READ_TIMEOUT", "10")):
    os.environ.setdefault(_name, _value)
# The ledger's booking time in tests: 23:30 UTC on 1 May is 05:00 on 2 May in Kolkata.
BOOKED_AT = dt.datetime(2024, 5, 1, 23, 30, tzinfo=dt.UTC)


def provision_all() -> None:
    """Tables and buckets (store.provision), plus the rate queue and the event bus."""
    store.provision()
    names = settings()
    sqs = store.client("sqs")
    for queue in (names.ingest_queue, names.rate_queue):
        sqs.create_queue(QueueName=queue)
    store.client("events").create_event_bus(Name=names.event_bus)


def fresh_clients() -> None:
    store.reset()


@contextmanager
def moto_account() -> Iterator[None]:
    """A fresh, empty in-process moto account with every store provisioned."""
    fresh_clients()
    with mock_aws():
        provision_all()
        yield
    fresh_clients()


@contextmanager
def operator_account() -> Iterator[None]:
    """`moto_account` as the operator's CLI sees it, for a module-scoped world: the fake
    credentials set, no local stack endpoint and no named operator in the environment."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAKE_ENVIRONMENT.items():
            patch.setenv(name, value)
        for name in ("AWS_ENDPOINT_URL", "TOLLGATE_OPERATOR"):
            patch.delenv(name, raising=False)
        with moto_account():
            yield


@contextmanager
def local_stack(**options: Any) -> Iterator[LocalStack]:
    """The embedded local stack on a free port: moto server, the template's resources and
    app.py's handlers polling their queues, with the store's clients pointed at it.

    A failed message comes back after 1 s (the queues' own timeout is 1800 s), and short
    polls let the pollers stop at once.
    """
    options = {"visibility_timeout": 1, "poll_wait_seconds": 0} | options
    with LocalStack(0, **options) as running:
        fresh_clients()
        yield running
    fresh_clients()


@pytest.fixture
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and region; never a real endpoint."""
    for name, value in FAKE_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture
def aws(aws_environment: None) -> Iterator[None]:
    """An empty, in-process moto account with every store provisioned."""
    with moto_account():
        yield


@pytest.fixture
def ledger_clock(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The ledger's booking clock, at BOOKED_AT until the test moves it (`.now`)."""

    class Clock:
        now = BOOKED_AT

    monkeypatch.setattr(ledger, "_now", lambda: Clock.now)
    return Clock


@pytest.fixture
def atomic_items(monkeypatch: pytest.MonkeyPatch) -> None:
    """Serialise moto's item writes, as DynamoDB serialises writes to one item.

    moto evaluates a condition and applies the write in separate Python steps without a
    lock, so threads could interleave where DynamoDB cannot; this restores that guarantee.
    Its request handler is locked too: UpdateItem deep-copies the stored item (for the old
    values) before it calls the backend, and a copy taken while another thread's write
    changes the item failed with "dictionary changed size during iteration".
    """
    lock = threading.RLock()
    for owner in (DynamoDBBackend, DynamoHandler):
        for name in ("put_item", "update_item", "transact_write_items", "get_item"):
            original = getattr(owner, name)

            def locked(self, *args, __original=original, **kwargs):
                with lock:
                    return __original(self, *args, **kwargs)

            monkeypatch.setattr(owner, name, locked)
