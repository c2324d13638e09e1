"""Rating every party of a call: customer, reseller levels, supplier; and balance deltas."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from functions.rate.parties import Account, Parties, balance_deltas, rate_parties
from functions.rate.rating import DeckIndex
from functions.shared.cdr import CDR_SCHEMA
from tests.rate.reference import Entry, deck_table

D = Decimal
T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)


def cdrs(rows: list[tuple[str, str, str, int]]) -> pa.Table:
    """(customer, supplier, callee, billsec) rows as a canonical CDR table."""
    n = len(rows)
    return pa.Table.from_pydict(
        {
            "line": list(range(2, n + 2)),
            "call_id": [f"c{i}" for i in range(n)],
            "caller": ["15551230000"] * n,
            "callee": [r[2] for r in rows],
            "start_time": [T0] * n,
            "answer_time": [T0] * n,
            "end_time": [T0] * n,
            "billsec": [r[3] for r in rows],
            "disposition": ["ANSWERED" if r[3] else "NO_ANSWER" for r in rows],
            "customer": [r[0] for r in rows],
            "supplier": [r[1] for r in rows],
            "pdd_ms": [None] * n,
        },
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


def money(table: pa.Table, column: str) -> list[Decimal | None]:
    return table.column(column).to_pylist()


def test_a_call_through_a_reseller_is_priced_at_every_level_with_each_levels_margin(parties):
    result = rate_parties(cdrs([("acme", "tata", "917012345678", 60)]), parties)
    t = result.table
    assert money(t, "customer_amount") == [D("0.010000")]
    assert t.column("reseller1").to_pylist() == ["resellco"]
    assert money(t, "reseller1_amount") == [D("0.008000")]
    assert money(t, "reseller1_margin") == [D("0.002000")]
    assert money(t, "supplier_amount") == [D("0.006500")]
    assert money(t, "margin") == [D("0.001500")]
    assert t.column("destination").to_pylist() == ["India - Mobile"]
    assert balance_deltas(result.table) == {"acme": -10_000, "resellco": -8_000, "tata": 6_500}


def test_balance_deltas_are_summed_per_account_exactly(parties):
    rows = [("direct", "tata", "917012345678", 61)] * 3 + [("direct", "tata", "917012345678", 0)]
    result = rate_parties(cdrs(rows), parties)
    # 0.008 * 61 / 60 = 0.00813333… → 0.008133 per call; the unanswered call costs 0.
    assert balance_deltas(result.table) == {"direct": -3 * 8_133, "tata": 3 * 6_608}
    assert money(result.table, "margin") == [D("0.001525")] * 3 + [D("0.000000")]


def test_an_unknown_customer_is_unrated_and_charges_nobody(parties):
    result = rate_parties(cdrs([("ghost", "tata", "917012345678", 60)]), parties)
    assert result.table.column("status").to_pylist() == ["unrated"]
    assert result.table.column("reason").to_pylist() == ["unknown_customer"]
    assert balance_deltas(result.table) == {}


def test_a_reseller_without_a_rate_leaves_the_call_unrated_at_every_level(parties):
    result = rate_parties(cdrs([("acme", "tata", "4420712345", 60)]), parties)
    assert result.table.column("reason").to_pylist() == ["no_rate"]
    parties.decks["acme"] = DeckIndex.build(deck_table([Entry("44", D("0.02"))]))
    result = rate_parties(cdrs([("acme", "tata", "4420712345", 60)]), parties)
    assert result.table.column("reason").to_pylist() == ["reseller_no_rate"]
    assert balance_deltas(result.table) == {}


def test_an_account_without_a_deck_is_unrated_no_deck(parties):
    result = rate_parties(cdrs([("nodeck", "tata", "917012345678", 60)]), parties)
    assert result.table.column("reason").to_pylist() == ["no_deck"]


def test_a_missing_supplier_rate_still_charges_the_customer_but_has_no_margin(parties):
    result = rate_parties(cdrs([("direct", "nobody", "917012345678", 60)]), parties)
    t = result.table
    assert t.column("status").to_pylist() == ["rated"]
    assert t.column("supplier_reason").to_pylist() == ["unknown_supplier"]
    assert money(t, "margin") == [None]
    assert balance_deltas(result.table) == {"direct": -8_000}


def test_levels_in_different_currencies_get_no_margin(parties):
    result = rate_parties(cdrs([("direct", "euro", "917012345678", 60)]), parties)
    assert result.table.column("supplier_reason").to_pylist() == ["currency_mismatch"]
    assert money(result.table, "margin") == [None]
    assert result.currency_of["euro"] == "EUR"


def test_every_row_is_kept_once_in_input_order(parties):
    rows = [
        ("acme", "tata", "917012345678", 60),
        ("ghost", "tata", "917012345678", 60),
        ("direct", "tata", "33123", 60),
        ("direct", "tata", "917012345678", 5),
    ]
    t = rate_parties(cdrs(rows), parties).table
    assert t.column("call_id").to_pylist() == ["c0", "c1", "c2", "c3"]
    assert t.column("reason").to_pylist() == [None, "unknown_customer", "no_rate", None]
    assert t.column("matched_prefix").to_pylist() == ["917", None, None, "917"]


def test_a_file_whose_calls_were_all_charged_before_rates_to_an_empty_table(parties):
    result = rate_parties(cdrs([("direct", "tata", "917012345678", 60)]).slice(0, 0), parties)
    assert result.table.num_rows == 0
    assert "customer_amount" in result.table.column_names
    assert balance_deltas(result.table) == {}
