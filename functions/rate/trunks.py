"""The switch's view to accounts: which customer sent a call and which supplier carried it.

Real switches write trunks, gateways and peer IPs, not our account ids. A switch's
`TrunkPlan` maps them, per direction: ingress (the trunk or IP a call came in on) to a
customer, egress (the one it went out on) to a supplier. For a direction the switch has
mappings for, a CDR's account is the mapping of its trunk name, else of its IP, else none
(null: the call is valid but cannot be charged to anyone, `unknown_account`). For a direction
without mappings, the CDR names the account itself, as before trunks existed: the switch's
customer/supplier field (e.g. an accountcode), and for the supplier the switch's default
supplier where the CDR names none.

Applied at rating time to the normalised table, which keeps the trunk columns, so a mapping
added after ingest applies when the file is re-rated. A table normalised before those columns
existed keeps the accounts its CDRs named.

An ingress mapping may also name the customer's rate plan (the product the trunk sells,
functions.rate.plans): `resolve_parties` then adds a `plan` column, null where the trunk names
none. Switches without plan mappings get no such column, so their files rate as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True, slots=True)
class TrunkPlan:
    """One switch's trunk → account maps and the CDR fields used where it has none."""

    ingress: Mapping[str, str] = field(default_factory=dict)  # trunk name or IP → customer
    egress: Mapping[str, str] = field(default_factory=dict)  # trunk name or IP → supplier
    customer_field: str = "customer"
    supplier_field: str = "supplier"
    default_supplier: str | None = None
    ingress_plans: Mapping[str, str] = field(default_factory=dict)  # trunk or IP → rate plan

    def __post_init__(self) -> None:
        # Read-only copies: a plan cached by a warm rater cannot be changed under it.
        object.__setattr__(self, "ingress", MappingProxyType(dict(self.ingress)))
        object.__setattr__(self, "egress", MappingProxyType(dict(self.egress)))
        object.__setattr__(self, "ingress_plans", MappingProxyType(dict(self.ingress_plans)))


def resolve_parties(cdrs: pa.Table, plan: TrunkPlan) -> pa.Table:
    """`cdrs` with `customer` and `supplier` set to account ids (null where none applies).

    Every other column, and the rows and their order, are as given.
    """
    if plan.ingress and _has_trunks(cdrs, "ingress"):
        customer = _mapped(cdrs, "ingress", plan.ingress)
    else:
        customer = _own_field(cdrs, plan.customer_field, "customer")
    if plan.egress and _has_trunks(cdrs, "egress"):
        supplier = _mapped(cdrs, "egress", plan.egress)
    else:
        supplier = _own_field(cdrs, plan.supplier_field, "supplier")
        if plan.default_supplier:
            supplier = pc.if_else(
                pc.fill_null(pc.equal(supplier, ""), True), plan.default_supplier, supplier
            )
    for name, column in (("customer", customer), ("supplier", supplier)):
        cdrs = cdrs.set_column(cdrs.schema.get_field_index(name), name, column)
    if plan.ingress_plans and _has_trunks(cdrs, "ingress"):
        chosen = _mapped_plan(cdrs, plan)
        if "plan" in cdrs.column_names:
            cdrs = cdrs.set_column(cdrs.schema.get_field_index("plan"), "plan", chosen)
        else:
            cdrs = cdrs.append_column("plan", chosen)
    return cdrs


def _has_trunks(cdrs: pa.Table, direction: str) -> bool:
    """Whether the table keeps the direction's trunk columns. A file normalised before they
    existed cannot be mapped, and keeps the accounts its CDRs named when it was first rated:
    re-rating history after a mapping is added must not un-charge it."""
    names = cdrs.column_names
    return f"{direction}_trunk" in names or f"{direction}_ip" in names


def _mapped(cdrs: pa.Table, direction: str, mapping: Mapping[str, str]):
    """The account (or plan) of each CDR's trunk name, else of its IP, else null."""
    keys = pa.array(list(mapping), pa.string())
    accounts = pa.array(list(mapping.values()), pa.string())
    found = None
    for column in (f"{direction}_trunk", f"{direction}_ip"):
        if column in cdrs.column_names:
            account = pc.take(accounts, pc.index_in(cdrs.column(column), value_set=keys))
            found = account if found is None else pc.coalesce(found, account)
    return found


def _mapped_plan(cdrs: pa.Table, plan: TrunkPlan):
    """The plan of the mapping that gave each CDR its customer: its trunk name's if that is
    mapped, else its IP's (a trunk mapped without a plan does not take its IP's plan)."""
    keys = pa.array(list(plan.ingress), pa.string())
    plans = pa.array([plan.ingress_plans.get(k) for k in plan.ingress], pa.string())
    found, by_name = None, None
    for column in ("ingress_trunk", "ingress_ip"):
        if column not in cdrs.column_names:
            continue
        index = pc.index_in(cdrs.column(column), value_set=keys)
        chosen = pc.take(plans, index)
        if found is None:
            found, by_name = chosen, pc.is_valid(index)
        else:  # the IP's mapping, where the trunk name is not mapped
            found = pc.if_else(by_name, found, chosen)
    return found


def _own_field(cdrs: pa.Table, field_name: str, role: str):
    if field_name not in cdrs.column_names:
        raise ValueError(f"switch names the {role} by {field_name!r}, not a CDR field")
    column = cdrs.column(field_name)
    if not pa.types.is_string(column.type):
        raise ValueError(f"switch names the {role} by {field_name!r}, which is not text")
    # Built here, not at import: an Arrow scalar makes pyarrow look for pandas (a cold start).
    return pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)
