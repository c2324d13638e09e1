"""functions.rate.deck_impact, offline: calls rated by `rate_parties` replayed through a
proposed supplier deck. The revenue is what the carrier is paid (the top of a reseller chain,
not the customer's price to its reseller), the old cost counts the supplier's surcharge too,
revenue in another currency is not counted, and a closed code leaves its calls unrated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from functions.rate.deck import parse_deck
from functions.rate.deck_impact import file_impact, impact_json, proposed_index, summarise
from functions.rate.parties import Account, Parties, rate_parties
from functions.rate.rating import DeckIndex
from functions.shared.cdr import CDR_SCHEMA
from functions.shared.money import Rounding

T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)
NOW = int((T0 + timedelta(days=1)).timestamp())


def index(text: str, currency: str = "USD") -> DeckIndex:
    return DeckIndex.build(parse_deck(text.encode(), currency=currency).table, currency)


def cdrs(rows: list[tuple[str, str, str, int, int]]) -> pa.Table:
    """(customer, supplier, callee, billsec, hours before T0) rows."""
    return pa.Table.from_pylist(
        [
            {
                "line": i + 2,
                "call_id": f"c{i}",
                "caller": "15551230000",
                "callee": callee,
                "start_time": T0 - timedelta(hours=hours),
                "billsec": billsec,
                "disposition": "ANSWERED" if billsec else "NO_ANSWER",
                "customer": customer,
                "supplier": supplier,
            }
            for i, (customer, supplier, callee, billsec, hours) in enumerate(rows)
        ],
        schema=CDR_SCHEMA,
    )


PARTIES = Parties(
    {
        "retail": Account("retail", "customer", parent="resell"),
        "resell": Account("resell", "reseller"),
        "direct": Account("direct", "customer"),
        "euro": Account("euro", "customer", currency="EUR"),
        "mtn": Account("mtn", "supplier"),
    },
    {
        # retail pays its reseller 0.030, the reseller pays the carrier 0.016
        "retail": index("prefix,destination,rate\n234,Nigeria,0.030\n"),
        "resell": index("prefix,destination,rate\n234,Nigeria,0.016\n"),
        "direct": index("prefix,destination,rate\n234,Nigeria,0.014\n44,UK,0.015\n"),
        "euro": index("prefix,destination,rate\n234,Nigeria,0.013\n", "EUR"),
        # 0.012 plus a 0.001 surcharge per minute
        "mtn": index("prefix,destination,rate,surcharge\n234,Nigeria,0.012,0.001\n44,UK,0.010,0\n"),
    },
)
CALLS = cdrs(
    [
        ("retail", "mtn", "2348031234567", 60, 1),  # revenue 0.016 (the reseller's), not 0.030
        ("direct", "mtn", "2348031234568", 60, 2),  # revenue 0.014
        ("euro", "mtn", "2348031234569", 60, 3),  # revenue in EUR: not counted
        ("direct", "mtn", "442071234567", 60, 4),  # UK: closed in the proposed deck
        ("direct", "mtn", "2348031234560", 60, 30),  # before the window
    ]
)
PROPOSED = "prefix,destination,rate,status\n234,Nigeria,0.015,\n44,UK,0.010,closed\n"


def test_revenue_is_the_carriers_old_cost_has_the_surcharge_closed_codes_are_unrated():
    rated = rate_parties(CALLS, PARTIES, "f1")
    proposed, as_of = proposed_index(
        parse_deck(PROPOSED.encode(), currency="USD").table, "USD", NOW
    )
    assert as_of == NOW  # undated rows: the deck as it stands now
    since = int((T0 - timedelta(hours=24)).timestamp())
    part = file_impact(
        rated.rated, rated.charges, supplier="mtn", currency="USD", index=proposed,
        rounding=Rounding(), since=since, until=NOW,
    )  # fmt: skip
    document = impact_json(summarise([part]))
    (nigeria,) = document["destinations"]
    assert (nigeria["destination"], nigeria["calls"]) == ("Nigeria", 3)
    # old: 3 x (0.012 + 0.001 surcharge); new: 3 x 0.015; revenue 0.016 + 0.014 (+ EUR: 0)
    assert (nigeria["old_cost"], nigeria["new_cost"], nigeria["revenue"]) == (
        "0.039000", "0.045000", "0.030000",
    )  # fmt: skip
    assert (nigeria["new_margin"], nigeria["loses_money"], nigeria["losing_calls"]) == (
        "-0.015000", True, 2,
    )  # fmt: skip
    assert document["other_currency_calls"] == 1
    (uk,) = document["unrated"]["destinations"]
    assert (uk["destination"], uk["calls"], uk["old_cost"], uk["revenue"]) == (
        "UK", 1, "0.010000", "0.015000",
    )  # fmt: skip
    assert document["total"]["calls"] == 3


def test_a_dated_deck_is_taken_as_it_will_stand():
    """Rows effective later: the latest entry per code prices every call of the window."""
    text = (
        "prefix,destination,rate,effective_from\n"
        "234,Nigeria,0.013,2024-01-01\n"
        "234,Nigeria,0.015,2030-01-01\n"
    )
    proposed, as_of = proposed_index(parse_deck(text.encode()).table, "USD", NOW)
    assert as_of == int(datetime(2030, 1, 1, tzinfo=UTC).timestamp())
    rated = rate_parties(CALLS, PARTIES, "f1")
    part = file_impact(
        rated.rated, rated.charges, supplier="mtn", currency="USD", index=proposed,
        rounding=Rounding(), since=0, until=NOW,
    )  # fmt: skip
    (nigeria,) = impact_json(summarise([part]))["destinations"]
    assert (nigeria["calls"], nigeria["new_cost"]) == (4, "0.060000")
