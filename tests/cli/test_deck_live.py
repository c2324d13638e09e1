"""Issue 14 §4: "a deck uploaded or a rate changed is used by the next authorization within one
minute, without a restart" -- and after a rollback.

One warm container: functions.authz.service's module state (its DeckCache) and the cached
`route_service()` stay alive across the uploads, as in a Lambda that is not restarted.

* The customer's price (max_duration, hold): a START reads the account item (its active deck
  version) on every call, and the compiled decks are keyed by version, so the next START after
  an upload or a rollback prices on the new version at once (no extra DynamoDB call).
* The routes (supplier costs): the route service keeps each tenant's suppliers and their deck
  versions for 60 s (DEFAULT_TTL_SECONDS), so a supplier's new rate reaches the routes of the
  next START at the first refresh, at most 60 s later -- the route service's clock is injected
  here, never slept on; `tollgate routes` (a process of its own) shows it at once.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from functions.authz import service
from functions.cli import main
from functions.rate.route_service import DEFAULT_TTL_SECONDS
from functions.store import accounts, ledger
from functions.store.routes import route_service
from tests.cli.conftest import json_document, run_command

LONDON = "442071234567"


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
    """A tenant: `cust` (0.100000 prepaid) and `rich` (100.000000) buying UK at 0.010, and
    the supplier `mtn` selling it at 0.006, with a target to route to."""
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
        for account, rate in (("cust", "0.010"), ("rich", "0.010"), ("mtn", "0.006")):
            path = folder / f"{account}-first.csv"
            path.write_text(f"prefix,destination,rate\n44,UK,{rate}\n")
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


def _start(tenant: str, account: str = "cust") -> dict:
    """A START of a new call to London now, then its STOP unanswered (the hold given back)."""
    call = f"call{next(_calls)}"
    now = dt.datetime.now(dt.UTC)
    answer = service.authorize(
        service.Request(tenant, "start", call, account=account, callee=LONDON), now=now
    )
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


def test_a_supplier_rate_reaches_the_routes_at_the_refresh_within_a_minute(world, clock, capsys):
    tenant, folder = world
    clock.now += DEFAULT_TTL_SECONDS  # a fresh book for this test
    assert _route_costs(_start(tenant)) == [("mtn", "0.00600000")]
    loaded = clock.now
    _upload(capsys, folder, tenant, "mtn", "prefix,destination,rate\n44,UK,0.008\n")

    # `tollgate routes` reads the stores afresh: the new cost at once.
    shown = json_document(capsys, "routes", tenant, LONDON)
    assert [(r["supplier"], r["cost_per_minute"]) for r in shown["routes"]] == [
        ("mtn", "0.00800000")
    ]

    # The warm container: the old cost until the book is 60 s old, not a second longer.
    clock.now = loaded + DEFAULT_TTL_SECONDS - 1
    assert _route_costs(_start(tenant)) == [("mtn", "0.00600000")]
    clock.now = loaded + DEFAULT_TTL_SECONDS
    assert _route_costs(_start(tenant)) == [("mtn", "0.00800000")]

    # A rollback of the supplier's deck alike: old until the refresh, then the restored rate.
    loaded = clock.now
    versions = json_document(capsys, "deck", "list", tenant, "mtn")["versions"]
    assert [v["source"] for v in versions[:1]] == ["mtn-first.csv"]
    _run(capsys, "deck", "rollback", tenant, "mtn", str(versions[0]["version"]))
    clock.now = loaded + 30
    assert _route_costs(_start(tenant)) == [("mtn", "0.00800000")]
    clock.now = loaded + DEFAULT_TTL_SECONDS
    assert _route_costs(_start(tenant)) == [("mtn", "0.00600000")]
