"""Real-time authorization under the account's contracts (issue 14 §1): the max duration is
priced with the account's rounding, its tiers and bundles from the period's counters (the
files table), exactly as the rating engine will charge the call, and a bundle's seconds are
held by live calls as money is, so concurrent calls never share out more than it has left.

Real moto tables; the real pricing oracle on a deck built in memory (`service.deck_index` is
the only stand-in: the lake's deck would be the same table). The engine reference is
`rate_parties` (tests/rate/test_allowance.py `engine_micro`) from the same counter.
"""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal as D

import pytest

from functions.authz import service
from functions.rate.contracts import BUNDLE, TIER, Contracts, Counter, CounterKey, Move
from functions.rate.rating import DeckIndex
from functions.rate.tiers import Bundle, Tier, TierSchedule
from functions.shared.money import Rounding, RoundingMethod
from functions.store import accounts, files, holds, ledger
from tests.conftest import FAKE_ENVIRONMENT, moto_account
from tests.rate.reference import Entry, deck_table
from tests.rate.test_allowance import engine_micro

T = "acme"
NOW = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)
PERIOD = "2026-12"
# 0.01 connect fee + 0.06/min billed 60/6 to the UK; 0.0050/min billed 1/1 to the US; and a
# cent every 600 s to 7 (the rounding's example).
INDEX = DeckIndex.build(
    deck_table(
        [
            Entry("44", D("0.06"), connect_fee=D("0.01"), first=60, step=6, destination="UK"),
            Entry("1", D("0.0050"), destination="USA"),
            Entry("7", D("0.001"), destination="Russia"),
        ]
    ),
    "EUR",
)
UK = Bundle("uk", ("44",), included_seconds=6_000, fee_units=0)  # 100 minutes a month
US = TierSchedule("us", ("1",), "graduated", (Tier(600, 450_000), Tier(None, 400_000)))


@pytest.fixture(scope="module")
def world():
    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAKE_ENVIRONMENT.items():
            patch.setenv(name, value)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        patch.setattr(service, "deck_index", lambda *args: INDEX)
        with moto_account():
            accounts.create_tenant(T, currency="EUR")
            yield


_made = iter(range(10**6))


def customer(paid: int, **kw) -> str:
    name = f"K{next(_made)}"
    accounts.create_account(T, name, kind="customer", prepaid=True, **kw)
    if paid:
        ledger.record_payment(T, name, paid, reference=f"pay-{name}", account_kind="customer")
    return name


def counted(account: str, kind: str, name: str, seconds: int) -> CounterKey:
    """A rated file of the period counted `seconds` on the account's contract."""
    key = CounterKey(account, kind, name, PERIOD)
    run = f"run-{account}-{name}"
    assert files.commit_pricing_run(T, run, run, [Move(key, Counter(), seconds, 0)]) == run
    assert files.read_counter(T, key).seconds == seconds
    return key


def ask(account, event="start", call_id="c1", callee="447700900123", answered=0, now=NOW):
    request = service.Request(
        T, event, call_id, account=account, callee=callee, answered_seconds=answered, at=NOW
    )
    return service.authorize(request, now=now)


def reserved(account: str) -> int:
    return ledger.get_balance(T, account)[1]


def fresh_contracts():
    """A contract set a moment ago: this container's cache forgets what it read."""
    getattr(service, "CONTRACTS", {}).clear()


def test_the_accounts_rounding_prices_the_max_duration(world):
    # Rounded up to cents, every call of up to 600 s to 7 costs 0.01, and 601 s costs 0.02:
    # 0.015 buys 600 s (held 0.01). At the default 6 decimals it would buy 900 s.
    a = customer(15_000, rounding="up", rounding_decimals=2)
    answer = ask(a, callee="7495")
    assert (answer["max_duration_seconds"], answer["hold_amount"]) == (600, "0.010000")
    up = Rounding(2, RoundingMethod.UP)
    assert engine_micro(INDEX, "7495", NOW, 600, up) == 10_000
    assert engine_micro(INDEX, "7495", NOW, 601, up) == 20_000 > 15_000
    assert reserved(a) == 10_000


def test_a_bundle_with_minutes_left_allows_a_prepaid_account_without_money(world):
    """100 minutes of UK calls a month, 30 used: 70 minutes to the second, nothing held in
    money; the engine charges a call of 4,200 s nothing and one of 4,201 s more than 0."""
    a = customer(0)
    accounts.set_contract(T, a, UK, start=dt.date(2026, 12, 1))
    counted(a, BUNDLE, "uk", 1_800)
    fresh_contracts()
    answer = ask(a)
    assert answer == {
        "allow": True,
        "reason": "ok",
        "max_duration_seconds": 4_200,
        "hold_amount": "0.000000",
        "routes": [],
    }
    bundles = Contracts(bundles=[UK])
    assert engine_micro(INDEX, "447700900123", NOW, 4_200, contracts=bundles, before=1_800) == 0
    # 4,201 s bills 4,206: 6 s beyond the bundle, with the connect fee: 0.016000
    assert (
        engine_micro(INDEX, "447700900123", NOW, 4_201, contracts=bundles, before=1_800) == 16_000
    )
    assert reserved(a) == 0
    assert ask(a) == answer  # a retried START: the same answer, nothing more held
    # A UK number outside the bundle's prefixes would be priced by the deck: not here, but
    # the same account with 0.02 more money buys one 6 s step past the bundle.
    b = customer(20_000)
    accounts.set_contract(T, b, UK, start=dt.date(2026, 12, 1))
    counted(b, BUNDLE, "uk", 1_800)
    fresh_contracts()
    answer = ask(b)
    assert (answer["max_duration_seconds"], answer["hold_amount"]) == (4_206, "0.016000")
    assert engine_micro(INDEX, "447700900123", NOW, 4_207, contracts=bundles, before=1_800) == (
        22_000
    )
    assert reserved(b) == 16_000


def test_a_tier_past_its_first_bound_prices_at_the_second_tiers_rate(world):
    """0.0045/min for the month's first 600 s to the US, then 0.0040; 900 s counted: 0.10
    buys 1,500 s at 0.0040 (the deck's 0.0050 would buy 1,200 s)."""
    a = customer(100_000)
    accounts.set_contract(T, a, US)
    counted(a, TIER, "us", 900)
    fresh_contracts()
    answer = ask(a, callee="12125550100")
    assert (answer["max_duration_seconds"], answer["hold_amount"]) == (1_500, "0.100000")
    tiers = Contracts(tiers=[US])
    assert engine_micro(INDEX, "12125550100", NOW, 1_500, contracts=tiers, before=900) == 100_000
    assert engine_micro(INDEX, "12125550100", NOW, 1_501, contracts=tiers, before=900) == 100_067
    assert reserved(a) == 100_000


def test_contracts_are_cached_a_minute_and_counters_read_with_the_money(world, monkeypatch):
    """A START on a warm container reads the account, then the balance, the tenant's cap, the
    call's hold and the period's counters in ONE BatchGetItem, then writes the hold: 3
    DynamoDB calls, contracts or not; the contracts are read again after CONTRACTS_TTL."""
    import botocore.client

    a = customer(100_000)
    accounts.set_contract(T, a, US)
    counted(a, TIER, "us", 900)
    fresh_contracts()
    clock = [1_000.0]
    monkeypatch.setattr(service, "contracts_clock", lambda: clock[0])
    original = botocore.client.BaseClient._make_api_call
    calls: list[str] = []

    def counting(client, operation, params):
        calls.append(operation)
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    ask(a, call_id="w0", callee="12125550100")  # cold: the contracts are read too
    assert "Query" in calls
    calls.clear()
    answer = ask(a, call_id="w1", callee="12125550100")
    assert answer["reason"] == "insufficient_funds"  # w0 holds all 0.10
    b = customer(100_000)
    calls.clear()
    ask(b, call_id="w2", callee="12125550100")
    assert calls == ["GetItem", "BatchGetItem", "TransactWriteItems"]
    c = customer(100_000)
    calls.clear()
    clock[0] += service.CONTRACTS_TTL_SECONDS
    ask(c, call_id="w3", callee="447700900123")
    assert calls.count("Query") == 1


def test_concurrent_calls_never_share_out_more_bundle_than_is_left(world, atomic_items):
    """10 minutes of the bundle left, 5 calls start at once, each capped at 240 s: the bundle
    gives 240 + 240 + 120 s in all (600), the rest is priced at the deck's rate against
    money (0.01 + 120 s = 0.13, then 0.25 twice) and held; whatever the order."""
    a = customer(1_000_000)
    accounts.set_contract(T, a, UK, start=dt.date(2026, 12, 1))
    counted(a, BUNDLE, "uk", 5_400)
    fresh_contracts()
    holds.set_max_duration(T, 240)
    try:
        barrier = threading.Barrier(5)

        def start(i: int):
            barrier.wait()
            return ask(a, call_id=f"b{i}")

        with ThreadPoolExecutor(5) as pool:
            answers = list(pool.map(start, range(5)))
    finally:
        holds.set_max_duration(T, holds.DEFAULT_MAX_DURATION)
    assert {x["max_duration_seconds"] for x in answers} == {240}
    assert sorted(x["hold_amount"] for x in answers) == [
        "0.000000",
        "0.000000",
        "0.130000",
        "0.250000",
        "0.250000",
    ]
    live = holds.list_holds(T, a)
    assert sorted(h.bundle_seconds for h in live) == [0, 0, 120, 240, 240]
    assert sum(h.amount_micro for h in live) == reserved(a) == 630_000
    money = holds.read_money(T, a, counters=[CounterKey(a, BUNDLE, "uk", PERIOD)])
    assert money.bundle_held == {CounterKey(a, BUNDLE, "uk", PERIOD): 600}


def test_bundle_seconds_come_back_where_the_money_does(world):
    """STOP keeps the answered time's bundle seconds until its rated CDR (as it keeps its
    price), a never-answered call gives them all back, the CDR's release and the sweep of an
    expired hold give back the rest."""
    a = customer(0)
    key = CounterKey(a, BUNDLE, "uk", PERIOD)
    accounts.set_contract(T, a, UK, start=dt.date(2026, 12, 1))
    counted(a, BUNDLE, "uk", 5_400)  # 600 s left
    fresh_contracts()
    holds.set_max_duration(T, 240)
    try:
        assert ask(a, call_id="s1")["max_duration_seconds"] == 240
        assert ask(a, call_id="s2")["max_duration_seconds"] == 240
        assert ask(a, call_id="s3")["max_duration_seconds"] == 120  # all the bundle has left
        assert ask(a, call_id="s4")["reason"] == "insufficient_funds"
        # s1 answered 100 s, billed 102 (60/6): 102 s stay held, 138 come back
        stop = ask(a, "stop", call_id="s1", answered=100)
        assert (stop["reason"], stop["hold_amount"]) == ("stopped", "0.000000")
        assert holds.read_money(T, a, counters=[key]).bundle_held == {key: 462}
        assert ask(a, "stop", call_id="s1", answered=100)["hold_amount"] == "0.000000"
        assert holds.read_money(T, a, counters=[key]).bundle_held == {key: 462}
        assert ask(a, "stop", call_id="s2")["reason"] == "stopped"  # never answered
        assert holds.read_money(T, a, counters=[key]).bundle_held == {key: 222}
        assert ask(a, call_id="s5")["max_duration_seconds"] == 240
        assert ask(a, call_id="s6")["max_duration_seconds"] == 138
        # s1's rated CDR: the counter moves by its 102 s and its hold goes
        key_run = "cdr-s1"
        read = files.read_counter(T, key)
        files.commit_pricing_run(T, key_run, key_run, [Move(key, read, 102, 0)])
        holds.release_calls(T, {"s1"})
        assert holds.read_money(T, a, counters=[key]).bundle_held == {key: 498}
        assert ask(a, call_id="s7")["reason"] == "insufficient_funds"
        # s3 never stops: once expired, a money-limited START sweeps it, its 120 s come back
        later = NOW + dt.timedelta(seconds=120 + service.HOLD_GRACE_SECONDS + 1)
        service._swept.clear()
        answer = ask(a, call_id="s8", now=later)
        assert answer["max_duration_seconds"] == 120
        assert holds.read_money(T, a, counters=[key]).bundle_held == {key: 498}
        assert reserved(a) == 0
    finally:
        holds.set_max_duration(T, holds.DEFAULT_MAX_DURATION)


def test_a_rated_file_landing_between_the_read_and_the_hold_makes_the_start_read_again(
    world, monkeypatch
):
    """The bundle's counter moves (a rated file of the period used 500 s of it) after the
    START read it: the hold's ConditionCheck on the counter fails, the START reads again and
    holds what the 100 s now left allow (96 s, billed 60/6); a retried START gets that same
    answer."""
    a = customer(0)
    key = CounterKey(a, BUNDLE, "uk", PERIOD)
    accounts.set_contract(T, a, UK, start=dt.date(2026, 12, 1))
    counted(a, BUNDLE, "uk", 5_400)  # 600 s left
    fresh_contracts()
    read_money, landed = holds.read_money, []

    def read_then_rate(*args, **kw):
        money = read_money(*args, **kw)
        if not landed:
            landed.append(files.commit_pricing_run(T, "late", "late", [
                Move(key, files.read_counter(T, key), 500, 0)
            ]))  # fmt: skip
        return money

    monkeypatch.setattr(holds, "read_money", read_then_rate)
    answer = ask(a, call_id="r1")
    assert landed == ["late"]
    assert (answer["max_duration_seconds"], answer["hold_amount"]) == (96, "0.000000")
    assert holds.read_money(T, a, counters=[key]).bundle_held == {key: 96}
    assert ask(a, call_id="r1") == answer
    assert holds.read_money(T, a, counters=[key]).bundle_held == {key: 96}


def test_an_interim_keeps_the_calls_bundle_seconds_and_holds_new_money(world):
    """All 600 s the bundle has left are the call's; a payment mid-call buys 90 s more past
    the bundle (0.01 fee + 90 s at 0.06/min = 0.10): the INTERIM holds the money, the bundle
    seconds stay the call's own (not counted twice against it)."""
    a = customer(0)
    key = CounterKey(a, BUNDLE, "uk", PERIOD)
    accounts.set_contract(T, a, UK, start=dt.date(2026, 12, 1))
    counted(a, BUNDLE, "uk", 5_400)
    fresh_contracts()
    assert ask(a, call_id="i1")["max_duration_seconds"] == 600
    ledger.record_payment(T, a, 100_000, reference=f"top-{a}", account_kind="customer")
    answer = ask(a, "interim", call_id="i1", answered=300, now=NOW + dt.timedelta(seconds=300))
    assert (answer["max_duration_seconds"], answer["hold_amount"]) == (390, "0.100000")
    bundles = Contracts(bundles=[UK])
    assert engine_micro(INDEX, "447700900123", NOW, 690, contracts=bundles, before=5_400) == (
        100_000
    )
    assert engine_micro(INDEX, "447700900123", NOW, 691, contracts=bundles, before=5_400) == (
        106_000
    )
    (hold,) = holds.list_holds(T, a)
    assert (hold.amount_micro, hold.bundle_seconds, hold.max_duration_seconds) == (
        100_000,
        600,
        690,
    )
    assert holds.read_money(T, a, counters=[key]).bundle_held == {key: 600}
    assert reserved(a) == 100_000


def test_a_start_by_trunk_reads_the_trunk_map_once_a_minute(world, monkeypatch):
    """A switch that names the trunk (or IP), not the account: the tenant's trunk map is read
    once a minute per warm container (the switches, and each one's mappings), so a warm
    START is the same 3 DynamoDB calls as by account; a mapping changed reaches it within
    TRUNKS_TTL_SECONDS."""
    import botocore.client

    a, b = customer(10_000_000), customer(10_000_000)  # 3 h at 0.0050/min holds 0.90 each
    accounts.create_switch(T, "sbc1", format="generic")
    accounts.map_trunk(T, "sbc1", "ingress", "203.0.113.7", a)
    clock = [5_000.0]
    monkeypatch.setattr(service, "trunks_clock", lambda: clock[0])
    service.TRUNKS.clear()
    original = botocore.client.BaseClient._make_api_call
    calls: list[str] = []

    def counting(client, operation, params):
        calls.append(operation)
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)

    def by_trunk(call_id: str) -> dict:
        request = service.Request(
            T, "start", call_id, trunk="203.0.113.7", callee="12125550100", at=NOW
        )
        return service.authorize(request, now=NOW)

    by_trunk("t0")  # cold: the trunk map (and the contracts) are read
    calls.clear()
    first = by_trunk("t1")
    assert calls == ["GetItem", "BatchGetItem", "TransactWriteItems"]
    assert reserved(a) > 0 and reserved(b) == 0
    assert first["allow"] is True
    accounts.map_trunk(T, "sbc1", "ingress", "203.0.113.7", b)  # remapped to b
    by_trunk("t2")
    assert reserved(b) == 0  # within the minute: still a's
    clock[0] += service.TRUNKS_TTL_SECONDS
    by_trunk("t3")
    assert reserved(b) > 0  # the next read sees the new mapping
