"""Tenants, switches, accounts and deck versions against moto."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from functions import store
from functions.shared.settings import settings
from functions.store import ConflictError, NotFoundError, accounts


def _deck(tenant: str, account: str, version: int, key: str = "", sha: str = "s") -> None:
    accounts.put_deck_version(
        tenant,
        account,
        version,
        key=key or f"decks/tenant={tenant}/account={account}/v{version}.parquet",
        currency="USD",
        rows=10,
        skipped=0,
        source="deck.csv",
        sha256=sha,
    )


def test_tables_have_the_architecture_key_schema(aws):
    dynamodb = store.client("dynamodb")
    names = settings()
    for table in (names.accounts_table, names.ledger_table, names.files_table):
        described = dynamodb.describe_table(TableName=table)["Table"]
        assert {(k["AttributeName"], k["KeyType"]) for k in described["KeySchema"]} == {
            ("pk", "HASH"),
            ("sk", "RANGE"),
        }
        assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_switch_and_account_inherit_the_tenant_defaults(aws):
    accounts.create_tenant("acme", currency="EUR", timezone="Europe/Paris")
    switch = accounts.create_switch("acme", "sbc-1", format="freeswitch-csv")
    account = accounts.create_account("acme", "cust", kind="customer")
    assert switch == accounts.Switch(
        "acme", "sbc-1", "freeswitch-csv", "Europe/Paris", "customer", "supplier"
    )
    assert accounts.get_switch("acme", "sbc-1") == switch
    assert account.currency == "EUR"
    assert (account.status, account.prepaid, account.deck_version) == ("active", False, None)
    assert accounts.get_account("acme", "cust") == account


def test_switch_keeps_its_own_zone_and_party_fields(aws):
    accounts.create_tenant("acme")
    accounts.create_switch(
        "acme", "vos", format="vos3000", timezone="Asia/Shanghai",
        customer_field="callerip", supplier_field="calleeip",
    )  # fmt: skip
    switch = accounts.list_switches("acme")[0]
    assert (switch.timezone, switch.customer_field, switch.supplier_field) == (
        "Asia/Shanghai",
        "callerip",
        "calleeip",
    )


def test_credit_limit_round_trips_exactly_beyond_float_precision(aws):
    accounts.create_tenant("acme")
    limit = 2**62 + 7
    accounts.create_account("acme", "big", kind="customer", credit_limit_micro=limit)
    assert accounts.get_account("acme", "big").credit_limit_micro == limit


def test_duplicates_are_conflicts_and_unknowns_are_named(aws):
    accounts.create_tenant("acme")
    with pytest.raises(ConflictError, match="tenant 'acme' already exists"):
        accounts.create_tenant("acme")
    with pytest.raises(NotFoundError, match="unknown tenant 'nope'"):
        accounts.create_switch("nope", "sw", format="generic")
    with pytest.raises(NotFoundError, match="unknown switch 'sw'"):
        accounts.get_switch("acme", "sw")
    with pytest.raises(NotFoundError, match="unknown account 'cust'"):
        accounts.get_account("acme", "cust")
    accounts.create_account("acme", "cust", kind="customer")
    with pytest.raises(ConflictError, match="account 'cust' already exists"):
        accounts.create_account("acme", "cust", kind="customer")
    with pytest.raises(ValueError, match="invalid account kind"):
        accounts.create_account("acme", "x", kind="agent")


def test_parent_must_be_an_existing_reseller_of_the_same_tenant(aws):
    accounts.create_tenant("acme")
    accounts.create_tenant("globex")
    accounts.create_account("acme", "res", kind="reseller")
    accounts.create_account("acme", "plain", kind="customer")
    accounts.create_account("globex", "foreign-res", kind="reseller")
    child = accounts.create_account("acme", "child", kind="customer", parent="res")
    assert child.parent == "res"
    with pytest.raises(ValueError, match="parent 'plain' is a customer, not a reseller"):
        accounts.create_account("acme", "c2", kind="customer", parent="plain")
    with pytest.raises(NotFoundError, match="unknown parent account 'foreign-res'"):
        accounts.create_account("acme", "c3", kind="customer", parent="foreign-res")


def test_same_account_id_in_two_tenants_never_mixes(aws):
    accounts.create_tenant("acme", currency="USD")
    accounts.create_tenant("globex", currency="GBP")
    accounts.create_account("acme", "cust", kind="customer", credit_limit_micro=1)
    accounts.create_account("globex", "cust", kind="supplier", credit_limit_micro=2)
    _deck("acme", "cust", accounts.reserve_deck_version("acme", "cust"))
    accounts.activate_deck("acme", "cust", 1)
    assert accounts.get_account("acme", "cust").deck_version == 1
    globex = accounts.get_account("globex", "cust")
    assert (globex.kind, globex.currency, globex.credit_limit_micro) == ("supplier", "GBP", 2)
    assert globex.deck_version is None
    assert accounts.active_deck("globex", "cust") is None
    assert [a.account for a in accounts.list_accounts("globex")] == ["cust"]


def test_ids_with_key_separators_are_refused(aws):
    for bad in ("acme#ACCOUNT", "a/b", "", "x=y", "-lead"):
        with pytest.raises(ValueError, match="invalid tenant id"):
            accounts.create_tenant(bad)
    accounts.create_tenant("acme")
    with pytest.raises(ValueError, match="invalid account id"):
        accounts.get_account("acme", "DECK#x")


def test_suspending_an_account_keeps_everything_else(aws):
    accounts.create_tenant("acme")
    accounts.create_account("acme", "cust", kind="customer", prepaid=True)
    suspended = accounts.set_account_status("acme", "cust", "suspended")
    assert (suspended.status, suspended.prepaid) == ("suspended", True)
    assert accounts.get_account("acme", "cust").status == "suspended"


def test_deck_versions_are_never_handed_out_twice(aws, atomic_items):
    accounts.create_tenant("acme")
    accounts.create_account("acme", "cust", kind="customer")
    with ThreadPoolExecutor(max_workers=6) as pool:
        versions = list(
            pool.map(lambda _: accounts.reserve_deck_version("acme", "cust"), range(30))
        )
    assert sorted(versions) == list(range(1, 31))


def test_activation_needs_a_recorded_version_and_only_moves_forward(aws):
    accounts.create_tenant("acme")
    accounts.create_account("acme", "cust", kind="customer")
    with pytest.raises(NotFoundError, match="deck version 1"):
        accounts.activate_deck("acme", "cust", 1)
    assert accounts.get_account("acme", "cust").deck_version is None
    for version in (1, 2, 3):
        assert accounts.reserve_deck_version("acme", "cust") == version
        _deck("acme", "cust", version)
    assert accounts.activate_deck("acme", "cust", 1)
    assert accounts.activate_deck("acme", "cust", 3)
    assert not accounts.activate_deck("acme", "cust", 2)  # a slow upload never goes back
    assert accounts.active_deck("acme", "cust").version == 3
    assert accounts.get_deck_version("acme", "cust", 1).rows == 10  # old stays readable
    assert [d.version for d in accounts.list_deck_versions("acme", "cust")] == [1, 2, 3]


def test_a_recorded_deck_version_is_immutable(aws):
    accounts.create_tenant("acme")
    accounts.create_account("acme", "cust", kind="customer")
    _deck("acme", "cust", 1, sha="aaa")
    _deck("acme", "cust", 1, sha="aaa")  # a retry of the same upload is fine
    with pytest.raises(ConflictError, match="other contents"):
        _deck("acme", "cust", 1, sha="bbb")
    assert accounts.get_deck_version("acme", "cust", 1).sha256 == "aaa"
