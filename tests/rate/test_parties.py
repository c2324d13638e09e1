"""Charging every party of a call on its own: customer, each reseller at any depth, supplier."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.rate.parties import (
    CHARGE_COLUMNS,
    Account,
    Parties,
    charge_deltas,
    rate_parties,
)
from functions.rate.rating import DeckIndex
from functions.shared.cdr import CDR_SCHEMA
from functions.shared.money import Rounding
from tests.rate.reference import Entry, deck_table, rate_call

D = Decimal
T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)


def cdrs(rows: list[tuple[str | None, str | None, str, int]]) -> pa.Table:
    """(customer, supplier, callee, billsec) rows as a canonical CDR table."""
    return pa.Table.from_pylist(
        [
            {
                "line": i + 2,
                "call_id": f"c{i}",
                "caller": "15551230000",
                "callee": callee,
                "start_time": T0,
                "billsec": billsec,
                "disposition": "ANSWERED" if billsec else "NO_ANSWER",
                "customer": customer,
                "supplier": supplier,
            }
            for i, (customer, supplier, callee, billsec) in enumerate(rows)
        ],
        schema=CDR_SCHEMA,
    )


def deck(rate: str, prefix: str = "917", currency: str = "USD") -> DeckIndex:
    entry = Entry(prefix, D(rate), destination="India - Mobile")
    return DeckIndex.build(deck_table([entry]), currency)


@pytest.fixture
def parties() -> Parties:
    accounts = {
        "acme": Account("acme", "customer", parent="resellco"),
        "direct": Account("direct", "customer"),
        "resellco": Account("resellco", "reseller"),
        "tata": Account("tata", "supplier"),
        "euro": Account("euro", "supplier", currency="EUR"),
        "nodeck": Account("nodeck", "customer"),
    }
    decks = {
        "acme": deck("0.010"),  # what resellco sells to acme
        "resellco": deck("0.008"),  # what the carrier sells to resellco
        "direct": deck("0.008"),
        "tata": deck("0.0065"),
        "euro": deck("0.006", currency="EUR"),
    }
    return Parties(accounts, decks)


def charges_of(result) -> list[tuple]:
    """(call, account, role, level, counterparty, status, reason, amount) per charge."""
    charges = (
        (
            row["call_id"],
            row["account"],
            row["role"],
            row["level"],
            row["counterparty"],
            row["status"],
            row["reason"],
            row["amount"],
        )
        for row in result.charges.to_pylist()
    )
    return sorted(charges, key=lambda c: tuple("" if v is None else str(v) for v in c))


def test_a_call_through_a_reseller_yields_one_charge_per_party(parties):
    result = rate_parties(cdrs([("acme", "tata", "917012345678", 60)]), parties, "f1")
    assert result.charges.column_names == list(CHARGE_COLUMNS)
    assert charges_of(result) == [
        ("c0", "acme", "customer", 0, "resellco", "rated", None, D("0.010000")),
        ("c0", "resellco", "reseller", 1, "carrier", "rated", None, D("0.008000")),
        ("c0", "tata", "supplier", None, "carrier", "rated", None, D("0.006500")),
    ]
    rated = result.rated.to_pylist()[0]
    assert (rated["status"], rated["customer_amount"], rated["supplier_amount"]) == (
        "rated",
        D("0.010000"),
        D("0.006500"),
    )
    # The carrier keeps what the top of the chain pays it minus what it owes the supplier.
    assert rated["margin"] == D("0.001500")
    assert charge_deltas(result.charges) == {"acme": -10_000, "resellco": -8_000, "tata": 6_500}
    assert set(result.charges.column("file_id").to_pylist()) == {"f1"}


def test_a_chain_deeper_than_three_resellers_charges_every_level():
    """Fails on the old engine: it cut chains after three resellers, so r4 was never charged
    and its charge counted as the carrier's revenue."""
    names = ["cust", "r1", "r2", "r3", "r4", "r5"]
    accounts = {
        name: Account(name, "customer" if i == 0 else "reseller", names[i + 1] if i < 5 else None)
        for i, name in enumerate(names)
    } | {"tata": Account("tata", "supplier")}
    rates = ["0.0120", "0.0110", "0.0100", "0.0090", "0.0085", "0.0080", "0.0065"]
    decks = {name: deck(rate) for name, rate in zip([*names, "tata"], rates, strict=True)}
    result = rate_parties(cdrs([("cust", "tata", "917012345678", 60)]), Parties(accounts, decks))
    charged = {row[1]: (row[3], row[4], row[7]) for row in charges_of(result)}
    assert charged == {
        "cust": (0, "r1", D("0.012000")),
        "r1": (1, "r2", D("0.011000")),
        "r2": (2, "r3", D("0.010000")),
        "r3": (3, "r4", D("0.009000")),
        "r4": (4, "r5", D("0.008500")),
        "r5": (5, "carrier", D("0.008000")),
        "tata": (None, "carrier", D("0.006500")),
    }
    assert result.rated.column("margin").to_pylist() == [D("0.001500")]


def test_a_reseller_without_a_rate_leaves_only_its_own_charge_unrated(parties):
    """Fails on the old engine: a reseller without a rate left the end customer uncharged."""
    parties.decks["resellco"] = deck("0.008", prefix="44")
    result = rate_parties(cdrs([("acme", "tata", "917012345678", 60)]), parties)
    assert charges_of(result) == [
        ("c0", "acme", "customer", 0, "resellco", "rated", None, D("0.010000")),
        ("c0", "resellco", "reseller", 1, "carrier", "unrated", "no_rate", None),
        ("c0", "tata", "supplier", None, "carrier", "rated", None, D("0.006500")),
    ]
    assert charge_deltas(result.charges) == {"acme": -10_000, "tata": 6_500}
    assert result.rated.column("margin").to_pylist() == [None]


def test_the_supplier_is_owed_even_when_the_customer_cannot_be_priced(parties):
    """Fails on the old engine: a call the customer's deck could not price lost its supplier
    cost, though the vendor invoices it."""
    result = rate_parties(cdrs([("direct", "tata", "917012345678", 60)]), parties)
    assert charge_deltas(result.charges) == {"direct": -8_000, "tata": 6_500}
    parties.decks["direct"] = deck("0.02", prefix="44")
    result = rate_parties(cdrs([("direct", "tata", "917012345678", 60)]), parties)
    rated = result.rated.to_pylist()[0]
    assert (rated["status"], rated["reason"], rated["supplier_status"]) == (
        "unrated",
        "no_rate",
        "rated",
    )
    assert charge_deltas(result.charges) == {"tata": 6_500}


def test_unknown_accounts_are_unrated_unknown_account_on_their_side_only(parties):
    rows = [("ghost", "tata", "917012345678", 60), (None, None, "917012345678", 60)]
    result = rate_parties(cdrs(rows), parties)
    assert charges_of(result) == [
        ("c0", "ghost", "customer", 0, None, "unrated", "unknown_account", None),
        ("c0", "tata", "supplier", None, "carrier", "rated", None, D("0.006500")),
        ("c1", None, "customer", 0, None, "unrated", "unknown_account", None),
        ("c1", None, "supplier", None, "carrier", "unrated", "unknown_account", None),
    ]
    assert charge_deltas(result.charges) == {"tata": 6_500}


def test_wrong_kinds_and_missing_decks_have_their_own_reasons(parties):
    rows = [("tata", "direct", "917012345678", 60), ("nodeck", "tata", "917012345678", 60)]
    reasons = {(r[1], r[2]): r[6] for r in charges_of(rate_parties(cdrs(rows), parties))}
    assert reasons == {
        ("tata", "customer"): "not_a_customer",
        ("direct", "supplier"): "not_a_supplier",
        ("nodeck", "customer"): "no_deck",
        ("tata", "supplier"): None,
    }


def test_each_charge_is_rounded_by_its_own_accounts_rule():
    """0.008 x 61 s / 60 = 0.0081333…: up to 4 places 0.0082, down to 2 places 0.00."""
    accounts = {
        "cust": Account("cust", "customer", rounding=Rounding(4, "up")),
        "tata": Account("tata", "supplier", rounding=Rounding(2, "down")),
    }
    decks = {"cust": deck("0.008"), "tata": deck("0.008")}
    result = rate_parties(cdrs([("cust", "tata", "917012345678", 61)]), Parties(accounts, decks))
    amounts = {row[1]: row[7] for row in charges_of(result)}
    assert amounts == {"cust": D("0.008200"), "tata": D("0.000000")}
    assert charge_deltas(result.charges) == {"cust": -8_200}


def test_accounts_round_to_at_most_micro_units():
    with pytest.raises(ValueError, match="at most 6 decimals"):
        Account("cust", "customer", rounding=Rounding(8))


def test_different_currencies_leave_the_carrier_margin_empty(parties):
    result = rate_parties(cdrs([("direct", "euro", "917012345678", 60)]), parties)
    rated = result.rated.to_pylist()[0]
    assert (rated["currency"], rated["supplier_currency"], rated["margin"]) == ("USD", "EUR", None)
    assert charge_deltas(result.charges) == {"direct": -8_000, "euro": 6_000}


def test_calls_keep_their_order_and_an_empty_file_rates_to_empty_tables(parties):
    rows = [
        ("acme", "tata", "917012345678", 60),
        ("ghost", "tata", "917012345678", 60),
        ("direct", "tata", "33123", 60),
        ("direct", "tata", "917012345678", 5),
    ]
    rated = rate_parties(cdrs(rows), parties).rated
    assert rated.column("call_id").to_pylist() == ["c0", "c1", "c2", "c3"]
    assert rated.column("reason").to_pylist() == [None, "unknown_account", "no_rate", None]
    assert rated.column("matched_prefix").to_pylist() == ["917", None, None, "917"]
    empty = rate_parties(cdrs(rows).slice(0, 0), parties)
    assert (empty.rated.num_rows, empty.charges.num_rows) == (0, 0)
    assert charge_deltas(empty.charges) == {}


def test_a_cycle_is_refused_not_followed_forever():
    accounts = {
        "a": Account("a", "customer", parent="r1"),
        "r1": Account("r1", "reseller", parent="r2"),
        "r2": Account("r2", "reseller", parent="r1"),
    }
    result = rate_parties(cdrs([("a", None, "917012345678", 60)]), Parties(accounts, {}))
    assert ("c0", "a", "customer", 0, None, "unrated", "cycle", None) in charges_of(result)


# --- every charge equals a per-party Decimal reference, at any depth ---------------------

PREFIXES = ("9", "91", "917", "44", "4420")
entries = st.lists(
    st.builds(
        Entry,
        prefix=st.sampled_from(PREFIXES),
        rate=st.decimals(min_value=0, max_value=2, places=5),
        connect_fee=st.sampled_from([D(0), D("0.01")]),
        first=st.sampled_from([1, 6, 30, 60]),
        step=st.sampled_from([1, 6, 60]),
        closed=st.booleans(),
    ),
    max_size=3,
    unique_by=lambda e: e.prefix,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    depth=st.integers(0, 6),
    decks_of=st.lists(entries, min_size=8, max_size=8),
    has_deck=st.lists(st.booleans(), min_size=8, max_size=8),
    roundings=st.lists(
        st.tuples(st.integers(0, 6), st.sampled_from(["half_up", "up", "down"])),
        min_size=8,
        max_size=8,
    ),
    calls=st.lists(
        st.tuples(st.sampled_from(["917012345", "4420712", "447", "33"]), st.integers(0, 400)),
        min_size=1,
        max_size=12,
    ),
)
def test_every_charge_is_its_own_partys_reference_price(
    depth, decks_of, has_deck, roundings, calls
):
    chain = ["cust", *(f"r{i}" for i in range(1, depth + 1))]
    names = [*chain, "sup"]
    accounts = {
        name: Account(
            name,
            "customer" if i == 0 else "reseller",
            chain[i + 1] if i + 1 < len(chain) else None,
            rounding=Rounding(*roundings[i]),
        )
        for i, name in enumerate(chain)
    } | {"sup": Account("sup", "supplier", rounding=Rounding(*roundings[7]))}
    index_of = {name: i if name != "sup" else 7 for i, name in enumerate(names)}
    decks = {
        name: DeckIndex.build(deck_table(decks_of[index_of[name]]))
        for name in names
        if has_deck[index_of[name]]
    }
    table = cdrs([("cust", "sup", number, seconds) for number, seconds in calls])
    result = rate_parties(table, Parties(accounts, decks))

    # One charge per call and party, whatever the others' fate.
    assert result.charges.num_rows == len(calls) * len(names)
    assert result.rated.num_rows == len(calls)
    expected_deltas: dict[str, int] = {}
    t = int(T0.timestamp())
    for row in result.charges.to_pylist():
        number, seconds = calls[row["line"] - 2]
        account = row["account"]
        if account not in decks:
            assert (row["status"], row["reason"]) == ("unrated", "no_deck")
            continue
        decimals, method = roundings[index_of[account]]
        status, reason, _, amount = rate_call(
            decks_of[index_of[account]], number, t, seconds, decimals, method
        )
        assert (row["status"], row["reason"] or "") == (status, reason)
        if status == "rated":
            assert row["amount"] == amount
            units = int(amount.scaleb(6))
            sign = 1 if account == "sup" else -1
            expected_deltas[account] = expected_deltas.get(account, 0) + sign * units
    assert charge_deltas(result.charges) == {a: d for a, d in expected_deltas.items() if d}


# --- components and DIDs (issue 10 §4) ---------------------------------------------------

DID = "442071234567"
DAY = timedelta(days=1)


def test_every_deck_priced_charge_is_usage(parties):
    result = rate_parties(cdrs([("acme", "tata", "917012345678", 60)]), parties, "f1")
    assert set(result.charges.column("component").to_pylist()) == {"usage"}


def did_parties(parties: Parties, *records) -> Parties:
    return Parties(parties.accounts, parties.decks, dids=records, timezone="Europe/London")


def test_an_inbound_call_to_a_did_is_charged_to_its_owner_per_second():
    """61 s at 0.002/min per second: 0.002033 at 6 places; 0.01 for a 2-place round-up."""
    from functions.rate.recurring import Did

    accounts = {
        "direct": Account("direct", "customer"),
        "cents": Account("cents", "customer", rounding=Rounding(2, "up")),
    }
    start = T0.date()
    dids = (
        Did(DID, "direct", 2_000_000, 0, 200_000, start),
        Did("442071234568", "cents", 2_000_000, 0, 200_000, start),
    )
    calls = cdrs(
        [
            ("upstream", None, DID, 61),  # the carrier's upstream sends it; direct owns it
            ("upstream", None, "442071234568", 61),
            ("upstream", None, "4420712345670", 61),  # one digit more: not the DID
            ("upstream", None, DID, 0),  # unanswered: billed 0
        ]
    )
    result = rate_parties(calls, Parties(accounts, {}, dids=dids, timezone="Europe/London"))
    did_rows = sorted(
        (r for r in result.charges.to_pylist() if r["component"] == "did"),
        key=lambda r: r["call_id"],
    )
    assert [
        (r["call_id"], r["account"], r["role"], r["counterparty"], r["prefix"], r["billed_seconds"],
         r["rate"], r["amount"], r["status"])
        for r in did_rows
    ] == [
        ("c0", "direct", "customer", "carrier", DID, 61, D("0.00200000"), D("0.002033"), "rated"),
        ("c1", "cents", "customer", "carrier", "442071234568", 61, D("0.00200000"),
         D("0.010000"), "rated"),
        ("c3", "direct", "customer", "carrier", DID, 0, D("0.00200000"), D("0.000000"), "rated"),
    ]  # fmt: skip
    assert charge_deltas(result.charges) == {"direct": -2_033, "cents": -10_000}
    # The usage side is as before DIDs existed: `upstream` is no account, no supplier named.
    usage = [r for r in result.charges.to_pylist() if r["component"] == "usage"]
    assert {(r["account"], r["role"], r["reason"]) for r in usage} == {
        ("upstream", "customer", "unknown_account"),
        (None, "supplier", "unknown_account"),
    }


def test_a_did_charges_only_on_its_days_of_service():
    from functions.rate.recurring import Did

    accounts = {"direct": Account("direct", "customer")}
    april, may = T0.date().replace(month=4), T0.date()  # the call is on 1 May
    released = Did(DID, "direct", 2_000_000, 0, 200_000, april, end=may.replace(day=1) - DAY)
    later = Did(DID, "direct", 2_000_000, 0, 200_000, may)
    for dids, expected in (((released,), []), ((released, later), ["c0"])):
        result = rate_parties(
            cdrs([("upstream", None, DID, 60)]),
            Parties(accounts, {}, dids=dids, timezone="UTC"),
        )
        hits = [r["call_id"] for r in result.charges.to_pylist() if r["component"] == "did"]
        assert hits == expected
