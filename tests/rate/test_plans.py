"""Rate plans: choosing each call's plan, and pricing every party by the plan's decks."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.rate.parties import CHARGE_COLUMNS, Account, Parties, rate_parties
from functions.rate.plans import check_caller_prefix, choose_plans
from functions.rate.rating import DeckIndex
from functions.rate.trunks import TrunkPlan, resolve_parties
from functions.shared.cdr import CDR_SCHEMA
from functions.shared.money import Rounding, RoundingMethod
from tests.rate.reference import Entry, deck_table, rate_call

D = Decimal
T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)


def plans_of(customers, callers, trunk, rules) -> list[str]:
    labels, codes = choose_plans(
        pa.array(customers, pa.string()),
        pa.array(callers, pa.string()),
        None if trunk is None else pa.array(trunk, pa.string()),
        rules,
    )
    return [labels[c] for c in codes]


def test_trunk_beats_caller_rule_beats_default():
    rules = {"acme": {"33": "eea", "336": "mobile", "1": "nanp"}}
    got = plans_of(
        ["acme", "acme", "acme", "acme", "acme", "other", None],
        ["+33612345678", "0033145", "33612", "447700", "33612", "33612", "33612"],
        [None, None, "cli", None, None, None, "cli"],
        rules,
    )
    # 336 is longer than 33; the trunk's plan wins over any rule; no rule: default; rules
    # are the calling account's own; a call without an account still takes its trunk's plan.
    assert got == ["mobile", "eea", "cli", "default", "mobile", "default", "cli"]


def test_no_rules_no_trunk_plans_is_all_default():
    assert plans_of(["a", "b"], ["33", None], None, {}) == ["default", "default"]
    assert plans_of(["a"], [None], None, {"a": {"33": "eea"}}) == ["default"]


def test_caller_prefixes_are_checked_and_read_in_international_form():
    assert [check_caller_prefix(p) for p in ("+33", "0049", "1 242", "1-8")] == [
        "33",
        "49",
        "1242",
        "18",
    ]
    for bad in ("", "+", "3a", "1" * 16):
        with pytest.raises(ValueError, match="invalid caller prefix"):
            check_caller_prefix(bad)


def test_resolve_parties_adds_the_trunk_plan_only_where_plans_are_mapped():
    table = pa.table(
        {
            "customer": pa.array([None, None, None], pa.string()),
            "supplier": pa.array(["s", "s", "s"], pa.string()),
            "ingress_trunk": pa.array(["prem", "eco", "x"], pa.string()),
        }
    )
    plain = resolve_parties(table, TrunkPlan(ingress={"prem": "acme", "eco": "acme"}))
    assert "plan" not in plain.column_names  # switches without plan mappings: as before
    mapped = resolve_parties(
        table, TrunkPlan(ingress={"prem": "acme", "eco": "acme"}, ingress_plans={"prem": "cli"})
    )
    assert mapped.column("plan").to_pylist() == ["cli", None, None]
    assert mapped.column("customer").to_pylist() == ["acme", "acme", None]


def test_the_plan_follows_the_mapping_that_named_the_customer():
    """A trunk name mapped without a plan keeps it planless even if its IP names one."""
    table = pa.table(
        {
            "customer": pa.array([None] * 3, pa.string()),
            "supplier": pa.array(["s"] * 3, pa.string()),
            "ingress_trunk": pa.array(["eco", "other", "prem"], pa.string()),
            "ingress_ip": pa.array(["10.0.0.1", "10.0.0.1", "10.0.0.2"], pa.string()),
        }
    )
    plan = TrunkPlan(
        ingress={"eco": "acme", "prem": "acme", "10.0.0.1": "acme"},
        ingress_plans={"10.0.0.1": "ncli", "prem": "cli"},
    )
    out = resolve_parties(table, plan)
    assert out.column("plan").to_pylist() == [None, "ncli", "cli"]


# --- pricing: a customer with cli and ncli plans under a reseller with a default deck only ---

ENTRIES = {
    ("acme", "default"): [Entry("44", D("0.0123"), destination="UK"), Entry("447", D("0.0456"))],
    ("acme", "cli"): [Entry("44", D("0.0201"), D("0.0107"), 30, 6, destination="UK CLI")],
    ("acme", "ncli"): [Entry("44", D("0.00733"), first=60, step=60, destination="UK NCLI")],
    ("resellco", "default"): [Entry("44", D("0.0052"), first=6, step=6), Entry("447", D("0.031"))],
    ("resellco", "eea"): [Entry("44", D("0.0049"))],  # a plan acme has no deck for
    ("tata", "default"): [Entry("44", D("0.0041"))],
    ("tata", "cli"): [Entry("44", D("9.99"))],  # never used: suppliers keep their default
}
ROUNDING = {"acme": Rounding(4, RoundingMethod.UP), "resellco": Rounding(6), "tata": Rounding(5)}
RULES = {"acme": {"33": "ncli", "336": "cli", "49": "eea"}}


def plan_parties() -> Parties:
    accounts = {
        "acme": Account("acme", "customer", "resellco", rounding=ROUNDING["acme"]),
        "resellco": Account("resellco", "reseller", rounding=ROUNDING["resellco"]),
        "tata": Account("tata", "supplier", rounding=ROUNDING["tata"]),
    }
    built = {key: DeckIndex.build(deck_table(e), "USD") for key, e in ENTRIES.items()}
    return Parties(
        accounts,
        {a: d for (a, p), d in built.items() if p == "default"},
        plan_decks={k: d for k, d in built.items() if k[1] != "default"},
        plan_rules=RULES,
    )


def expected_plan(caller: str, trunk: str | None) -> str:
    if trunk is not None:
        return trunk
    ruled = [p for p in RULES["acme"] if caller.startswith(p)]
    return RULES["acme"][max(ruled, key=len)] if ruled else "default"


CALL = st.tuples(
    st.sampled_from(["33145", "336123", "4930", "1212", "+336"]),  # caller
    st.sampled_from([None, None, "cli", "ncli", "eea"]),  # the ingress trunk's plan
    st.sampled_from(["4420712345", "447700900123", "4479", "331"]),  # callee
    st.integers(0, 400),  # billsec
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(CALL, min_size=1, max_size=12))
def test_each_party_is_priced_by_its_deck_of_the_calls_plan_to_the_micro_unit(calls):
    table = pa.Table.from_pylist(
        [
            {
                "line": i + 2,
                "call_id": f"c{i}",
                "caller": caller,
                "callee": callee,
                "start_time": T0,
                "billsec": billsec,
                "disposition": "ANSWERED" if billsec else "NO_ANSWER",
                "customer": "acme",
                "supplier": "tata",
            }
            for i, (caller, _, callee, billsec) in enumerate(calls)
        ],
        schema=CDR_SCHEMA,
    ).append_column("plan", pa.array([trunk for _, trunk, _, _ in calls], pa.string()))
    result = rate_parties(table, plan_parties(), "f1")
    assert result.charges.column_names == list(CHARGE_COLUMNS)
    got = {(r["call_id"], r["account"]): r for r in result.charges.to_pylist()}
    t = int(T0.timestamp())
    for i, (caller, trunk, callee, billsec) in enumerate(calls):
        plan = expected_plan(caller.lstrip("+"), trunk)
        # The reseller has no deck of acme's plans but its default; the supplier its default.
        used = {
            "acme": plan,
            "resellco": plan if ("resellco", plan) in ENTRIES else "default",
            "tata": "default",
        }
        for account, deck_plan in used.items():
            row = got[(f"c{i}", account)]
            assert row["plan"] == deck_plan
            entries = ENTRIES.get((account, deck_plan))
            if entries is None:  # acme has no eea deck: unrated, never priced on another plan
                assert (row["status"], row["reason"], row["amount"]) == ("unrated", "no_deck", None)
                continue
            rounding = ROUNDING[account]
            status, reason, secs, amount = rate_call(
                entries, callee, t, billsec, rounding.decimals, rounding.method.value
            )
            assert (row["status"], row["reason"] or "") == (status, reason)
            if status == "rated":
                assert (row["billed_seconds"], row["amount"]) == (secs, amount)
        assert result.rated.column("plan")[i].as_py() == plan


def test_without_plans_every_charge_is_on_default():
    parties = plan_parties()
    plain = Parties(parties.accounts, parties.decks)  # no rules, no plan decks
    table = pa.Table.from_pylist(
        [
            {
                "line": 2,
                "call_id": "c0",
                "caller": "336",
                "callee": "4420",
                "start_time": T0,
                "billsec": 60,
                "disposition": "ANSWERED",
                "customer": "acme",
                "supplier": "tata",
            }
        ],
        schema=CDR_SCHEMA,
    )
    result = rate_parties(table, plain)
    assert set(result.charges.column("plan").to_pylist()) == {"default"}
    assert result.rated.column("plan").to_pylist() == ["default"]
    assert result.rated.column("customer_amount").to_pylist() == [D("0.0123")]


def test_a_did_charge_has_no_plan():
    """A DID's inbound minutes are priced by the number's rate, not by any plan's deck."""
    from functions.rate.recurring import Did

    accounts = {"acme": Account("acme", "customer")}
    dids = (Did("442071234567", "acme", 2_000_000, 0, 200_000, T0.date()),)
    table = pa.Table.from_pylist(
        [
            {
                "line": 2,
                "call_id": "in1",
                "caller": "336",
                "callee": "442071234567",
                "start_time": T0,
                "billsec": 61,
                "disposition": "ANSWERED",
                "customer": None,
                "supplier": None,
            }
        ],
        schema=CDR_SCHEMA,
    )
    parties = Parties(accounts, {}, dids=dids, plan_rules=RULES)
    charges = rate_parties(table, parties).charges.to_pylist()
    did = [r for r in charges if r["component"] == "did"]
    assert [(r["account"], r["plan"], r["amount"]) for r in did] == [("acme", None, D("0.002033"))]
