"""Rate plans in the accounts table (moto): per-plan deck heads on one version sequence, the
caller rules of an account, and trunks naming a plan."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import pytest

from functions.store import NotFoundError, accounts


def _version(account: str, version: int, base: int | None, plan: str = "default"):
    """A version record as `deck upload --plan` commits it."""
    return accounts.DeckVersion(
        tenant="acme",
        account=account,
        version=version,
        mode="full",
        key=f"decks/tenant=acme/account={account}/v{version}.parquet",
        upload_key=None,
        currency="USD",
        effective=1_714_521_600,
        rows=3,
        skipped=0,
        timeline_rows=3,
        effective_min=None,
        effective_max=None,
        source=f"{plan}.csv",
        sha256="f" * 64,
        timeline_sha256=f"{plan}{version}",
        base=base,
        plan=plan,
    )


@pytest.fixture
def cust(aws):
    accounts.create_tenant("acme")
    accounts.create_account("acme", "cust", kind="customer")
    return "cust"


def test_each_plan_has_its_own_head_on_the_accounts_one_sequence(cust):
    accounts.commit_deck_version(_version(cust, 1, None))
    accounts.commit_deck_version(_version(cust, 2, None, "cli"))
    accounts.commit_deck_version(_version(cust, 3, 2, "cli"))
    accounts.commit_deck_version(_version(cust, 4, None, "ncli"))
    account = accounts.get_account("acme", cust)
    assert account.deck_version == 1  # `default` stays where it always was
    assert account.plan_versions == {"cli": 3, "ncli": 4}
    assert accounts.active_deck("acme", cust).version == 1
    assert accounts.active_deck("acme", cust, "cli").version == 3
    assert accounts.active_deck("acme", cust, "eea") is None
    assert [v.version for v in accounts.list_deck_versions("acme", cust, "cli")] == [2, 3]
    assert [v.plan for v in accounts.list_deck_versions("acme", cust)] == [
        "default",
        "cli",
        "cli",
        "ncli",
    ]
    # A version recorded before plans (no plan attribute) reads as `default`.
    assert accounts.get_deck_version("acme", cust, 1).plan == "default"


def test_a_plan_head_moves_only_from_its_base(cust):
    accounts.commit_deck_version(_version(cust, 1, None, "cli"))
    with pytest.raises(accounts.HeadMovedError):
        accounts.commit_deck_version(_version(cust, 2, None, "cli"))
    # The default plan's head is not the cli head: its first version commits from None.
    accounts.commit_deck_version(_version(cust, 3, None))
    retried = _version(cust, 1, None, "cli")
    assert accounts.commit_deck_version(retried) == dataclasses.replace(
        retried, uploaded_at=accounts.get_deck_version("acme", cust, 1).uploaded_at
    )
    assert accounts.get_account("acme", cust).plan_versions == {"cli": 1}


def test_concurrent_uploads_of_two_plans_both_land(cust, atomic_items):
    """Two plans' first uploads race: each has its own head, so neither is told to retry."""

    def upload(plan: str):
        version = accounts.reserve_deck_version("acme", cust)
        return accounts.commit_deck_version(_version(cust, version, None, plan))

    with ThreadPoolExecutor(max_workers=2) as pool:
        recorded = list(pool.map(upload, ["cli", "ncli"]))
    assert sorted(r.version for r in recorded) == [1, 2]
    assert accounts.get_account("acme", cust).plan_versions == {r.plan: r.version for r in recorded}


def test_caller_rules_are_set_moved_listed_and_removed(cust):
    assert accounts.set_plan_rule("acme", cust, "eea", ["+33", "0049", "3"]) == {
        "3": "eea",
        "33": "eea",
        "49": "eea",
    }
    rules = accounts.set_plan_rule("acme", cust, "intl", ["33"])  # moves 33
    assert rules == {"3": "eea", "33": "intl", "49": "eea"}
    assert accounts.list_accounts("acme")[0].plan_rules == rules
    assert accounts.remove_plan_rule("acme", cust, ["3", "49"]) == {"33": "intl"}
    with pytest.raises(NotFoundError, match="no plan rule for caller prefix 49"):
        accounts.remove_plan_rule("acme", cust, ["49"])
    with pytest.raises(ValueError, match="invalid caller prefix '3x'"):
        accounts.set_plan_rule("acme", cust, "eea", ["3x"])
    with pytest.raises(ValueError, match="invalid plan id"):
        accounts.set_plan_rule("acme", cust, "no plan", ["33"])
    accounts.create_account("acme", "tata", kind="supplier")
    with pytest.raises(ValueError, match="is a supplier"):
        accounts.set_plan_rule("acme", "tata", "eea", ["33"])
    with pytest.raises(NotFoundError, match="unknown account 'ghost'"):
        accounts.set_plan_rule("acme", "ghost", "eea", ["33"])


def test_an_ingress_trunk_names_a_plan_in_the_switch_trunk_plan(cust):
    accounts.create_switch("acme", "sbc", format="generic")
    accounts.map_trunk("acme", "sbc", "ingress", "premium", cust, plan="cli")
    accounts.map_trunk("acme", "sbc", "ingress", "plain", cust)
    plan = accounts.get_trunk_plan("acme", "sbc")
    assert dict(plan.ingress) == {"premium": cust, "plain": cust}
    assert dict(plan.ingress_plans) == {"premium": "cli"}
    assert accounts.list_trunks("acme", "sbc")[1].plan == "cli"
    accounts.create_account("acme", "tata", kind="supplier")
    with pytest.raises(ValueError, match="chosen by the ingress trunk"):
        accounts.map_trunk("acme", "sbc", "egress", "out", "tata", plan="cli")
