"""functions.api.usage on hand-made lake tables (no AWS): a chain two resellers deep, a
surcharge, a reseller's own call, a DID charge, a supplier priced in another currency and a
reseller priced in another currency than its customer. Each view's figures exactly."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import pyarrow as pa
import pytest

from functions.api import usage
from functions.api.requests import ApiError, QueryError
from functions.api.scope import Caller
from functions.invoice.lake_sql import table_schema

START = dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)
# line: (customer, billsec, supplier amount, supplier currency, carrier margin)
CALLS = {
    2: ("C", 60, "0.004", "EUR", "0.002"),
    3: ("C", 30, "0.002", "USD", None),
    4: ("R2", 60, "0.004", "EUR", "0.002"),  # the reseller's own call
    5: ("X", 0, "0.000", "EUR", "0.000"),  # a direct customer's call to C's DID
    6: ("C", 120, "0.004", "EUR", "0.002"),
}
# line, account, role, level, counterparty, component, amount, currency, destination
CHARGES = [
    (2, "C", "customer", 0, "R2", "usage", "0.010", "EUR", "Mobile C"),
    (2, "R2", "reseller", 1, "R1", "usage", "0.008", "EUR", "Mobile R2"),
    (2, "R1", "reseller", 2, "carrier", "usage", "0.006", "EUR", "Mobile R1"),
    (2, "S", "supplier", None, "carrier", "usage", "0.004", "EUR", "India"),
    (3, "C", "customer", 0, "R2", "usage", "0.005", "EUR", "Mobile C"),
    (3, "C", "customer", 0, "R2", "surcharge", "0.001", "EUR", "Mobile C"),
    (3, "R2", "reseller", 1, "R1", "usage", "0.004", "EUR", "Mobile R2"),
    (3, "R1", "reseller", 2, "carrier", "usage", "0.003", "EUR", "Mobile R1"),
    (3, "S", "supplier", None, "carrier", "usage", "0.002", "USD", "India"),
    (4, "R2", "customer", 0, "R1", "usage", "0.008", "EUR", "Mobile R2"),
    (4, "R1", "reseller", 1, "carrier", "usage", "0.006", "EUR", "Mobile R1"),
    (4, "S", "supplier", None, "carrier", "usage", "0.004", "EUR", "India"),
    (5, "X", "customer", 0, "carrier", "usage", "0.000", "EUR", "UK"),
    (5, "C", "customer", 0, "carrier", "did", "0.001", "EUR", None),
    (6, "C", "customer", 0, "R2", "usage", "0.010", "EUR", "Mobile C"),
    (6, "R2", "reseller", 1, "R1", "usage", "0.009", "USD", "Mobile R2"),
    (6, "R1", "reseller", 2, "carrier", "usage", "0.006", "EUR", "Mobile R1"),
    (6, "S", "supplier", None, "carrier", "usage", "0.004", "EUR", "India"),
]


@dataclass(frozen=True)
class Account:  # what functions.api.scope reads of an account
    tenant: str
    account: str
    kind: str
    parent: str | None
    prepaid: bool = False
    credit_limit_micro: int = 0
    currency: str = "EUR"
    status: str = "active"
    status_reason: str | None = None


ACCOUNTS = [
    Account("t", "R1", "reseller", None),
    Account("t", "R2", "reseller", "R1"),
    Account("t", "C", "customer", "R2"),
    Account("t", "X", "customer", None),
    Account("t", "S", "supplier", None),
]


def money(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def tables() -> tuple[pa.Table, pa.Table]:
    rated = table_schema("cdrs_rated")
    lines = sorted(CALLS)
    calls = {
        "line": lines,
        "call_id": [f"call-{n}" for n in lines],
        "start_time": [START + dt.timedelta(minutes=n) for n in lines],
        "caller": ["+4930100" for _ in lines],
        "callee": [f"91701234500{n}" for n in lines],
        "billsec": [CALLS[n][1] for n in lines],
        "customer": [CALLS[n][0] for n in lines],
        "supplier": ["S" for _ in lines],
        "supplier_status": ["rated" for _ in lines],
        "supplier_amount": [money(CALLS[n][2]) for n in lines],
        "supplier_currency": [CALLS[n][3] for n in lines],
        "margin": [money(CALLS[n][4]) for n in lines],
    }
    rated_table = pa.table({k: pa.array(v, rated.field(k).type) for k, v in calls.items()})
    charged = table_schema("cdrs_charges")
    names = ["line", "account", "role", "level", "counterparty", "component", "amount"]
    names += ["currency", "destination"]
    columns = {name: [row[i] for row in CHARGES] for i, name in enumerate(names)}
    columns["amount"] = [money(a) for a in columns["amount"]]
    columns["status"] = ["rated" for _ in CHARGES]
    columns["billed_seconds"] = [CALLS[row[0]][1] for row in CHARGES]
    # the role as the rate service writes it: dictionary-encoded
    charges = pa.table({k: pa.array(v, charged.field(k).type) for k, v in columns.items()})
    role = charges.column("role").combine_chunks().dictionary_encode()
    charges = charges.set_column(charges.schema.get_field_index("role"), "role", role)
    return rated_table, charges


def caller(role: str, account: str | None) -> Caller:
    return Caller("t", "0123456789abcdef", role, account)


def items(view: usage.View, group_by: str = "destination") -> list[dict]:
    rated, charges = tables()
    rows = usage.calls_in_view(view, "2024-05-01", "f1", rated, charges)
    return usage.usage_items(usage.usage_totals(rows, view, group_by), view)


def test_the_top_reseller_earns_on_its_whole_subtree_in_one_currency_only():
    view = usage.view_of(caller("reseller-admin", "R1"), ACCOUNTS)
    assert view == usage.View("R1", frozenset({"R1", "R2", "C"}), True, False)
    assert items(view) == [
        {
            "group": "Mobile R1",
            "currency": "EUR",
            "attempts": 4,
            "answered": 4,
            "minutes": "4.5000",
            "asr": 100.0,
            "acd": 67.5,
            "amount": "0.021000",
            # R2 paid it 0.008 + 0.004 + 0.008 (its own call too); 0.009 USD is not a
            # difference of one currency
            "margin": "0.005000",
        }
    ]


def test_a_reseller_below_sees_its_price_per_currency_and_no_margin_on_its_own_call():
    view = usage.view_of(caller("read-only", "R2"), ACCOUNTS)
    by_account = {(i["group"], i["currency"]): i for i in items(view, "account")}
    assert {k: (i["attempts"], i["amount"], i["margin"]) for k, i in by_account.items()} == {
        ("C", "EUR"): (2, "0.012000", "0.004000"),  # C paid 0.010 and 0.005 + 0.001
        ("C", "USD"): (1, "0.009000", None),
        ("R2", "EUR"): (1, "0.008000", None),
    }
    rated, charges = tables()
    rows = usage.sort_calls(usage.calls_in_view(view, "2024-05-01", "f1", rated, charges))
    cdrs = usage.cdr_table(rows, view).to_pylist()
    assert [(c["call_id"], c["customer_amount"], c["margin"]) for c in cdrs] == [
        ("call-2", "0.010000", "0.002000"),
        ("call-3", "0.006000", "0.002000"),
        ("call-4", None, None),
        ("call-6", "0.010000", None),
    ]
    assert all("supplier" not in c and "cost" not in c for c in cdrs)
    assert cdrs[0]["destination"] == "Mobile R2"  # its own deck's name for the number


def test_a_customer_pays_usage_and_surcharge_and_no_did_here():
    view = usage.view_of(caller("customer", "C"), ACCOUNTS)
    assert view.margin is False and view.cost is False
    assert [(i["group"], i["attempts"], i["amount"]) for i in items(view)] == [
        ("Mobile C", 3, "0.026000")
    ]


def test_the_carrier_sees_the_top_of_each_chain_and_costs_in_the_items_currency():
    view = usage.view_of(caller("finance", None), ACCOUNTS)
    found = {(i["group"], i["currency"]): i for i in items(view, "day")}
    assert found == {
        ("2024-05-01", "EUR"): {
            "group": "2024-05-01",
            "currency": "EUR",
            "attempts": 5,
            "answered": 4,
            "minutes": "4.5000",
            "asr": 80.0,
            "acd": 67.5,
            "amount": "0.021000",  # R1's 0.006 + 0.003 + 0.006 + 0.006 and X's 0; no DID
            "margin": "0.006000",  # the lake's margins (null for the USD-bought call)
            "cost": "0.012000",  # 0.004 x 3 in EUR; the USD cost is not added to EUR
        }
    }
    read_only = usage.view_of(caller("read-only", None), ACCOUNTS)
    seen = items(read_only)
    assert [(i["group"], i["amount"]) for i in seen] == [
        ("Mobile R1", "0.021000"),
        ("UK", "0.000000"),
    ]
    assert all("cost" not in i and "margin" not in i for i in seen)


def test_narrowing_keeps_a_visible_subtree_and_refuses_the_rest():
    view = usage.view_of(caller("tenant-admin", None), ACCOUNTS, "R2")
    assert view.accounts == {"R2", "C"} and view.account is None
    supplier = usage.view_of(caller("tenant-admin", None), ACCOUNTS, "S")
    assert supplier.supplier == "S"
    for who, narrow in [(caller("reseller-admin", "R2"), "R1"), (caller("customer", "C"), "X")]:
        with pytest.raises(ApiError) as refused:
            usage.view_of(who, ACCOUNTS, narrow)
        assert refused.value.status == 404


def test_ranges_numbers_and_cursors_are_checked():
    assert usage.parse_range({"from": "2024-05-01", "to": "2024-07-31"}) == (
        dt.date(2024, 5, 1),
        dt.date(2024, 7, 31),
    )
    for query, field in [
        ({"from": "2024-05-01"}, "to"),
        ({"from": "2024-05-02", "to": "2024-05-01"}, "to"),
        ({"from": "2024-05-01", "to": "2024-08-01"}, "to"),
    ]:
        with pytest.raises(QueryError) as bad:
            usage.parse_range(query)
        assert bad.value.field == field
    assert usage.parse_number({"number": "44"}) == "44"
    for number in ("", "+44", "4" * 21, "44 20"):
        with pytest.raises(QueryError):
            usage.parse_number({"number": number})
    rated, charges = tables()
    view = usage.view_of(caller("tenant-admin", None), ACCOUNTS)
    rows = usage.sort_calls(usage.calls_in_view(view, "2024-05-01", "f1", rated, charges))
    position = usage.decode_position(usage.encode_position(rows, 1))
    assert position[0] == "2024-05-01"
    after = usage.after_position(rows, *position[1:])
    assert after["call_id"].to_pylist() == ["call-4", "call-5", "call-6"]
    for text in ("c1:x:f:1", "c2:1:f:1", "c1:99999999999999999999:f:1"):
        with pytest.raises(QueryError):
            usage.decode_position(text)
