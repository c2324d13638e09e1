"""Per-destination per-minute surcharges (issue 10 §5), charged as their own component.

A deck entry's `surcharge` adds, to every charged call it prices (answered beyond the free
seconds), a `surcharge` charge: the surcharge over the same billed seconds, rounded once by
the account's rule. Each test fails on the code before the column: the importer ignored it
and no such charge existed. Money is checked to the last unit against the per-call Decimal
reference (tests/rate/reference.py).
"""

from __future__ import annotations

import csv
import json
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.cli import main
from functions.rate.deck import InvalidDeckError, parse_deck
from functions.rate.parties import Account, Parties, charge_deltas, rate_parties
from functions.rate.rated import rate_cdrs, summarise
from functions.rate.rating import DeckIndex
from functions.shared.cdr import QUARANTINE_SCHEMA
from functions.shared.money import Rounding, RoundingMethod
from tests.rate.reference import Entry, deck_table, rate_call, surcharge_call
from tests.rate.test_parties import T0
from tests.rate.test_parties import cdrs as party_cdrs

D = Decimal
T0_S = int(T0.timestamp())

# The ncli plan's Nigeria mobile: +0.0020/min on top of the rate (the example).
NG = Entry(
    "234803",
    D("0.0950"),
    first=60,
    step=1,
    free_seconds=3,
    destination="Nigeria - Mobile",
    surcharge=D("0.0020"),
)
NG_COST = Entry("234803", D("0.0800"), destination="Nigeria", surcharge=D("0.0005"))
UK = Entry("44", D("0.0100"), destination="UK")
HALF_UP_6 = Rounding()
CENTS_UP = Rounding(2, RoundingMethod.UP)
FOUR_DOWN = Rounding(4, RoundingMethod.DOWN)


def cdrs(rows: list[tuple[str, int]], customer: str = "ncli", supplier: str = "mtn") -> pa.Table:
    """(callee, billsec) rows as a canonical CDR table, started at T0."""
    return party_cdrs([(customer, supplier, callee, billsec) for callee, billsec in rows])


def parties(rounding: Rounding = HALF_UP_6) -> Parties:
    accounts = {
        "ncli": Account("ncli", "customer", rounding=rounding),
        "mtn": Account("mtn", "supplier"),
    }
    decks = {
        "ncli": DeckIndex.build(deck_table([NG, UK])),
        "mtn": DeckIndex.build(deck_table([NG_COST, UK])),
    }
    return Parties(accounts, decks)


def ref(entries, callee, seconds, rounding):
    method = rounding.method.value
    _, _, billed, usage = rate_call(entries, callee, T0_S, seconds, rounding.decimals, method)
    extra = surcharge_call(entries, callee, T0_S, seconds, rounding.decimals, method)
    return billed, usage, extra


CALLS = [("2348031234567", 61), ("2348031234567", 125), ("2348031234567", 3), ("2348031234567", 0)]
CALLS += [("442071234567", 61)]


@pytest.mark.parametrize("rounding", [Rounding(), CENTS_UP, FOUR_DOWN], ids=str)
def test_a_surcharged_entry_adds_a_surcharge_charge_rounded_once_on_its_own(rounding):
    result = rate_parties(cdrs(CALLS), parties(rounding))
    rows = result.charges.to_pylist()
    usage = {r["call_id"]: r for r in rows if r["component"] == "usage" and r["role"] != "supplier"}
    extra = {
        r["call_id"]: r for r in rows if r["component"] == "surcharge" and r["role"] != "supplier"
    }
    for i, (callee, seconds) in enumerate(CALLS):
        billed, amount, surcharge = ref([NG, UK], callee, seconds, rounding)
        assert usage[f"c{i}"]["amount"] == amount
        if surcharge is None:
            assert f"c{i}" not in extra
            continue
        row = extra[f"c{i}"]
        assert row["amount"] == surcharge
        assert (row["account"], row["role"], row["level"], row["counterparty"]) == (
            "ncli",
            "customer",
            0,
            "carrier",
        )
        assert (row["prefix"], row["destination"], row["status"]) == (
            "234803",
            "Nigeria - Mobile",
            "rated",
        )
        assert (row["rate"], row["billed_seconds"]) == (D("0.00200000"), billed)
        assert row["line"] == usage[f"c{i}"]["line"]
    # 61 s and 125 s to Nigeria are charged; 3 s is within the free seconds, 0 s unanswered,
    # and the UK entry has no surcharge.
    assert sorted(extra) == ["c0", "c1"]


def test_the_surcharge_for_61_seconds_at_cents_rounded_up_is_exact():
    result = rate_parties(cdrs([("2348031234567", 61)]), parties(CENTS_UP))
    [row] = [
        r for r in result.charges.to_pylist() if r["component"] == "surcharge" and r["level"] == 0
    ]
    # 0.0020 x 61 / 60 = 0.0020333..., up to cents: 0.01; the usage 0.0950 x 61/60 = 0.0965833
    # rounds up to 0.10 on its own (not 0.11 from the sum 0.0986166 + rounding twice).
    assert row["amount"] == D("0.01")
    assert charge_deltas(result.charges)["ncli"] == -(100_000 + 10_000)


def test_balance_deltas_and_the_rated_row_include_the_surcharge_and_margin_counts_both_sides():
    result = rate_parties(cdrs([("2348031234567", 120), ("442071234567", 60)]), parties())
    # Customer: usage 0.19 + surcharge 0.004, and 0.01; supplier: 0.16 + 0.001, and 0.01.
    assert charge_deltas(result.charges) == {"ncli": -204_000, "mtn": 171_000}
    ng, uk = result.rated.to_pylist()
    assert (ng["customer_amount"], ng["customer_surcharge"]) == (D("0.190000"), D("0.004000"))
    assert ng["supplier_amount"] == D("0.160000")  # the supplier's usage charge, as before
    assert ng["margin"] == D("0.190000") + D("0.004000") - D("0.160000") - D("0.001000")
    assert (uk["customer_surcharge"], uk["margin"]) == (None, D("0.000000"))


def test_a_deck_without_surcharges_writes_a_null_customer_surcharge_and_no_extra_rows():
    plain = Parties(
        {"ncli": Account("ncli", "customer"), "mtn": Account("mtn", "supplier")},
        {"ncli": DeckIndex.build(deck_table([UK])), "mtn": DeckIndex.build(deck_table([UK]))},
    )
    result = rate_parties(cdrs([("442071234567", 61)]), plain)
    assert set(result.charges.column("component").to_pylist()) == {"usage"}
    assert result.rated.column("customer_surcharge").to_pylist() == [None]


def test_a_reseller_chain_charges_each_level_its_own_decks_surcharge():
    accounts = {
        "ncli": Account("ncli", "customer", parent="resell"),
        "resell": Account("resell", "reseller", rounding=CENTS_UP),
        "mtn": Account("mtn", "supplier"),
    }
    resell_entry = Entry("234803", D("0.0900"), surcharge=D("0.0010"))
    decks = {
        "ncli": DeckIndex.build(deck_table([NG])),
        "resell": DeckIndex.build(deck_table([resell_entry])),
        "mtn": DeckIndex.build(deck_table([NG_COST])),
    }
    result = rate_parties(cdrs([("2348031234567", 90)]), Parties(accounts, decks))
    got = {(r["account"], r["component"]): r["amount"] for r in result.charges.to_pylist()}
    assert got[("ncli", "surcharge")] == D("0.003000")  # 0.0020 x 90/60
    assert got[("resell", "surcharge")] == D("0.01")  # 0.0015 up to cents
    assert got[("mtn", "surcharge")] == D("0.000750")
    [rated] = result.rated.to_pylist()
    assert rated["customer_surcharge"] == D("0.003000")
    # The carrier's revenue is the reseller's: 0.14 (0.135 up) + 0.01; its cost 0.12 + 0.00075.
    assert rated["margin"] == D("0.14") + D("0.01") - D("0.12") - D("0.00075")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    surcharge=st.integers(0, 10**6),
    seconds=st.lists(st.integers(0, 4000), min_size=1, max_size=12),
    rounding=st.sampled_from([Rounding(), CENTS_UP, FOUR_DOWN, Rounding(3)]),
    free=st.sampled_from([0, 3, 10]),
)
def test_surcharge_charges_match_the_reference_to_the_unit(surcharge, seconds, rounding, free):
    entry = Entry(
        "234", D("0.05"), first=30, step=6, free_seconds=free, surcharge=D(surcharge).scaleb(-8)
    )
    decks = {"ncli": DeckIndex.build(deck_table([entry]))}
    accounts = {"ncli": Account("ncli", "customer", rounding=rounding)}
    calls = [("2348031234567", s) for s in seconds]
    result = rate_parties(cdrs(calls), Parties(accounts, decks))
    extra = {
        r["call_id"]: r["amount"]
        for r in result.charges.to_pylist()
        if r["component"] == "surcharge"
    }
    for i, (callee, s) in enumerate(calls):
        expected = surcharge_call(
            [entry], callee, T0_S, s, rounding.decimals, rounding.method.value
        )
        if expected is not None and expected > 0:
            assert extra.pop(f"c{i}") == expected
    assert extra == {}


# --- the deck column -------------------------------------------------------------------------


def test_the_surcharge_column_is_parsed_exactly_and_bad_values_name_line_and_field():
    deck = parse_deck(b"prefix,rate,Surcharge\n234803,0.095,0.0020\n44,0.01,\n")
    assert deck.table.column("surcharge_e8").to_pylist() == [200_000, 0]
    with pytest.raises(InvalidDeckError) as caught:
        parse_deck(b"prefix,rate,surcharge\n234803,0.095,-0.002\n", source="ncli.csv")
    [error] = caught.value.errors
    assert (error.line, error.field, error.message) == (2, "surcharge", "must not be negative")
    assert str(caught.value).startswith("ncli.csv")


# --- offline `tollgate rate` -----------------------------------------------------------------


@pytest.mark.parametrize("rounding", [Rounding(), CENTS_UP], ids=str)
def test_rate_cdrs_writes_the_customer_surcharge_and_margin_includes_both_sides(rounding):
    table = cdrs(CALLS)
    rated = rate_cdrs(
        table,
        DeckIndex.build(deck_table([NG, UK])),
        DeckIndex.build(deck_table([NG_COST, UK])),
        rounding=rounding,
    )
    rows = rated.to_pylist()
    total = D(0)
    for row, (callee, seconds) in zip(rows, CALLS, strict=True):
        _, amount, surcharge = ref([NG, UK], callee, seconds, rounding)
        _, cost, cost_surcharge = ref([NG_COST, UK], callee, seconds, rounding)
        assert row["customer_amount"] == amount
        assert row["surcharge"] == surcharge
        assert row["supplier_amount"] == cost
        assert row["margin"] == amount + (surcharge or 0) - cost - (cost_surcharge or 0)
        total += surcharge or 0
    summary = summarise(rated, QUARANTINE_SCHEMA.empty_table(), len(rows), rounding.decimals)
    assert summary.surcharge_total == total
    assert summary.margin_total == sum((r["margin"] for r in rows), D(0))


def test_rate_cdrs_prices_origin_entries_by_the_callers():
    deck = parse_deck(b"prefix,rate,origin\n44,0.01,\n44,0.02,1555\n")
    table = cdrs([("442071234567", 60)])
    rated = rate_cdrs(table, DeckIndex.build(deck.table))
    assert rated.column("customer_amount").to_pylist() == [D("0.020000")]
    other = table.set_column(2, "caller", pa.array(["4930"], pa.string()))
    rated = rate_cdrs(other, DeckIndex.build(deck.table))
    assert rated.column("customer_amount").to_pylist() == [D("0.010000")]
    assert "surcharge" not in rated.column_names  # a deck without surcharges: no column


def test_tollgate_rate_writes_a_surcharge_column_and_a_surcharge_total(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("TOLLGATE_CACHE_DIR", str(tmp_path / "cache"))
    head = "call_id,caller,callee,start_time,answer_time,end_time,billsec,disposition,"
    head += "customer,supplier"
    (tmp_path / "cdrs.csv").write_text(
        f"{head}\n"
        "c1,33140000000,2348031234567,2024-05-01T10:00:00Z,2024-05-01T10:00:00Z,"
        "2024-05-01T10:01:01Z,61,ANSWERED,ncli,mtn\n"
        "c2,4930123456,2348031234567,2024-05-01T10:02:00Z,2024-05-01T10:02:00Z,"
        "2024-05-01T10:04:00Z,120,ANSWERED,ncli,mtn\n"
    )
    (tmp_path / "sell.csv").write_text(
        "prefix,rate,increment,surcharge,origin\n234803,0.095,60/1,0.0020,\n"
        "234803,0.090,60/1,0.0030,33\n"
    )
    (tmp_path / "buy.csv").write_text("prefix,rate,surcharge\n234,0.08,0.0005\n")
    code = main(
        ["rate", str(tmp_path / "cdrs.csv"), "--format", "generic",
         "--customer-deck", str(tmp_path / "sell.csv"),
         "--supplier-deck", str(tmp_path / "buy.csv"),
         "--out", str(tmp_path / "rated.csv"), "--rounding", "up", "--decimals", "3", "--json"]
    )  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    with (tmp_path / "rated.csv").open() as handle:
        rows = {r["call_id"]: r for r in csv.DictReader(handle)}
    # c1, a French caller: 0.090 x 61/60 = 0.0915 -> 0.092; surcharge 0.0030 x 61/60 = 0.00305
    # -> 0.004; cost 0.08 x 61/60 = 0.08133 -> 0.082 plus 0.0005 x 61/60 = 0.000508 -> 0.001.
    assert (rows["c1"]["customer_amount"], rows["c1"]["surcharge"]) == ("0.092", "0.004")
    assert rows["c1"]["margin"] == "0.013"  # 0.092 + 0.004 - 0.082 - 0.001
    # c2: 0.095 x 2 = 0.190, surcharge 0.004; cost 0.160 + 0.001.
    assert (rows["c2"]["customer_amount"], rows["c2"]["surcharge"]) == ("0.190", "0.004")
    assert rows["c2"]["margin"] == "0.033"
    assert summary["customer_total"] == "0.282"
    assert summary["surcharge_total"] == "0.008"
    assert summary["margin_total"] == "0.046"
