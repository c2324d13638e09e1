"""Real-time authorization: holds on the ledger table (functions/store/holds.py) and the
START/INTERIM/STOP service (functions/authz/service.py), against one moto account.

The pricing oracle (functions/rate/allowance.quote) is another branch's; until it is merged
these tests price with `stand_in_quote` below, of the same interface: connect fee 0.005000,
0.010000 per minute billed 60/60, numbers starting 44; 4499 closed; non-digits bad.
"""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from functions.authz import service
from functions.rate import authorization as rules
from functions.store import accounts, holds, ledger
from tests.conftest import FAKE_ENVIRONMENT, moto_account

CONNECT = 5_000  # micro-units
PER_MINUTE = 10_000
NOW = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)
T = "acme"


@dataclass(frozen=True)
class Quote:
    allow: bool
    reason: str
    max_duration_seconds: int
    hold_micro: int
    first_increment_micro: int
    rate: object = None
    destination: str | None = None
    prefix: str | None = None


def stand_in_quote(index, callee, at, available_micro, *, cap_seconds=10_800, **terms):
    """quote()'s interface: the longest whole-minute time whose price fits, capped."""
    if not callee.isdigit():
        return Quote(False, "bad_number", 0, 0, 0)
    if callee.startswith("4499"):
        return Quote(False, "closed", 0, 0, 0)
    if not callee.startswith("44"):
        return Quote(False, "no_rate", 0, 0, 0)
    first = CONNECT + PER_MINUTE
    if available_micro < first:
        return Quote(False, "insufficient_funds", 0, 0, first)
    minutes = min((available_micro - CONNECT) // PER_MINUTE, -(-cap_seconds // 60))
    seconds = min(minutes * 60, cap_seconds)
    price = CONNECT + -(-seconds // 60) * PER_MINUTE
    return Quote(True, "ok", seconds, price, first, "0.01", "UK", "44")


@pytest.fixture(scope="module")
def world():
    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAKE_ENVIRONMENT.items():
            patch.setenv(name, value)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        patch.setattr(service, "quote", stand_in_quote)
        patch.setattr(service, "deck_index", lambda *args: "deck")
        with moto_account():
            accounts.create_tenant(T, currency="EUR")
            yield


_made = iter(range(10**6))


def customer(paid: int, *, prepaid: bool = True, credit: int = 0) -> str:
    name = f"C{next(_made)}"
    accounts.create_account(T, name, kind="customer", prepaid=prepaid, credit_limit_micro=credit)
    if paid:
        ledger.record_payment(T, name, paid, reference=f"pay-{name}", account_kind="customer")
    return name


def ask(account, event="start", call_id="c1", callee="4420", answered=0, now=NOW, **kw):
    request = service.Request(
        T, event, call_id, account=account, callee=callee, answered_seconds=answered, **kw
    )
    return service.authorize(request, now=now)


def reserved(account: str) -> int:
    return ledger.get_balance(T, account)[1]


def test_start_holds_the_quote_and_a_retry_gets_the_same_hold(world):
    a = customer(1_000_000)  # 1.000000: 99 minutes after the connect fee
    answer = ask(a)
    assert answer == {
        "allow": True,
        "reason": "ok",
        "max_duration_seconds": 5940,
        "hold_amount": "0.995000",
        "routes": [],
    }
    assert reserved(a) == 995_000
    assert ask(a) == answer  # the switch retried: nothing more is held
    assert reserved(a) == 995_000
    (hold,) = holds.list_holds(T, a)
    assert (hold.call_id, hold.amount_micro, hold.max_duration_seconds) == ("c1", 995_000, 5940)
    assert hold.expires_at == int(NOW.timestamp()) + 5940 + service.HOLD_GRACE_SECONDS
    # a second call gets what the first leaves: 5,000 micro-units, less than a minute
    assert ask(a, call_id="c2")["reason"] == "insufficient_funds"
    assert reserved(a) == 995_000


def test_postpaid_credit_limit_and_the_tenant_cap(world):
    a = customer(0, prepaid=False, credit=2_000_000)
    holds.set_max_duration(T, 600)
    try:
        answer = ask(a)
        assert (answer["max_duration_seconds"], answer["hold_amount"]) == (600, "0.105000")
        assert ask(a, call_id="c2")["hold_amount"] == "0.105000"
        assert reserved(a) == 210_000
    finally:
        holds.set_max_duration(T, holds.DEFAULT_MAX_DURATION)
    # a prepaid account's credit limit does not count
    b = customer(10_000, prepaid=True, credit=5_000_000)
    assert ask(b)["reason"] == "insufficient_funds"


def test_interim_extends_and_answers_the_time_left(world):
    a = customer(2_000_000)
    holds.set_max_duration(T, 600)
    try:
        assert ask(a)["hold_amount"] == "0.105000"  # 10 minutes
        answer = ask(a, "interim", answered=300, now=NOW + dt.timedelta(seconds=300))
        # the whole call may now last 600 s (the cap): 300 s left, the hold unchanged
        assert (answer["allow"], answer["max_duration_seconds"]) == (True, 300)
        assert answer["hold_amount"] == "0.105000"
        # past the cap the tenant lets the call go on: 900 answered, 0 left
        answer = ask(a, "interim", answered=600, now=NOW + dt.timedelta(seconds=600))
        assert (answer["allow"], answer["max_duration_seconds"]) == (False, 0)
    finally:
        holds.set_max_duration(T, holds.DEFAULT_MAX_DURATION)
    b = customer(1_000_000)
    ask(b)  # 99 minutes held: everything
    c_money = ledger.record_payment(T, b, 500_000, reference=f"top-{b}", account_kind="customer")
    assert c_money.recorded
    later = NOW + dt.timedelta(seconds=1200)
    answer = ask(b, "interim", answered=1200, now=later)
    # 1.500000 pays 149 minutes in all: 8940 - 1200 s left, all of it held
    assert (answer["max_duration_seconds"], answer["hold_amount"]) == (7740, "1.495000")
    assert reserved(b) == 1_495_000
    (hold,) = holds.list_holds(T, b)
    assert hold.expires_at == int(later.timestamp()) + 7740 + service.HOLD_GRACE_SECONDS


def test_a_credit_limit_changed_mid_call_is_seen_by_the_next_interim(world):
    """Postpaid, nothing paid: the credit limit is all the money. Raised mid-call, the next
    INTERIM grants and holds more; cut, it grants and holds less; cut below what the call
    has already used, it ends the call and holds only what was answered."""
    a = customer(0, prepaid=False, credit=1_000_000)
    answer = ask(a, call_id="cl1")
    assert (answer["max_duration_seconds"], answer["hold_amount"]) == (5940, "0.995000")
    accounts.update_account(T, a, {"credit_limit_micro": 1_500_000})
    at = NOW + dt.timedelta(seconds=1200)
    answer = ask(a, "interim", call_id="cl1", answered=1200, now=at)
    # 1.500000 pays 149 minutes in all (0.005000 + 149 x 0.010000): 8940 - 1200 s left
    assert (answer["allow"], answer["max_duration_seconds"]) == (True, 7740)
    assert answer["hold_amount"] == "1.495000"
    assert reserved(a) == 1_495_000
    accounts.update_account(T, a, {"credit_limit_micro": 500_000})
    at = NOW + dt.timedelta(seconds=1500)
    answer = ask(a, "interim", call_id="cl1", answered=1500, now=at)
    # 0.500000 pays 49 minutes (2940 s): 2940 - 1500 = 1440 s left, 0.495000 held
    assert (answer["allow"], answer["max_duration_seconds"]) == (True, 1440)
    assert answer["hold_amount"] == "0.495000"
    assert reserved(a) == 495_000
    (hold,) = holds.list_holds(T, a)
    assert (hold.amount_micro, hold.max_duration_seconds) == (495_000, 2940)
    assert hold.expires_at == int(at.timestamp()) + 1440 + service.HOLD_GRACE_SECONDS
    # cut to 0.200000 (19 minutes, 1140 s) after 1800 s answered: nothing more is granted,
    # and the hold stays as it was (it covers the 30 minutes used, 0.305000): the answer
    # says what is held, not the 0.195000 the new limit would pay
    accounts.update_account(T, a, {"credit_limit_micro": 200_000})
    answer = ask(a, "interim", call_id="cl1", answered=1800, now=NOW + dt.timedelta(seconds=1800))
    assert (answer["allow"], answer["reason"], answer["max_duration_seconds"]) == (
        False,
        "insufficient_funds",
        0,
    )
    assert (answer["hold_amount"], reserved(a)) == ("0.495000", 495_000)
    assert holds.list_holds(T, a) == [hold]
    # the STOP keeps the answered time's price: 0.005000 + 30 x 0.010000
    stop = ask(a, "stop", call_id="cl1", answered=1800, now=NOW + dt.timedelta(seconds=1800))
    assert (stop["hold_amount"], reserved(a)) == ("0.305000", 305_000)


def test_stop_releases_once(world):
    a = customer(1_000_000)
    ask(a)
    assert reserved(a) == 995_000
    stopped = ask(a, "stop")  # no answered time: the call never connected
    assert stopped == {
        "allow": False,
        "reason": "stopped",
        "max_duration_seconds": 0,
        "hold_amount": "0.000000",
        "routes": [],
    }
    assert (reserved(a), holds.list_holds(T, a)) == (0, [])
    assert ask(a, "stop")["reason"] == "stopped"  # again: nothing to give back
    assert reserved(a) == 0
    assert ask(a, call_id="c2")["hold_amount"] == "0.995000"  # the money is back


def test_stop_of_an_answered_call_keeps_its_price_held_until_the_cdr(world):
    """42 s answered cost 0.015000 (connect fee + one 60 s block): that much stays held until
    the call's rated CDR is charged (or a day passes), so a prepaid account cannot spend it
    twice meanwhile; the rest of the hold comes back at once."""
    a = customer(1_000_000)
    ask(a)
    stopped = ask(a, "stop", answered=42)
    assert (stopped["reason"], stopped["hold_amount"]) == ("stopped", "0.015000")
    [kept] = holds.list_holds(T, a)
    assert (kept.call_id, kept.amount_micro, reserved(a)) == ("c1", 15_000, 15_000)
    assert kept.expires_at == int(NOW.timestamp()) + service.SETTLE_SECONDS
    # the next call has what is left: 0.985000 (0.005000 fee + 98 whole minutes)
    assert ask(a, call_id="c2")["hold_amount"] == "0.985000"
    assert ask(a, "stop", answered=42)["hold_amount"] == "0.015000"  # a repeated STOP
    assert reserved(a) == 15_000 + 985_000 == 1_000_000  # never more than the balance
    holds.release_calls(T, {"c1"})  # what the rated CDR's file does
    assert reserved(a) == 985_000


def test_an_expired_hold_releases_itself(world):
    a = customer(1_000_000)
    holds.set_max_duration(T, 600)
    try:
        ask(a, call_id="lost")  # 0.105000 held, the STOP never comes
    finally:
        holds.set_max_duration(T, holds.DEFAULT_MAX_DURATION)
    assert reserved(a) == 105_000
    later = NOW + dt.timedelta(seconds=600 + service.HOLD_GRACE_SECONDS + 1)
    # the new call is limited by money: the expired hold is swept, its money counts again
    answer = ask(a, call_id="next", now=later)
    assert answer["hold_amount"] == "0.995000"
    assert [h.call_id for h in holds.list_holds(T, a)] == ["next"]
    assert reserved(a) == 995_000


def test_a_counter_ahead_of_ttl_deletions_is_repaired(world):
    """DynamoDB's TTL deleted a hold no sweep saw: the sweep sets reserved to the live sum."""
    a = customer(1_000_000)
    ask(a, call_id="gone")
    from functions.store import client

    client("dynamodb").delete_item(TableName=holds._table(), Key=holds._key(T, f"HOLD#{a}#gone"))
    assert reserved(a) == 995_000
    assert ask(a, call_id="new")["hold_amount"] == "0.995000"
    assert reserved(a) == 995_000


def test_refusals(world):
    a = customer(1_000_000)
    accounts.set_account_status(T, a, "suspended", actor=accounts.caller(by="test"),
                                reason="dunning: invoice overdue")  # fmt: skip
    assert ask(a)["reason"] == "suspended"
    assert ask("NOBODY")["reason"] == "unknown_account"
    b = customer(1_000_000)
    assert ask(b, callee="12125550100")["reason"] == "no_rate"
    assert ask(b, callee="449912")["reason"] == "closed"
    assert ask(b, callee="44x")["reason"] == "bad_number"
    assert reserved(a) == reserved(b) == 0
    accounts.create_account(T, "SUP", kind="supplier")
    assert ask("SUP")["reason"] == "not_a_customer"


def test_dry_run_writes_nothing(world):
    a = customer(1_000_000)
    request = service.Request(T, "start", "dry", account=a, callee="4420")
    answer = service.authorize(request, dry_run=True, now=NOW)
    assert (answer["allow"], answer["hold_amount"]) == (True, "0.995000")
    assert (reserved(a), holds.list_holds(T, a)) == (0, [])


def test_a_rated_file_releases_its_calls_holds(world):
    a, b = customer(1_000_000), customer(1_000_000)
    holds.set_max_duration(T, 600)  # each call holds 0.105000
    try:
        for account, call in ((a, "x1"), (a, "x2"), (b, "x3"), (b, "keep")):
            assert ask(account, call_id=call)["allow"]
    finally:
        holds.set_max_duration(T, holds.DEFAULT_MAX_DURATION)
    assert reserved(a) == reserved(b) == 210_000
    released = holds.release_calls(T, {"x1", "x2", "x3", "never-held"})
    assert sorted(h.call_id for h in released) == ["x1", "x2", "x3"]
    assert reserved(a) == 0
    assert reserved(b) == 105_000
    assert [h.call_id for h in holds.list_holds(T, b)] == ["keep"]


def test_concurrent_starts_share_the_balance(world, atomic_items):
    """Many calls of one account start at once: exactly the affordable ones are allowed and
    the holds never exceed the balance."""
    calls = 1000
    a = customer(2_505_000)  # 167 calls of connect fee + one minute (0.015000)
    holds.set_max_duration(T, 50)  # 50 s, billed as one whole minute
    try:
        barrier = threading.Barrier(16)

        def start(i: int):
            if i < 16:
                barrier.wait()
            return ask(a, call_id=f"k{i}")

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(start, range(calls)))
    finally:
        holds.set_max_duration(T, holds.DEFAULT_MAX_DURATION)
    allowed = [x for x in answers if x["allow"]]
    each = CONNECT + PER_MINUTE  # 50 s is billed one whole minute
    assert len(allowed) == 2_505_000 // each == 167
    assert {x["hold_amount"] for x in allowed} == {"0.015000"}
    assert {x["reason"] for x in answers if not x["allow"]} == {"insufficient_funds"}
    live = holds.list_holds(T, a)
    assert len(live) == 167
    assert sum(h.amount_micro for h in live) == reserved(a) == 167 * each <= 2_505_000


def test_holds_refuse_floats_and_bad_call_ids(world):
    with pytest.raises(ValueError, match="call id"):
        holds.check_call_id("has space")
    with pytest.raises(ValueError, match="call id"):
        holds.check_call_id("a#b")
    money = SimpleNamespace()
    with pytest.raises(TypeError):
        holds.place(T, "C0", "f", 1.5, 60, 0, money=money, credit_micro=0)


def test_rules_available_and_refusal():
    assert rules.available(100, 30, prepaid=True, credit_limit_micro=50, own_hold_micro=10) == 80
    assert rules.available(100, 30, prepaid=False, credit_limit_micro=50) == 120
    assert rules.refusal(None, None) == "unknown_account"
    assert rules.refusal("customer", "suspended") == "suspended"
    assert rules.refusal("customer", "active") is None


def cli(*argv: str) -> tuple[int, str, str]:
    import contextlib
    import io

    from functions.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


def test_cli_asks_the_same_question_without_holding(world):
    import json

    a = customer(1_000_000)
    status, out, _ = cli("authz", T, a, "4420", "--json", "--time", "2026-12-05T10:00:00Z")
    assert status == 0
    assert json.loads(out) == {
        "tenant": T,
        "account": a,
        "callee": "4420",
        "allow": True,
        "reason": "ok",
        "max_duration_seconds": 5940,
        "hold_amount": "0.995000",
        "routes": [],
        "dry_run": True,
    }
    assert (reserved(a), holds.list_holds(T, a)) == (0, [])
    status, out, _ = cli("authz", T, a, "449912")
    assert (status, out.strip()) == (
        0,
        f"{T}/{a} -> 449912: deny (closed), max duration 0 s, would hold 0.000000 "
        "(dry run: nothing held)",
    )
    status, _, err = cli("authz", T, a, "4420", "--time", "yesterday")
    assert status == 2 and "--time" in err
    status, _, err = cli("authz", "nobody", a, "4420")
    assert status == 2
    assert (
        cli("authz-cap", T, "--json")[1].strip()
        == '{"tenant": "acme", "max_duration_seconds": 10800}'
    )
    assert cli("authz-cap", T, "600")[1].strip() == "acme: a START allows at most 600 s"
    assert cli("authz-cap", T, "0")[0] == 2
    holds.set_max_duration(T, holds.DEFAULT_MAX_DURATION)
