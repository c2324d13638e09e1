"""Route ordering (functions.rate.routing): least cost of the expected call, each deck's own
longest prefix, blocks and suspensions, the quality penalty with its minimum of calls, and
the margin guard that drops or flags."""

from __future__ import annotations

from decimal import Decimal

import pytest

from functions.rate.deck import parse_deck
from functions.rate.rating import DeckIndex
from functions.rate.routing import (
    Candidate,
    Policy,
    PolicyError,
    Stats,
    destination_key,
    order_routes,
)

AT = 1_714_564_800  # 2024-05-01T12:00Z


def deck(text: str) -> DeckIndex:
    return DeckIndex.build(parse_deck(text.encode()).table)


def supplier(name: str, text: str, **kw) -> Candidate:
    return Candidate(name, deck(text), **kw)


def names(routes):
    return [r["supplier"] for r in routes]


def test_cheapest_expected_call_first_with_exact_costs():
    routes = order_routes(
        "2348031234567",
        AT,
        [
            supplier("b", "prefix,destination,rate\n234,Nigeria,0.0150\n"),
            supplier("a", "prefix,destination,rate\n2348,Nigeria mobile,0.0120\n"),
            supplier("c", "prefix,destination,rate\n1,USA,0.001\n"),  # no rate for 234
        ],
        {},
    )
    assert names(routes) == ["a", "b"]
    first = routes[0]
    assert (first["prefix"], first["destination"]) == ("2348", "Nigeria mobile")
    assert first["cost_per_minute"] == "0.01200000"
    assert first["cost"] == "0.012000"  # 60 s at 0.012
    assert first["expected_seconds"] == 60
    assert first["flagged"] is False and first["margin"] is None


def test_each_deck_is_matched_by_its_own_longest_prefix():
    # The customer may sell 4495 (Isle of Man); this buy deck knows only 44: it still carries
    # the call at its 44 rate, and the other's 4495 entry (not its cheaper 44) is its price.
    only_44 = supplier("only44", "prefix,rate\n44,0.0100\n")
    both = supplier("both", "prefix,rate\n44,0.0050\n4495,0.0200\n")
    routes = order_routes("449512345678", AT, [both, only_44], {})
    assert [(r["supplier"], r["prefix"], r["cost_per_minute"]) for r in routes] == [
        ("only44", "44", "0.01000000"),
        ("both", "4495", "0.02000000"),
    ]
    uk = order_routes("447700900123", AT, [both, only_44], {})
    assert [(r["supplier"], r["prefix"]) for r in uk] == [("both", "44"), ("only44", "44")]


def test_connect_fee_and_increments_count_at_the_destinations_acd():
    # 60/60 with no fee vs 1/1 with a fee: at 60 s the first is cheaper (0.0100 vs 0.0110);
    # at the destination's 20 s ACD the 1/1 route costs 0.002 + 0.0050 = 0.007 < 0.010.
    whole = supplier("whole", "prefix,rate,increment\n44,0.0100,60/60\n")
    fine = supplier("fine", "prefix,rate,increment,connect fee\n44,0.0150,1/1,0.0035\n")
    assert names(order_routes("4420", AT, [fine, whole], {})) == ["whole", "fine"]
    stats = {("whole", "44"): Stats(50, 40, 800), ("fine", "44"): Stats(50, 40, 800)}
    routes = order_routes("4420", AT, [fine, whole], stats)
    assert names(routes) == ["fine", "whole"]
    assert [(r["expected_seconds"], r["cost"]) for r in routes] == [
        (20, "0.008500"),  # 0.0035 + 0.015 * 20 / 60
        (20, "0.010000"),
    ]


def test_blocked_routes_and_suspended_suppliers_are_never_offered():
    text = "prefix,rate\n44,0.0100\n"
    routes = order_routes(
        "442071234567",
        AT,
        [
            supplier("blocked", text, blocks=("4420",)),
            supplier("elsewhere", text, blocks=("447",)),
            supplier("suspended", text, status="suspended"),
            supplier("ok", "prefix,rate\n44,0.0110\n"),
        ],
        {},
    )
    assert names(routes) == ["elsewhere", "ok"]


def test_the_issues_example_a_poor_route_ranks_below_a_dearer_good_one():
    cheap = supplier("cheap", "prefix,rate\n234,0.0062\n")
    good = supplier("good", "prefix,rate\n234,0.0065\n")
    stats = {("cheap", "234"): Stats(100, 20, 1200), ("good", "234"): Stats(100, 85, 5100)}
    routes = order_routes("2348031234567", AT, [cheap, good], stats)
    assert names(routes) == ["good", "cheap"]
    assert [(r["asr"], r["acd"], r["calls"], r["quality"], r["penalty"]) for r in routes] == [
        ("85.0", 60, 100, "ok", "0"),
        ("20.0", 60, 100, "poor", "50"),
    ]
    # A smaller penalty (0.0062 * 1.04 = 0.006448 < 0.0065) keeps the cheap one first.
    soft = Policy.of({"penalty_percent": "4"})
    assert names(order_routes("2348031234567", AT, [cheap, good], stats, soft)) == [
        "cheap",
        "good",
    ]


def test_stats_are_kept_per_destination_so_many_thin_prefixes_count_together():
    """Issue 14 section 2: a supplier deck names India Mobile on 30 prefixes; each has fewer
    calls than the minimum, together they pass it, so the 20 % ASR moves the route down
    (0.0062 at 20 % ranks below 0.0065 at 85 %, as in the issue)."""
    rows = "".join(f"9170{i:02d},India Mobile,0.0062\n" for i in range(30))
    cheap = supplier("cheap", "prefix,destination,rate\n" + rows)
    good = supplier("good", "prefix,destination,rate\n917,India  mobile,0.0065\n")
    stats = {
        ("cheap", destination_key("India Mobile", "917012")): Stats(30, 6, 360),
        ("good", destination_key("India  mobile", "917")): Stats(20, 17, 1020),
    }
    routes = order_routes("917012123456", AT, [cheap, good], stats)
    assert [(r["supplier"], r["prefix"], r["destination"]) for r in routes] == [
        ("good", "917", "India  mobile"),
        ("cheap", "917012", "India Mobile"),
    ]
    assert [(r["calls"], r["asr"], r["quality"], r["penalty"]) for r in routes] == [
        (20, "85.0", "ok", "0"),
        (30, "20.0", "poor", "50"),
    ]
    # The same destination whatever the prefix, the case or the spacing of its name.
    assert destination_key("India Mobile", "917012") == destination_key(" india\tMOBILE ", "9")
    assert destination_key("India Mobile", "917012") == "india mobile"


def test_a_deck_row_without_a_destination_name_keeps_its_prefix_as_the_key():
    assert destination_key("", "234") == destination_key(None, "234") == "234"
    assert destination_key(" \x00\u200b ", "44") == "44"  # nothing left of the name
    assert destination_key("Isle\x07 of Man", "4495") == "isle of man"
    assert len(destination_key("X" * 1000, "1")) == 256  # bounded


def test_stats_count_only_from_the_minimum_of_calls():
    cheap = supplier("cheap", "prefix,rate\n234,0.0062\n")
    good = supplier("good", "prefix,rate\n234,0.0065\n")
    few = {("cheap", "234"): Stats(19, 2, 60), ("good", "234"): Stats(100, 85, 5100)}
    routes = order_routes("2348031234567", AT, [cheap, good], few)
    assert names(routes) == ["cheap", "good"]
    assert (routes[0]["quality"], routes[0]["asr"], routes[0]["calls"]) == ("unknown", "10.5", 19)
    # Only the counted stats make the destination's ACD: 5100 / 85 = 60 s.
    assert routes[0]["expected_seconds"] == 60
    enough = Policy.of({"min_calls": "19"})
    assert names(order_routes("2348031234567", AT, [cheap, good], few, enough)) == [
        "good",
        "cheap",
    ]


def test_pdd_and_acd_floors_penalise_too():
    a = supplier("a", "prefix,rate\n44,0.0100\n")
    b = supplier("b", "prefix,rate\n44,0.0120\n")
    stats = {
        ("a", "44"): Stats(40, 30, 900, pdd_sum_ms=30 * 9000, pdd_count=30),
        ("b", "44"): Stats(40, 30, 900, pdd_sum_ms=30 * 2000, pdd_count=30),
    }
    plain = order_routes("4420", AT, [a, b], stats)
    assert names(plain) == ["a", "b"] and plain[0]["pdd"] == 9000
    strict = Policy.of({"pdd_ceiling_ms": 7000})
    routes = order_routes("4420", AT, [a, b], stats, strict)
    assert names(routes) == ["b", "a"] and routes[1]["below"] == ["pdd"]
    assert names(order_routes("4420", AT, [a, b], stats, Policy.of({"acd_floor": 31}))) == [
        "a",
        "b",
    ]  # both under the ACD floor: both penalised alike


def test_the_margin_guard_drops_routes_that_leave_too_little():
    routes = [
        supplier("cheap", "prefix,rate\n44,0.0080\n"),
        supplier("close", "prefix,rate\n44,0.0095\n"),
        supplier("dear", "prefix,rate\n44,0.0110\n"),
    ]
    # Default: a zero-margin floor (CGRateS *event_cost): the dearer-than-the-customer goes.
    found = order_routes("4420", AT, routes, {}, quote_rate=Decimal("0.0100"))
    assert [(r["supplier"], r["margin"], r["margin_percent"]) for r in found] == [
        ("cheap", "0.00200000", "20.00"),
        ("close", "0.00050000", "5.00"),
    ]
    pct = Policy.of({"min_margin": "off", "min_margin_percent": "10"})
    assert names(order_routes("4420", AT, routes, {}, pct, Decimal("0.0100"))) == ["cheap"]
    absolute = Policy.of({"min_margin": "0.0010"})
    assert names(order_routes("4420", AT, routes, {}, absolute, Decimal("0.0100"))) == ["cheap"]


def test_when_no_route_passes_the_margin_guard_all_are_flagged():
    routes = [
        supplier("x", "prefix,rate\n44,0.0110\n"),
        supplier("y", "prefix,rate\n44,0.0105\n"),
    ]
    found = order_routes("4420", AT, routes, {}, quote_rate=Decimal("0.0100"))
    assert [(r["supplier"], r["flagged"], r["margin"]) for r in found] == [
        ("y", True, "-0.00050000"),
        ("x", True, "-0.00100000"),
    ]


def test_ties_are_broken_by_the_suppliers_name():
    text = "prefix,rate\n44,0.0100\n"
    candidates = [supplier(n, text) for n in ("m", "b", "z", "a")]
    assert names(order_routes("4420", AT, candidates, {})) == ["a", "b", "m", "z"]


def test_a_closed_code_and_a_future_rate_are_not_routes():
    future = supplier("future", "prefix,rate,effective date\n44,0.0010,2030-01-01\n")
    closed = supplier("closed", "prefix,rate,status\n44,0.0010,\n4420,,closed\n")
    assert order_routes("4420", AT, [future, closed], {}) == []


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"min_calls": "0"}, "min_calls"),
        ({"asr_floor": "101"}, "asr_floor"),
        ({"penalty_percent": "x"}, "penalty_percent"),
        ({"min_margin": "0.000000001"}, "min_margin"),
        ({"window": "3"}, "window"),
    ],
)
def test_bad_settings_name_the_setting(values, field):
    with pytest.raises(PolicyError, match=field):
        Policy.of(values)


def test_a_deck_with_origins_matches_its_any_caller_entries_without_a_caller():
    by_origin = supplier("o", "prefix,rate,origin\n44,0.0100,\n44,0.0040,33\n")
    assert [r["cost_per_minute"] for r in order_routes("4420", AT, [by_origin], {})] == [
        "0.01000000"
    ]
    french = order_routes("4420", AT, [by_origin], {}, caller="33612345678")
    assert [r["cost_per_minute"] for r in french] == ["0.00400000"]


def test_a_route_in_another_currency_never_passes_the_guard():
    usd = supplier("usd", "prefix,rate\n44,0.0090\n")
    eur = supplier("eur", "prefix,rate\n44,0.0050\n", currency="EUR")
    found = order_routes("4420", AT, [usd, eur], {}, quote_rate=Decimal("0.01"),
                         quote_currency="USD")  # fmt: skip
    assert [(r["supplier"], r["margin"]) for r in found] == [("usd", "0.00100000")]
    only_eur = order_routes("4420", AT, [eur], {}, quote_rate=Decimal("0.01"),
                            quote_currency="USD")  # fmt: skip
    assert [(r["supplier"], r["margin"], r["flagged"]) for r in only_eur] == [("eur", None, True)]


def test_a_rated_files_buckets_are_per_destination_and_old_files_per_prefix():
    """part_buckets: a rated part sums per (supplier, destination key, hour), the supplier
    deck's names as they come (dictionary or plain); a part written before
    supplier_destination existed, or a row without a name, counts under its prefix."""
    import datetime as dt

    import pyarrow as pa

    from functions.rate.route_service import add_buckets, part_buckets

    start = dt.datetime(2024, 5, 1, 10, 5, tzinfo=dt.UTC)
    hour = int(start.timestamp()) // 3600
    rated = pa.table(
        {
            "line": [1, 2, 3, 4],
            "start_time": pa.array([start] * 4, pa.timestamp("us", tz="UTC")),
            "billsec": [60, 0, 30, 10],
            "supplier": ["s", "s", "s", "s"],
            "supplier_prefix": ["917001", "917002", "917003", "44"],
            "supplier_destination": pa.array(
                ["India Mobile", "INDIA  MOBILE", "India Mobile", None]
            ).dictionary_encode(),
        }
    )
    pdd = pa.table({"line": [1, 3], "pdd_ms": [2000, 4000]})
    buckets: dict = {}
    add_buckets(buckets, part_buckets(rated, pdd))
    assert buckets == {
        ("s", "india mobile", hour): Stats(3, 2, 90, 6000, 2),
        ("s", "44", hour): Stats(1, 1, 10, 0, 0),
    }
    old: dict = {}
    add_buckets(old, part_buckets(rated.drop_columns(["supplier_destination"]), None))
    assert old == {
        ("s", "917001", hour): Stats(1, 1, 60),
        ("s", "917002", hour): Stats(1, 0, 0),
        ("s", "917003", hour): Stats(1, 1, 30),
        ("s", "44", hour): Stats(1, 1, 10),
    }
