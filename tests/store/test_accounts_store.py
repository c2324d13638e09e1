"""Tenants, switches, accounts and deck versions against moto."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import pytest

from functions import store
from functions.ingest.numbers import NumberingPlan
from functions.shared.settings import settings
from functions.store import ConflictError, NotFoundError, accounts


def _version(
    tenant: str, account: str, version: int, base: int | None, sha: str = "s"
) -> accounts.DeckVersion:
    """A version record as `deck upload` commits it (the objects it names are not needed)."""
    return accounts.DeckVersion(
        tenant=tenant,
        account=account,
        version=version,
        mode="changes",
        key=f"decks/tenant={tenant}/account={account}/v{version}.parquet",
        upload_key=f"decks/tenant={tenant}/account={account}/v{version}.upload.parquet",
        currency="USD",
        effective=1_714_521_600,
        rows=10,
        skipped=1,
        timeline_rows=12,
        effective_min=-(2**62),
        effective_max=1_714_521_600,
        source="deck.csv",
        sha256="f" * 64,
        timeline_sha256=sha,
        base=base,
        added=9,
        unchanged=1,
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


def test_a_switch_keeps_its_csv_template_and_numbering_plan(aws):
    """Issue 8 §4: neither existed before."""
    accounts.create_tenant("acme")
    template = ("uuid", "destination_number", "start_stamp", "answer_stamp", "billsec", "x_gw")
    accounts.create_switch("acme", "fs", format="freeswitch-csv", template=list(template))
    assert accounts.get_switch("acme", "fs").template == template
    assert accounts.get_switch("acme", "fs").numbering == NumberingPlan()
    plan = NumberingPlan(strip=("#123", "9999"), national_prefix="0", country_code="44")
    assert accounts.set_numbering("acme", "fs", plan).numbering == plan
    assert accounts.get_switch("acme", "fs").numbering == plan
    accounts.set_numbering("acme", "fs", NumberingPlan(international_prefix="011"))
    assert accounts.get_switch("acme", "fs").numbering == NumberingPlan(international_prefix="011")
    with pytest.raises(ValueError, match="template: only a freeswitch-csv switch"):
        accounts.create_switch("acme", "ast", format="asterisk-csv", template=list(template))
    with pytest.raises(ValueError, match="template: lacks billsec"):
        accounts.create_switch("acme", "fs2", format="freeswitch-csv", template=template[:-2])
    with pytest.raises(NotFoundError, match="unknown switch 'nope'"):
        accounts.set_numbering("acme", "nope", plan)


def test_trunk_mappings_make_the_switchs_plan_and_stay_in_their_switch_and_tenant(aws):
    """Issue 8 §4: trunks could not be mapped before."""
    for tenant in ("acme", "beta"):
        accounts.create_tenant(tenant)
        for switch in ("sbc-1", "sbc-10"):
            accounts.create_switch(tenant, switch, format="vos3000", default_supplier=None)
        accounts.create_account(tenant, "cust", kind="customer")
        accounts.create_account(tenant, "bt", kind="supplier")
    accounts.map_trunk("acme", "sbc-1", "ingress", "CUST_A", "cust")
    accounts.map_trunk("acme", "sbc-1", "ingress", "198.51.100.4", "cust")
    accounts.map_trunk("acme", "sbc-1", "egress", "VEND_B", "bt")
    accounts.map_trunk("acme", "sbc-1", "egress", "2001:db8::7", "bt")
    accounts.map_trunk("acme", "sbc-10", "egress", "VEND_C", "bt")
    accounts.map_trunk("beta", "sbc-1", "ingress", "CUST_Z", "cust")
    plan = accounts.get_trunk_plan("acme", "sbc-1")
    assert dict(plan.ingress) == {"CUST_A": "cust", "198.51.100.4": "cust"}
    assert dict(plan.egress) == {"VEND_B": "bt", "2001:db8::7": "bt"}
    assert (plan.customer_field, plan.supplier_field, plan.default_supplier) == (
        "customer",
        "supplier",
        None,
    )
    assert [m.key for m in accounts.list_trunks("acme", "sbc-10")] == ["VEND_C"]
    assert [m.key for m in accounts.list_trunks("beta", "sbc-1")] == ["CUST_Z"]
    removed = accounts.unmap_trunk("acme", "sbc-1", "egress", "VEND_B")
    assert removed.account == "bt"
    assert dict(accounts.get_trunk_plan("acme", "sbc-1").egress) == {"2001:db8::7": "bt"}
    with pytest.raises(NotFoundError, match="egress 'VEND_B' is not mapped"):
        accounts.unmap_trunk("acme", "sbc-1", "egress", "VEND_B")


def test_a_trunk_maps_only_to_an_existing_account_of_its_directions_kind(aws):
    accounts.create_tenant("acme")
    accounts.create_switch("acme", "sbc-1", format="generic")
    accounts.create_account("acme", "cust", kind="customer")
    accounts.create_account("acme", "bt", kind="supplier")
    with pytest.raises(ValueError, match="ingress 'T1': account 'bt' is a supplier, not a cus"):
        accounts.map_trunk("acme", "sbc-1", "ingress", "T1", "bt")
    with pytest.raises(ValueError, match="egress 'T1': account 'cust' is a customer"):
        accounts.map_trunk("acme", "sbc-1", "egress", "T1", "cust")
    with pytest.raises(NotFoundError, match="unknown account 'ghost'"):
        accounts.map_trunk("acme", "sbc-1", "egress", "T1", "ghost")
    with pytest.raises(NotFoundError, match="unknown switch 'sbc-2'"):
        accounts.map_trunk("acme", "sbc-2", "egress", "T1", "bt")
    with pytest.raises(ValueError, match="invalid trunk key 'T#1'"):
        accounts.map_trunk("acme", "sbc-1", "egress", "T#1", "bt")
    with pytest.raises(ValueError, match="invalid direction 'out'"):
        accounts.map_trunk("acme", "sbc-1", "out", "T1", "bt")
    assert accounts.list_trunks("acme", "sbc-1") == []


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
    accounts.commit_deck_version(_version("acme", "cust", 1, None))
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


def test_a_commit_records_the_version_and_moves_the_head_from_its_base(aws):
    accounts.create_tenant("acme")
    accounts.create_account("acme", "cust", kind="customer")
    first = accounts.commit_deck_version(_version("acme", "cust", 1, None))
    assert first.uploaded_at is not None
    assert first == dataclasses.replace(
        _version("acme", "cust", 1, None), uploaded_at=first.uploaded_at
    )
    assert accounts.get_deck_version("acme", "cust", 1) == first
    assert accounts.commit_deck_version(_version("acme", "cust", 3, 1)).version == 3
    assert accounts.active_deck("acme", "cust").version == 3
    assert [d.version for d in accounts.list_deck_versions("acme", "cust")] == [1, 3]


def test_a_commit_from_a_head_that_moved_records_nothing(aws):
    """Two uploads composed on v1: the second must compose again on v2, or v2 is lost."""
    accounts.create_tenant("acme")
    accounts.create_account("acme", "cust", kind="customer")
    accounts.commit_deck_version(_version("acme", "cust", 1, None))
    accounts.commit_deck_version(_version("acme", "cust", 2, 1))
    with pytest.raises(accounts.HeadMovedError, match="moved from deck version 1 to 2"):
        accounts.commit_deck_version(_version("acme", "cust", 3, 1))
    with pytest.raises(accounts.HeadMovedError):
        accounts.commit_deck_version(_version("acme", "cust", 4, None))
    assert accounts.get_account("acme", "cust").deck_version == 2
    assert [d.version for d in accounts.list_deck_versions("acme", "cust")] == [1, 2]
    with pytest.raises(NotFoundError, match="unknown deck version 3"):
        accounts.get_deck_version("acme", "cust", 3)
    with pytest.raises(NotFoundError, match="unknown account 'ghost'"):
        accounts.commit_deck_version(_version("acme", "ghost", 1, None))


def test_a_retried_commit_returns_the_version_and_other_contents_conflict(aws):
    accounts.create_tenant("acme")
    accounts.create_account("acme", "cust", kind="customer")
    recorded = accounts.commit_deck_version(_version("acme", "cust", 1, None, sha="aaa"))
    # The answer to the first attempt was lost (a timeout): the retry finds it done.
    assert accounts.commit_deck_version(_version("acme", "cust", 1, None, sha="aaa")) == recorded
    accounts.commit_deck_version(_version("acme", "cust", 2, 1))
    with pytest.raises(ConflictError, match="already recorded with other contents"):
        accounts.commit_deck_version(_version("acme", "cust", 1, 2, sha="bbb"))
    assert accounts.get_deck_version("acme", "cust", 1).timeline_sha256 == "aaa"


def test_of_commits_racing_from_one_head_exactly_one_wins(aws, atomic_items):
    accounts.create_tenant("acme")
    accounts.create_account("acme", "cust", kind="customer")
    accounts.commit_deck_version(_version("acme", "cust", 1, None))

    def commit(version: int) -> int | None:
        try:
            return accounts.commit_deck_version(_version("acme", "cust", version, 1)).version
        except accounts.HeadMovedError:
            return None

    with ThreadPoolExecutor(max_workers=6) as pool:
        won = [v for v in pool.map(commit, range(2, 14)) if v is not None]
    assert len(won) == 1
    assert accounts.get_account("acme", "cust").deck_version == won[0]
    assert [d.version for d in accounts.list_deck_versions("acme", "cust")] == [1, won[0]]


def test_a_version_recorded_before_rate_history_reads_as_a_full_deck(aws):
    accounts.create_tenant("acme")
    accounts.create_account("acme", "cust", kind="customer")
    old = accounts._m().deck(
        "acme",
        "DECK#cust#v0000000001",
        key="decks/tenant=acme/account=cust/v1.parquet",
        currency="USD",
        rows=7,
        skipped=0,
        source="az.csv",
        sha256="abc",
    )
    old.save()
    version = accounts.get_deck_version("acme", "cust", 1)
    assert (version.mode, version.timeline_rows, version.upload_key, version.base) == (
        "full",
        7,
        None,
        None,
    )
    assert (version.sha256, version.timeline_sha256) == ("abc", "abc")


def test_reset_rebinds_every_model_of_the_accounts_table(aws):
    """Fails before the trunk and deck-version models joined `_models`: they kept the
    connection of the endpoint they were first used with, so the rate Lambda on the local
    stack queried real AWS for trunk maps after `store.reset()`."""
    accounts.create_tenant("acme")
    accounts.create_switch("acme", "sbc-1", format="generic")
    accounts.get_trunk_plan("acme", "sbc-1")
    before = vars(accounts._m()).copy()
    store.reset()
    after = vars(accounts._m())
    assert set(after) == set(before) >= {"trunk", "version"}
    assert all(after[name] is not before[name] for name in before)
