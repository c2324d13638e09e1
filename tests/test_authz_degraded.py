"""The authorization when the store cannot answer in time (functions/store/budget.py and
functions/authz/service.authorize_in_time), against real moto tables with faults injected
at the botocore level: a `before-send` handler on the authorization's own clients (the
budget's sessions) raises what urllib3 would (ReadTimeoutError, ConnectTimeoutError,
EndpointConnectionError) or makes each send slow on the budget's clock, before moto answers.

Open tenant: allowed for its short cap, nothing held (the ledger table is read back); closed
tenant: denied `unavailable`; the sends are counted (2 attempts per call, then the deadline);
once the fault clears the next START holds as always.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
from moto.core.botocore_stubber import MockRawResponse

from functions import store
from functions.authz import service
from functions.store import accounts, budget, holds, ledger
from tests.conftest import FAKE_ENVIRONMENT, moto_account
from tests.test_authz import NOW, stand_in_quote

OPEN, SHUT = "openco", "shutco"
_DYNAMODB = "com.amazonaws.dynamodb.v20120810"
_THROTTLED = "ProvisionedThroughputExceededException"
LIMITS = budget.Limits()  # connect 0.3 + read 0.5, 2 attempts, deadline 1.5 s


@dataclass
class Fault:
    """What the next sends inside a budget meet: `error` (a class) raised, or `slow` seconds
    on the budget's clock; `sends` counts every send a budget let start."""

    error: type[Exception] | None = None
    slow: float = 0.0
    sends: list[str] = field(default_factory=list)
    now: float = 1000.0  # the budget's clock

    throttled: bool = False  # DynamoDB's 400 ProvisionedThroughputExceededException answer

    def before_send(self, request, **_) -> AWSResponse | None:
        if budget.active() is None:
            return None  # only the authorization's calls meet the fault
        self.sends.append(request.url)
        self.now += self.slow
        if self.error is not None:
            raise self.error(endpoint_url=request.url)
        if self.throttled:  # answered before moto's handler can: the request is not served
            body = json.dumps({"__type": f"{_DYNAMODB}#{_THROTTLED}", "message": "slow down"})
            headers = {"Content-Type": "application/x-amz-json-1.0"}
            return AWSResponse(request.url, 400, headers, MockRawResponse(body))
        return None

    def clear(self) -> None:
        self.error, self.slow, self.throttled = None, 0.0, False
        self.sends.clear()


@pytest.fixture
def fault(monkeypatch) -> Iterator[Fault]:
    """Every botocore session the store makes from now on carries the fault's handler (after
    the budget's own): the clients and models are made again (store.reset)."""
    injected = Fault()
    plain = budget.register

    def register(session) -> None:
        plain(session)
        events = session.get_component("event_emitter")
        events.register_first("before-send", injected.before_send, unique_id="test-fault")

    monkeypatch.setattr(budget, "register", register)
    monkeypatch.setattr(budget, "clock", lambda: injected.now)
    monkeypatch.setattr(service, "_fallbacks", {})
    store.reset()
    yield injected
    monkeypatch.undo()
    store.reset()


@pytest.fixture(scope="module")
def world():
    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAKE_ENVIRONMENT.items():
            patch.setenv(name, value)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        patch.delenv("TOLLGATE_AUTHZ_FALLBACK", raising=False)
        patch.setattr(service, "quote", stand_in_quote)
        patch.setattr(service, "deck_index", lambda *args: "deck")
        with moto_account():
            for tenant, mode in ((OPEN, "open"), (SHUT, "closed")):
                accounts.create_tenant(tenant, currency="EUR")
                accounts.update_tenant(
                    tenant, {"authz_fallback": mode, "authz_fallback_seconds": 120}
                )
                accounts.create_account(tenant, "C1", kind="customer", prepaid=True)
                ledger.record_payment(
                    tenant, "C1", 20_000_000, reference="p", account_kind="customer"
                )
            yield


def start(tenant: str, call_id: str, event: str = "start", answered: int = 0) -> dict:
    request = service.Request(
        tenant, event, call_id, account="C1", callee="4420", answered_seconds=answered
    )
    return service.authorize_in_time(request, limits=LIMITS, now=NOW)


def held(tenant: str) -> tuple[int, list[str]]:
    """What the ledger table holds for C1: the reserved total and the held calls."""
    return ledger.get_balance(tenant, "C1")[1], sorted(
        h.call_id for h in holds.list_holds(tenant, "C1")
    )


def emf(capsys) -> list[dict]:
    records = []
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("{") and "_aws" in line:
            records.append(json.loads(line))
    return records


def test_open_tenant_allows_for_its_cap_and_holds_nothing(world, fault, capsys):
    assert start(OPEN, "warm-1")["allow"] is True  # the container reads the setting
    before = held(OPEN)
    fault.clear()
    fault.error = ReadTimeoutError
    answer = start(OPEN, "o1")
    assert answer == {
        "allow": True,
        "reason": "fallback_open",
        "max_duration_seconds": 120,
        "hold_amount": "0.000000",
        "routes": [],
        "degraded": "store_timeout",
    }
    # the account read, tried twice, and nothing else: the retries are bounded
    assert len(fault.sends) == 2
    fault.clear()
    assert held(OPEN) == before  # no hold for o1, the reserved total unchanged
    assert holds.get_hold(OPEN, "C1", "o1") is None
    (record,) = [r for r in emf(capsys) if "AuthzFallbacks" in r]
    assert record["AuthzFallbacks"] == [1.0]
    (directive,) = record["_aws"]["CloudWatchMetrics"]
    assert directive["Dimensions"] == [["tenant", "outcome", "service"], ["service"]]
    assert (record["tenant"], record["outcome"], record["service"]) == (OPEN, "open", "authz")
    assert (record["reason"], record["call_id"], record["fallback_source"]) == (
        "store_timeout",
        "o1",
        "tenant",
    )
    # the fault cleared: the next START holds as always (99 minutes, to the micro-unit)
    answer = start(OPEN, "o2")
    assert answer == {
        "allow": True,
        "reason": "ok",
        "max_duration_seconds": 10_800,  # the 3 h cap: 180 minutes at 0.010000
        "hold_amount": "1.805000",
        "routes": [],
    }
    assert holds.get_hold(OPEN, "C1", "o2").amount_micro == 1_805_000
    assert held(OPEN) == (before[0] + 1_805_000, sorted([*before[1], "o2"]))


def test_closed_tenant_denies_unavailable(world, fault, capsys):
    start(SHUT, "warm-2")
    before = held(SHUT)
    fault.clear()
    fault.error = ConnectTimeoutError
    answer = start(SHUT, "s1")
    assert answer == {
        "allow": False,
        "reason": "unavailable",
        "max_duration_seconds": 0,
        "hold_amount": "0.000000",
        "routes": [],
        "degraded": "store_timeout",
    }
    assert len(fault.sends) == 2
    fault.error = EndpointConnectionError
    assert start(SHUT, "s2")["degraded"] == "store_unreachable"
    fault.clear()
    assert held(SHUT) == before
    (first, second) = [r for r in emf(capsys) if "AuthzFallbacks" in r]
    assert (first["outcome"], first["reason"], second["reason"]) == (
        "closed",
        "store_timeout",
        "store_unreachable",
    )


def test_throttling_after_the_retries_falls_back(world, fault):
    start(OPEN, "warm-5")
    before = held(OPEN)
    fault.clear()
    fault.throttled = True
    answer = start(OPEN, "t1")
    assert (answer["reason"], answer["degraded"]) == ("fallback_open", "store_throttled")
    assert len(fault.sends) == 2
    fault.clear()
    assert held(OPEN) == before


def test_a_cold_container_uses_the_environment_default(world, fault, monkeypatch):
    fault.error = ReadTimeoutError
    # the open tenant's setting was never read here: closed, the default
    answer = start(OPEN, "cold-1")
    assert (answer["allow"], answer["reason"], answer["degraded"]) == (
        False,
        "unavailable",
        "store_timeout",
    )
    assert len(fault.sends) == 2  # the tenant read, twice; nothing after it
    monkeypatch.setenv("TOLLGATE_AUTHZ_FALLBACK", "open")
    monkeypatch.setenv("TOLLGATE_AUTHZ_FALLBACK_SECONDS", "90")
    answer = start(SHUT, "cold-2")
    assert (answer["allow"], answer["max_duration_seconds"]) == (True, 90)
    fault.clear()
    assert holds.get_hold(SHUT, "C1", "cold-2") is None


def test_a_slow_store_meets_the_deadline(world, fault):
    """Each send succeeds but takes 0.6 s: an attempt may start only while connect + read
    (0.8 s) fit before the 1.5 s deadline, so the third call never leaves."""
    start(OPEN, "warm-3")
    before = held(OPEN)
    fault.clear()
    fault.slow = 0.6
    answer = start(OPEN, "slow-1")
    assert (answer["reason"], answer["degraded"]) == ("fallback_open", "store_timeout")
    assert len(fault.sends) == 2  # the account, the money; the hold's write never started
    fault.clear()
    assert held(OPEN) == before


def test_the_setting_is_read_again_after_its_ttl(world, fault, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(service, "fallback_clock", lambda: clock[0])
    start(SHUT, "ttl-1")
    assert service.known_fallback(SHUT) == service.Fallback("closed", 120, "tenant")
    accounts.update_tenant(SHUT, {"authz_fallback": "open"})
    clock[0] = service.FALLBACK_TTL_SECONDS - 1
    start(SHUT, "ttl-2")
    assert service.known_fallback(SHUT).mode == "closed"  # not yet read again
    clock[0] = service.FALLBACK_TTL_SECONDS + 1
    start(SHUT, "ttl-3")
    assert service.known_fallback(SHUT).mode == "open"
    # the store failing at the refresh keeps what was read
    clock[0] = 10 * service.FALLBACK_TTL_SECONDS
    fault.error = ReadTimeoutError
    assert start(SHUT, "ttl-4")["reason"] == "fallback_open"
    fault.clear()
    accounts.update_tenant(SHUT, {"authz_fallback": "closed"})


def test_interim_follows_the_setting_and_a_stop_is_unavailable(world, fault):
    first = start(OPEN, "live-1")
    hold = holds.get_hold(OPEN, "C1", "live-1")
    fault.error = ReadTimeoutError
    answer = start(OPEN, "live-1", "interim", answered=60)
    assert (answer["allow"], answer["max_duration_seconds"], answer["degraded"]) == (
        True,
        120,
        "store_timeout",
    )
    with pytest.raises(service.StoreUnavailable) as refused:
        start(OPEN, "live-1", "stop", answered=90)
    assert refused.value.reason == "store_timeout"
    fault.clear()
    # the hold is as the START left it: nothing was extended, nothing released
    assert holds.get_hold(OPEN, "C1", "live-1") == hold
    assert Decimal(first["hold_amount"]) * 1_000_000 == hold.amount_micro == 1_805_000
    assert start(OPEN, "live-1", "stop")["reason"] == "stopped"
    assert holds.get_hold(OPEN, "C1", "live-1") is None


def test_other_errors_are_not_hidden(world, fault):
    """Only a store that cannot answer in time falls back: a bug stays a bug (5xx)."""

    class Broken(Exception):
        def __init__(self, endpoint_url):
            super().__init__(endpoint_url)

    start(SHUT, "warm-4")
    fault.clear()
    fault.error = Broken
    with pytest.raises(Broken):
        start(SHUT, "b1")
    assert len(fault.sends) == 1  # not retried either


def test_the_other_lambdas_keep_their_clients(world):
    plain = store.client("dynamodb")
    with budget.within(LIMITS):
        tight = store.client("dynamodb")
    assert plain is not tight
    # max_attempts 5 is botocore's count of retries: 6 attempts in all
    assert (plain.meta.config.read_timeout, plain.meta.config.retries["total_max_attempts"]) == (
        60,
        6,
    )
    config = tight.meta.config
    assert (config.connect_timeout, config.read_timeout) == (0.3, 0.5)
    assert config.retries["total_max_attempts"] == 2
    assert store.client("dynamodb") is plain
    assert budget.authz_limits({"TOLLGATE_AUTHZ_READ_TIMEOUT": "0.8"}).read_timeout == 0.8
    with pytest.raises(ValueError, match="TOLLGATE_AUTHZ_DEADLINE"):
        budget.authz_limits({"TOLLGATE_AUTHZ_DEADLINE": "0"})


def test_threads_of_a_budgeted_request_keep_its_budget(world, fault):
    """The route quality reads more than 100 keys in worker threads: each thread runs in a copy
    of the request's context, so its sends are the budget's (counted by the fault)."""
    from functions.store import quality

    keys = [{"pk": {"S": f"{OPEN}#Q"}, "sk": {"S": f"K{n:03d}"}} for n in range(150)]
    assert quality._batch_get(keys) == []
    assert fault.sends == []  # outside a budget: the plain clients, not counted
    with budget.within(LIMITS):
        assert quality._batch_get(keys) == []
    assert len(fault.sends) == 2  # two pages of 100 and 50, both within the budget
