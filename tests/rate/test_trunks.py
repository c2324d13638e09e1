"""Resolving a switch's trunks to accounts: by trunk name, then IP, else no account.

New in issue 8 §4 (no resolver existed): every test fails on the code before it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.rate.trunks import TrunkPlan, resolve_parties
from functions.shared.cdr import CDR_SCHEMA

T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)


def cdrs(rows: list[dict]) -> pa.Table:
    base = {"line": 1, "call_id": "c", "callee": "44", "start_time": T0, "billsec": 0}
    base["disposition"] = "NO_ANSWER"
    rows = [base | {"line": i + 2, "call_id": f"c{i}"} | row for i, row in enumerate(rows)]
    return pa.Table.from_pylist(rows, schema=CDR_SCHEMA)


PLAN = TrunkPlan(
    ingress={"carrierA": "acme", "198.51.100.4": "direct"},
    egress={"vendorB": "bt", "203.0.113.7": "tata"},
)


def test_trunk_name_first_then_ip_else_no_account():
    table = cdrs(
        [
            # by name, though the IP is mapped to another account
            {"ingress_trunk": "carrierA", "ingress_ip": "198.51.100.4", "egress_trunk": "vendorB"},
            # the name is unknown: the IP decides
            {"ingress_trunk": "carrierX", "ingress_ip": "198.51.100.4", "egress_ip": "203.0.113.7"},
            # nothing mapped: no account, whatever the CDR's own fields say
            {"ingress_trunk": "carrierX", "customer": "acme", "supplier": "bt"},
            {},
        ]
    )
    out = resolve_parties(table, PLAN)
    assert out.column("customer").to_pylist() == ["acme", "direct", None, None]
    assert out.column("supplier").to_pylist() == ["bt", "tata", None, None]


def test_a_direction_without_mappings_keeps_the_cdrs_own_field_and_default_supplier():
    table = cdrs(
        [
            {"customer": "acme", "ingress_trunk": "carrierA", "supplier": None},
            {"customer": "direct", "egress_trunk": "vendorB", "supplier": "tata"},
            {"caller": "acct9", "customer": "", "supplier": ""},
        ]
    )
    plan = TrunkPlan(egress={"vendorB": "bt"}, default_supplier="tata")
    out = resolve_parties(table, plan)
    assert out.column("customer").to_pylist() == ["acme", "direct", None]
    assert out.column("supplier").to_pylist() == [None, "bt", None]  # mapped: no default
    own = resolve_parties(table, TrunkPlan(customer_field="caller", default_supplier="tata"))
    assert own.column("customer").to_pylist() == [None, None, "acct9"]
    assert own.column("supplier").to_pylist() == ["tata", "tata", "tata"]


def test_a_table_normalised_before_trunks_were_kept_keeps_the_accounts_its_cdrs_named():
    """Re-rating a day ingested before trunk columns existed, after mappings were added,
    must not turn its charged calls into calls of no account."""
    old = cdrs([{"customer": "acme", "supplier": None}]).drop_columns(
        ["ingress_trunk", "ingress_ip", "egress_trunk", "egress_ip", "dialled", "egress_leg"]
    )
    plan = TrunkPlan(ingress={"carrierA": "x"}, egress={"vendorB": "y"}, default_supplier="bt")
    out = resolve_parties(old, plan)
    assert out.column_names == old.column_names
    assert out.column("customer").to_pylist() == ["acme"]
    assert out.column("supplier").to_pylist() == ["bt"]
    # A table that has the columns is mapped, even where a row's trunk is empty.
    assert resolve_parties(cdrs([{"customer": "acme"}]), plan).column("customer").to_pylist() == [
        None
    ]


def test_a_field_that_is_not_a_cdr_text_field_is_refused_naming_it():
    with pytest.raises(ValueError, match="customer by 'accountcode'"):
        resolve_parties(cdrs([{}]), TrunkPlan(customer_field="accountcode"))
    with pytest.raises(ValueError, match="supplier by 'billsec', which is not text"):
        resolve_parties(cdrs([{}]), TrunkPlan(supplier_field="billsec"))


def test_the_plan_cannot_be_changed_under_a_rater_that_caches_it():
    mapping = {"carrierA": "acme"}
    plan = TrunkPlan(ingress=mapping)
    mapping["carrierA"] = "other"
    assert plan.ingress["carrierA"] == "acme"
    with pytest.raises(TypeError):
        plan.ingress["carrierB"] = "x"


names = st.sampled_from(["carrierA", "carrierB", "vendorB", "x", ""])
ips = st.sampled_from(["198.51.100.4", "203.0.113.7", "10.0.0.1", ""])
rows = st.lists(
    st.fixed_dictionaries(
        {
            "ingress_trunk": st.one_of(st.none(), names),
            "ingress_ip": st.one_of(st.none(), ips),
            "egress_trunk": st.one_of(st.none(), names),
            "egress_ip": st.one_of(st.none(), ips),
            "customer": st.one_of(st.none(), st.sampled_from(["acme", "direct", ""])),
            "supplier": st.one_of(st.none(), st.sampled_from(["bt", ""])),
        }
    ),
    max_size=40,
)
maps = st.dictionaries(st.one_of(names, ips).filter(bool), st.sampled_from(["a1", "a2"]))


@settings(max_examples=150)
@given(rows, maps, maps, st.integers(1, 4))
def test_rows_are_never_dropped_or_reordered_and_each_gets_its_mapping(
    table_rows, ingress, egress, chunks
):
    table = cdrs(table_rows)
    if table.num_rows:  # as read from Parquet: several chunks
        size = -(-table.num_rows // chunks)
        table = pa.Table.from_batches(table.to_batches(max_chunksize=size))
    out = resolve_parties(table, TrunkPlan(ingress=ingress, egress=egress, default_supplier="d"))
    assert out.num_rows == table.num_rows
    untouched = [c for c in table.column_names if c not in ("customer", "supplier")]
    assert out.select(untouched).equals(table.select(untouched))

    def expected(row, direction, mapping, own, default):
        if mapping:
            trunk, ip = row[f"{direction}_trunk"], row[f"{direction}_ip"]
            return mapping.get(trunk) or mapping.get(ip)
        return own or default

    for row, customer, supplier in zip(
        table_rows, out["customer"].to_pylist(), out["supplier"].to_pylist(), strict=True
    ):
        assert customer == expected(row, "ingress", ingress, row["customer"], None)
        assert supplier == expected(row, "egress", egress, row["supplier"], "d")
