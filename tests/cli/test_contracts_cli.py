"""`tollgate tier|bundle` (issue 10 §2-§3): the contract as stored, shown and refused."""

from __future__ import annotations

import pytest

from functions.cli import CliError
from functions.rate.contracts import Counter, CounterKey, Move
from functions.store import files
from tests.cli.conftest import last_json, tollgate

SEED = ("--prefixes", "1", "--tiers", "100000:0.0045,:0.0040")


@pytest.fixture
def acme(aws):
    tollgate("tenant", "create", "acme")
    tollgate("account", "create", "acme", "cust", "--kind", "customer", "--decimals", "2")
    tollgate("account", "create", "acme", "sup", "--kind", "supplier")


def counted(seconds: int, charged: int, name: str = "us") -> None:
    """The period's counter as the pricing runs of its files would have left it."""
    key = CounterKey("cust", "tier", name, "2026-03")
    move = Move(key, Counter(), seconds, charged)
    assert files.commit_pricing_run("acme", "f1", "r1", [move]) == "r1"


@pytest.mark.parametrize(("mode", "total"), [("graduated", "543.830000"), ("volume", "493.830000")])
def test_the_seed_contract_for_123456_5_minutes(acme, capsys, mode, total):
    tollgate("tier", "set", "acme", "cust", "us", "--mode", mode, *SEED)
    counted(123_456 * 60 + 30, 0)
    tollgate("tier", "show", "acme", "cust", "us", "--period", "2026-03", "--json")
    shown = last_json(capsys)
    assert shown["total"] == total
    assert shown["minutes"] == "123456.50"
    tiers = [(t["minutes"], t["rate"], t["amount"]) for t in shown["tiers"]]
    if mode == "graduated":  # minute 100,000 is still tier 1
        assert tiers == [
            ("100000.00", "0.00450000", "450.000000"),
            ("23456.50", "0.00400000", "93.830000"),  # 93.826, rounded for display
        ]
    else:
        assert tiers == [("0.00", "0.00450000", "0.000000"), ("123456.50", "0.00400000", total)]


def test_tier_set_and_list_round_trip(acme, capsys):
    tollgate("tier", "set", "acme", "cust", "us", "--mode", "graduated", *SEED, "--json")
    stored = last_json(capsys)
    assert stored["tiers"] == [
        {"up_to_minutes": "100000.00", "rate": "0.00450000"},
        {"up_to_minutes": None, "rate": "0.00400000"},
    ]
    tollgate("tier", "list", "acme", "cust", "--json")
    assert last_json(capsys) == [stored]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("sup", "us", "--mode", "graduated", *SEED), "'sup' is a supplier"),
        (("ghost", "us", "--mode", "graduated", *SEED), "unknown account 'ghost'"),
        (("cust", "us", "--mode", "graduated", "--prefixes", "1x", "--tiers", ":0.004"),
         "prefix '1x' is not a string of digits"),
        (("cust", "us", "--mode", "graduated", "--prefixes", "1", "--tiers", "100:0.0045"),
         "the last tier must be open-ended"),
        (("cust", "us", "--mode", "graduated", "--prefixes", "1", "--tiers", "0:1,:1"),
         "a bound of 0 minutes"),
    ],
)  # fmt: skip
def test_bad_tiers_are_refused_with_the_field_named(acme, argv, message):
    with pytest.raises(CliError, match=message) as refused:
        tollgate("tier", "set", "acme", *argv)
    assert refused.value.exit_code == 2


def test_a_prefix_in_two_tiers_of_an_account_is_refused(acme):
    tollgate("tier", "set", "acme", "cust", "us", "--mode", "graduated", *SEED)
    with pytest.raises(CliError, match="tier us-2 on account 'cust': prefix 1 is in groups"):
        tollgate("tier", "set", "acme", "cust", "us-2", "--mode", "volume", *SEED)


def test_a_file_may_move_at_most_99_counters_in_its_commit(acme):
    moves = [
        Move(CounterKey("cust", "tier", f"t{i}", "2026-03"), Counter(), 1, 0) for i in range(100)
    ]
    with pytest.raises(ValueError, match="move 100 tier and bundle counters"):
        files.commit_pricing_run("acme", "f1", "r1", moves)
    assert files.get_pricing_run("acme", "f1") is None


def test_a_stale_counter_refuses_the_commit_and_leaves_nothing_behind(acme):
    counted(60, 450)
    key = CounterKey("cust", "tier", "us", "2026-03")
    stale = Move(key, Counter(), 30, 225)  # read before f1 committed
    assert files.commit_pricing_run("acme", "f2", "r2", [stale]) is None
    assert files.get_pricing_run("acme", "f2") is None
    assert files.read_counter("acme", key) == Counter(60, 450, 1)
    fresh = Move(key, Counter(60, 450, 1), 30, 225)
    assert files.commit_pricing_run("acme", "f2", "r2", [fresh]) == "r2"
    assert files.read_counter("acme", key) == Counter(90, 675, 2)
    # Another run of f2 after the first committed: the committed run is the answer.
    assert files.commit_pricing_run("acme", "f2", "r3", [fresh]) == "r2"


def test_bundle_set_needs_a_whole_number_of_seconds_and_a_fee(acme, capsys):
    with pytest.raises(CliError, match="not a whole number of seconds"):
        tollgate("bundle", "set", "acme", "cust", "uk", "--prefixes", "44", "--minutes",
                 "0.001", "--fee", "1")  # fmt: skip
    with pytest.raises(CliError, match="invalid --fee"):
        tollgate("bundle", "set", "acme", "cust", "uk", "--prefixes", "44", "--minutes", "1",
                 "--fee", "ten")  # fmt: skip
    tollgate("bundle", "list", "acme", "cust", "--json")
    assert last_json(capsys) == []
