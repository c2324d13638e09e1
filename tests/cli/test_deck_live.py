"""Issue 14 §4: "a deck uploaded or a rate changed is used by the next authorization within one
minute, without a restart" -- and after a rollback.

One warm container: functions.authz.service's module state (its DeckCache) and the cached
`route_service()` stay alive across the uploads, as in a Lambda that is not restarted.

* The customer's price (max_duration, hold): a START reads the account item (its active deck
  version) on every call, and the compiled decks are keyed by version, so the next START after
  an upload or a rollback prices on the new version at once (no extra DynamoDB call).
* The routes (supplier costs): the route service keeps each tenant's suppliers, their deck
  versions, targets, blocks and the routing policy warm, tagged with the tenant's routing
  version (`routes_version` on the AUTHZ#settings item the START's BatchGetItem reads
  anyway). Every write those depend on (a supplier's deck upload or rollback, `tollgate routes
  target|block|unblock|policy`, a supplier's status) bumps it in its own transaction, so the
  next START rebuilds the book at once -- with the route service's clock frozen here, so no
  60 s refresh helps -- and a warm START still makes exactly 3 DynamoDB calls. The 60 s
  refresh remains the backstop for a write that does not bump the version.
"""

from __future__ import annotations

import datetime as dt
import json
from contextlib import contextmanager
from pathlib import Path

import botocore.client
import pytest

from functions.authz import service
from functions.cli import main
from functions.rate.route_service import DEFAULT_TTL_SECONDS
from functions.shared.settings import settings
from functions.store import accounts, client, holds, ledger
from functions.store.routes import route_service
from tests.cli.conftest import json_document, run_command

LONDON = "442071234567"
LAGOS = "2348031234567"
WARM_START = ["GetItem", "BatchGetItem", "TransactWriteItems"]
REBUILD = ["GetItem", "Query"]  # the routing policy, the tenant's suppliers


class Clock:
    """The route service's monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _run(capsys, *argv: str) -> None:
    status, _, err = run_command(capsys, *argv)
    assert status == 0, err


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def world(tenant_numbers, tmp_path_factory, clock) -> tuple[str, Path]:
    """A tenant: `cust` (0.100000 prepaid) and `rich` (100.000000) buying UK at 0.010 and
    Nigeria at 0.020, and the supplier `mtn` selling them at 0.006 and 0.012, with a target
    to route to."""
    name = f"acme{next(tenant_numbers)}"
    folder = tmp_path_factory.mktemp("live")
    route_service.cache_clear()  # this module's warm container, on this module's moto
    route_service().clock = clock
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(service, "DECKS", type(service.DECKS)())
        run = [
            ("tenant", "create", name),
            ("account", "create", name, "cust", "--kind", "customer", "--prepaid"),
            ("account", "create", name, "rich", "--kind", "customer", "--prepaid"),
            ("account", "create", name, "mtn", "--kind", "supplier"),
        ]
        for argv in run:
            assert main(list(argv)) == 0
        ledger.record_payment(name, "cust", 100_000, reference="p1", account_kind="customer")
        ledger.record_payment(name, "rich", 100_000_000, reference="p2", account_kind="customer")
        for account, rate, nigeria in (
            ("cust", "0.010", "0.020"),
            ("rich", "0.010", "0.020"),
            ("mtn", "0.006", "0.012"),
        ):
            path = folder / f"{account}-first.csv"
            path.write_text(f"prefix,destination,rate\n44,UK,{rate}\n234,Nigeria,{nigeria}\n")
            assert main(["deck", "upload", name, account, str(path)]) == 0
        assert main(["routes", "target", name, "mtn", "--host", "10.0.0.1"]) == 0
        yield name, folder
    route_service.cache_clear()


def _upload(capsys, folder: Path, tenant: str, account: str, text: str) -> int:
    path = folder / f"{account}-{len(list(folder.iterdir()))}.csv"
    path.write_text(text)
    status, out, err = run_command(capsys, "deck", "upload", tenant, account, str(path), "--json")
    assert status == 0, err
    return json.loads(out)["version"]


_calls = iter(range(10**6))


@contextmanager
def _dynamodb_calls():
    """The DynamoDB operations made inside the block, in order."""
    original = botocore.client.BaseClient._make_api_call
    calls: list[str] = []

    def counting(client, operation, params):
        if client.meta.service_model.service_name == "dynamodb":
            calls.append(operation)
        return original(client, operation, params)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
        yield calls


def _start(
    tenant: str, account: str = "cust", callee: str = LONDON, calls: list | None = None
) -> dict:
    """A START of a new call now, then its STOP unanswered (the hold given back); `calls`:
    the START's DynamoDB operations (not the STOP's)."""
    call = f"call{next(_calls)}"
    now = dt.datetime.now(dt.UTC)
    with _dynamodb_calls() as made:
        answer = service.authorize(
            service.Request(tenant, "start", call, account=account, callee=callee), now=now
        )
    if calls is not None:
        calls[:] = made
    service.authorize(service.Request(tenant, "stop", call, account=account), now=now)
    return answer


def _priced(answer: dict) -> tuple[bool, int, str]:
    return answer["allow"], answer["max_duration_seconds"], answer["hold_amount"]


def _route_costs(answer: dict) -> list[tuple[str, str]]:
    return [(r["supplier"], r["cost_per_minute"]) for r in answer["routes"]]


def test_an_upload_and_a_rollback_reach_the_next_start(world, clock, capsys):
    tenant, folder = world
    first = accounts.get_account(tenant, "cust").deck_version
    rich = accounts.get_account(tenant, "rich").deck_version
    clock.now += DEFAULT_TTL_SECONDS  # a fresh book for this test
    # 0.100000 at 0.010/min: 600 s, all of it held
    answer = _start(tenant)
    assert _priced(answer) == (True, 600, "0.100000")
    assert _route_costs(answer) == [("mtn", "0.00600000")]
    # 100.000000: the call's cap (3 h) at 0.010/min held
    assert _priced(_start(tenant, "rich")) == (True, 10_800, "1.800000")

    # The customers' rate doubles: the very next START (same warm container) gets 300 s, and
    # the capped call holds twice as much.
    second = _upload(capsys, folder, tenant, "cust", "prefix,destination,rate\n44,UK,0.020\n")
    _upload(capsys, folder, tenant, "rich", "prefix,destination,rate\n44,UK,0.020\n")
    assert accounts.get_account(tenant, "cust").deck_version == second
    assert _priced(_start(tenant)) == (True, 300, "0.100000")
    assert _priced(_start(tenant, "rich")) == (True, 10_800, "3.600000")

    # Rolled back to the first versions: the next START again gets 600 s, holds 1.800000.
    _run(capsys, "deck", "rollback", tenant, "cust", str(first))
    _run(capsys, "deck", "rollback", tenant, "rich", str(rich))
    assert _priced(_start(tenant)) == (True, 600, "0.100000")
    assert _priced(_start(tenant, "rich")) == (True, 10_800, "1.800000")


def _lagos(tenant: str, calls: list | None = None) -> list[tuple[str, str]]:
    return _route_costs(_start(tenant, callee=LAGOS, calls=calls))


def _warm_lagos(tenant: str) -> list[tuple[str, str]]:
    """The routes of a START to Lagos that must find the book warm: exactly 3 DynamoDB calls."""
    calls: list[str] = []
    costs = _lagos(tenant, calls)
    assert calls == WARM_START
    return costs


def test_a_supplier_upload_and_rollback_reach_the_next_start(world, clock, capsys):
    """Issue 14 §4's example: the supplier's Nigeria rate goes from 0.012 to 0.015. The
    route service's clock does not move: only the routing version tells the warm container."""
    tenant, folder = world
    clock.now += DEFAULT_TTL_SECONDS  # a fresh book for this test, then the clock stays
    assert _lagos(tenant) == [("mtn", "0.01200000")]
    assert _warm_lagos(tenant) == [("mtn", "0.01200000")]
    first = accounts.get_account(tenant, "mtn").deck_version

    _upload(
        capsys, folder, tenant, "mtn", "prefix,destination,rate\n44,UK,0.006\n234,Nigeria,0.015\n"
    )
    # `tollgate routes` (a process of its own) reads the stores afresh
    shown = json_document(capsys, "routes", tenant, LAGOS)
    assert [(r["supplier"], r["cost_per_minute"]) for r in shown["routes"]] == [
        ("mtn", "0.01500000")
    ]
    calls: list[str] = []
    assert _lagos(tenant, calls) == [("mtn", "0.01500000")]  # the very next START
    # its 3 calls read the new version with the money; then the book is rebuilt
    assert calls == WARM_START + REBUILD
    assert _warm_lagos(tenant) == [("mtn", "0.01500000")]  # and the next is warm again

    _run(capsys, "deck", "rollback", tenant, "mtn", str(first))
    assert _lagos(tenant) == [("mtn", "0.01200000")]
    assert _warm_lagos(tenant) == [("mtn", "0.01200000")]


def _lagos_routes(tenant: str) -> list[tuple[str, str, str, bool]]:
    answer = _start(tenant, callee=LAGOS)
    assert answer["allow"] is True
    return [
        (r["supplier"], r["host"], r["cost_per_minute"], r["flagged"]) for r in answer["routes"]
    ]


def test_routing_changes_reach_the_next_start(world, clock, capsys):
    """A block, a target, the policy and the supplier's status: each at the next START."""
    tenant, _ = world
    clock.now += DEFAULT_TTL_SECONDS
    mtn = [("mtn", "10.0.0.1", "0.01200000", False)]
    assert _lagos_routes(tenant) == mtn
    assert _warm_lagos(tenant) == [("mtn", "0.01200000")]

    _run(capsys, "routes", "block", tenant, "mtn", "234")
    assert _lagos_routes(tenant) == []
    assert _warm_lagos(tenant) == []
    _run(capsys, "routes", "unblock", tenant, "mtn", "234")
    assert _lagos_routes(tenant) == mtn

    _run(capsys, "routes", "target", tenant, "mtn", "--host", "10.0.0.2")
    assert _lagos_routes(tenant) == [("mtn", "10.0.0.2", "0.01200000", False)]
    _run(capsys, "routes", "target", tenant, "mtn", "--host", "10.0.0.1")
    assert _lagos_routes(tenant) == mtn

    # a margin of 0.010/min wanted, 0.020 - 0.012 = 0.008 made: the only route is flagged
    _run(capsys, "routes", "policy", tenant, "--set", "min_margin=0.010")
    assert _lagos_routes(tenant) == [("mtn", "10.0.0.1", "0.01200000", True)]
    _run(capsys, "routes", "policy", tenant, "--set", "min_margin=0")
    assert _lagos_routes(tenant) == mtn

    accounts.set_account_status(tenant, "mtn", "suspended", reason="test")
    assert _lagos_routes(tenant) == []
    accounts.set_account_status(tenant, "mtn", "active")
    assert _lagos_routes(tenant) == mtn
    assert _warm_lagos(tenant) == [("mtn", "0.01200000")]


def test_a_write_that_bumps_nothing_still_reaches_the_routes_within_a_minute(world, clock):
    """The 60 s refresh stays, as the backstop for a write that does not bump the version
    (code from before it): here a block written straight onto the supplier's item."""
    tenant, _ = world
    clock.now += DEFAULT_TTL_SECONDS
    assert _lagos(tenant) == [("mtn", "0.01200000")]
    loaded = clock.now
    key = {"pk": {"S": tenant}, "sk": {"S": "ACCOUNT#mtn"}}
    client("dynamodb").update_item(
        TableName=settings().accounts_table,
        Key=key,
        UpdateExpression="SET route_blocks = :b",
        ExpressionAttributeValues={":b": {"S": '["234"]'}},
    )
    clock.now = loaded + DEFAULT_TTL_SECONDS - 1
    assert _warm_lagos(tenant) == [("mtn", "0.01200000")]
    clock.now = loaded + DEFAULT_TTL_SECONDS
    assert _lagos(tenant) == []
    client("dynamodb").update_item(
        TableName=settings().accounts_table, Key=key, UpdateExpression="REMOVE route_blocks"
    )
    clock.now += DEFAULT_TTL_SECONDS
    assert _lagos(tenant) == [("mtn", "0.01200000")]


def test_only_the_writes_routing_reads_bump_the_version(world, clock, capsys):
    """Only writes the route list depends on bump the version (no needless rebuild): a
    customer suspended and resumed, the tenant's cap set (an update: the version stays)."""
    tenant, _ = world
    before = holds.get_routes_version(tenant)
    assert before > 0  # the fixture's supplier deck and target bumped it
    accounts.set_account_status(tenant, "rich", "suspended", reason="test")
    accounts.set_account_status(tenant, "rich", "active")
    holds.set_max_duration(tenant, holds.DEFAULT_MAX_DURATION)
    assert holds.get_max_duration(tenant) == holds.DEFAULT_MAX_DURATION
    assert holds.get_routes_version(tenant) == before
    _run(capsys, "routes", "block", tenant, "mtn", "99")
    assert holds.get_routes_version(tenant) == before + 1
    _run(capsys, "routes", "unblock", tenant, "mtn", "99")
    assert holds.get_routes_version(tenant) == before + 2
