"""API keys in the accounts table, against moto: created hashed and shown once, checked on
every request, listed, revoked, and invisible to every other read of the table."""

from __future__ import annotations

import hashlib
import itertools
import re

import pytest

from functions import store
from functions.api.keys import ApiKey
from functions.shared.settings import settings
from functions.store import NotFoundError, accounts, apikeys
from functions.store.apikeys import Unauthorized
from tests.conftest import FAKE_ENVIRONMENT, moto_account

ALICE = accounts.Actor(by="alice", principal="arn:aws:iam::123456789012:user/alice")


@pytest.fixture(scope="module")
def moto():
    """One moto account for the module (provisioning costs a second); a tenant per test."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAKE_ENVIRONMENT.items():
            patch.setenv(name, value)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        with moto_account():
            yield itertools.count(1)


@pytest.fixture
def acme(moto):
    """A fresh tenant with the reseller res, its customer cust and the supplier tata."""
    tenant = f"acme{next(moto)}"
    accounts.create_tenant(tenant)
    accounts.create_account(tenant, "res", kind="reseller")
    accounts.create_account(tenant, "cust", kind="customer", parent="res")
    accounts.create_account(tenant, "tata", kind="supplier")
    return tenant


@pytest.fixture
def globex(moto):
    tenant = f"globex{next(moto)}"
    accounts.create_tenant(tenant)
    return tenant


def raw_items() -> list[dict]:
    return store.client("dynamodb").scan(TableName=settings().accounts_table)["Items"]


def code_of(presented, ip=None) -> str:
    with pytest.raises(Unauthorized) as refused:
        apikeys.authenticate(presented, ip=ip)
    return refused.value.code


def test_a_created_key_authenticates_as_its_record(acme):
    key, presented = apikeys.create_key(
        acme, "reseller-admin", account="res", allow_ips=["203.0.113.7/24"], label="portal",
        actor=ALICE,
    )  # fmt: skip
    assert key == ApiKey(
        tenant=acme,
        key_id=key.key_id,
        role="reseller-admin",
        account="res",
        allow_ips=("203.0.113.0/24",),
        label="portal",
        created_at=key.created_at,
        created_by="alice",
    )
    assert presented.startswith(f"tg_{key.key_id}_")
    assert apikeys.authenticate(presented, ip="203.0.113.200") == key
    assert apikeys.list_keys(acme) == [key]
    (entry,) = accounts.list_audit(acme, "apikey", key.key_id)
    assert (entry.by, entry.principal) == ("alice", ALICE.principal)
    assert entry.changes == (
        accounts.Change("role", None, "reseller-admin"),
        accounts.Change("account", None, "res"),
        accounts.Change("allow_ips", None, ["203.0.113.0/24"]),
        accounts.Change("label", None, "portal"),
    )


def test_only_the_digest_is_stored_and_the_presented_key_nowhere(acme):
    key, presented = apikeys.create_key(acme, "finance", actor=ALICE)
    secret = presented.removeprefix(f"tg_{key.key_id}_")
    items = raw_items()
    lookup = [i for i in items if i["pk"]["S"] == f"APIKEY#{key.key_id}"]
    listing = [i for i in items if i["sk"]["S"] == f"APIKEY#{key.key_id}"]
    assert [i["sk"]["S"] for i in lookup] == ["APIKEY"]
    assert [i["pk"]["S"] for i in listing] == [acme]
    assert lookup[0]["digest"]["S"] == hashlib.sha256(secret.encode()).hexdigest()
    assert "digest" not in listing[0]
    assert {k: v for k, v in lookup[0].items() if k not in ("pk", "sk", "digest")} == {
        k: v for k, v in listing[0].items() if k not in ("pk", "sk")
    }

    def strings(value):  # every string anywhere in an attribute value
        if isinstance(value, dict):
            for v in value.values():
                yield from strings(v)
        elif isinstance(value, list):
            for v in value:
                yield from strings(v)
        elif isinstance(value, str):
            yield value

    stored = [s for item in items for s in strings(item)]
    assert not [s for s in stored if secret in s or presented in s]
    assert not hasattr(key, "digest")


def test_each_refusal_has_its_code(acme):
    key, presented = apikeys.create_key(
        acme, "customer", account="cust", allow_ips=["2001:db8::/32"], actor=ALICE
    )
    secret = presented.removeprefix(f"tg_{key.key_id}_")
    other = "A" if secret[0] != "A" else "B"
    assert apikeys.authenticate(presented, ip="2001:db8::1").key_id == key.key_id
    assert code_of(presented[:-1]) == "malformed_key"
    assert code_of(f"Bearer {presented}") == "malformed_key"
    assert code_of(f"tg_{key.key_id}_{other}{secret[1:]}", "2001:db8::1") == "unknown_key"
    assert code_of(f"tg_{'0' * 16}_{secret}", "2001:db8::1") == "unknown_key"
    assert code_of(presented, "2001:db9::1") == "ip_not_allowed"
    assert code_of(presented, "203.0.113.1") == "ip_not_allowed"
    assert code_of(presented, None) == "ip_not_allowed"  # no address: fails closed
    assert code_of(presented, "nonsense") == "ip_not_allowed"
    apikeys.revoke_key(acme, key.key_id, actor=ALICE)
    assert code_of(presented, "2001:db8::1") == "revoked_key"
    # A wrong secret of a revoked key learns nothing about it.
    assert code_of(f"tg_{key.key_id}_{other}{secret[1:]}", "2001:db8::1") == "unknown_key"
    with pytest.raises(Unauthorized) as refused:
        apikeys.authenticate(presented[:-1] + "!")
    assert secret not in str(refused.value) and key.key_id not in str(refused.value)
    assert isinstance(refused.value, store.StoreError)


def test_a_key_without_an_allow_list_is_good_from_anywhere(acme):
    key, presented = apikeys.create_key(acme, "read-only", actor=ALICE)
    for ip in ("198.51.100.1", "2001:db8::1", None):
        assert apikeys.authenticate(presented, ip=ip) == key


def test_a_bad_key_request_is_refused_before_anything_is_written(acme):
    cases = [
        (("nobody", "finance"), {}, NotFoundError, "unknown tenant"),
        ((acme, "customer"), {"account": "ghost"}, NotFoundError, "unknown account"),
        ((acme, "admin"), {}, ValueError, "^invalid role"),
        ((acme, "customer"), {}, ValueError, "^invalid account"),
        ((acme, "finance"), {"account": "res"}, ValueError, "^invalid account"),
        ((acme, "reseller-admin"), {"account": "cust"}, ValueError, "^invalid account 'cust'"),
        ((acme, "read-only"), {"account": "tata"}, ValueError, "^invalid account 'tata'"),
        ((acme, "finance"), {"allow_ips": ["10.0.0.300"]}, ValueError, "^invalid allow-ip"),
        ((acme, "finance"), {"label": "a\tb"}, ValueError, "^invalid label"),
    ]
    before = raw_items()
    for args, options, error, message in cases:
        with pytest.raises(error, match=message):
            apikeys.create_key(*args, **options, actor=ALICE)
    with pytest.raises(ValueError, match="invalid by"):
        apikeys.create_key(acme, "finance", actor=accounts.Actor(" ", "arn"))
    assert raw_items() == before


def test_list_shows_the_tenants_keys_oldest_first_revoked_too(acme, globex):
    first, _ = apikeys.create_key(acme, "tenant-admin", actor=ALICE)
    second, _ = apikeys.create_key(acme, "read-only", account="res", actor=ALICE)
    theirs, _ = apikeys.create_key(globex, "finance", actor=ALICE)
    revoked = apikeys.revoke_key(acme, first.key_id, actor=ALICE)
    assert apikeys.list_keys(acme) == [revoked, second]
    assert apikeys.list_keys(globex) == [theirs]
    assert apikeys.list_keys("initech") == []


def test_revoking_twice_changes_nothing_the_second_time(acme):
    key, _ = apikeys.create_key(acme, "finance", actor=ALICE)
    bob = accounts.Actor(by="bob", principal=ALICE.principal)
    revoked = apikeys.revoke_key(acme, key.key_id, actor=bob)
    assert (revoked.revoked_by, revoked.revoked_at is not None) == ("bob", True)
    assert revoked == apikeys.get_key(acme, key.key_id)
    items = raw_items()
    again = apikeys.revoke_key(acme, key.key_id, actor=ALICE)
    assert again == revoked and raw_items() == items
    lookup = next(i for i in items if i["pk"]["S"] == f"APIKEY#{key.key_id}")
    assert (lookup["revoked_by"]["S"], lookup["revoked_at"]) == ("bob", {"S": _iso(revoked)})
    entries = accounts.list_audit(acme, "apikey", key.key_id)
    assert [e.by for e in entries] == ["alice", "bob"]
    assert entries[1].changes == (accounts.Change("revoked_at", None, _iso(revoked)),)


def _iso(key: ApiKey) -> str:
    return key.revoked_at.isoformat(timespec="microseconds")


def test_a_tenant_cannot_revoke_or_see_another_tenants_key(acme, globex):
    theirs, presented = apikeys.create_key(globex, "tenant-admin", actor=ALICE)
    with pytest.raises(NotFoundError, match="unknown API key"):
        apikeys.revoke_key(acme, theirs.key_id, actor=ALICE)
    with pytest.raises(NotFoundError):
        apikeys.get_key(acme, theirs.key_id)
    with pytest.raises(ValueError, match="invalid key id"):
        apikeys.revoke_key(acme, f"../{globex}", actor=ALICE)
    assert apikeys.authenticate(presented) == theirs  # still good
    assert accounts.list_audit(acme, "apikey", theirs.key_id) == []


def test_every_accounts_read_ignores_the_key_items(acme):
    before = {
        "tenants": accounts.list_tenants(),
        "accounts": accounts.list_accounts(acme),
        "switches": accounts.list_switches(acme),
        "dids": accounts.list_dids(acme),
        "contracts": accounts.list_contracts(acme),
        "audit": accounts.list_audit(acme, "tenant", acme),
        "account audit": accounts.list_audit(acme, "account", "res"),
        "decks": accounts.list_deck_versions(acme, "res"),
    }
    for role, account in (("tenant-admin", None), ("reseller-admin", "res"), ("customer", "cust")):
        key, _ = apikeys.create_key(acme, role, account=account, actor=ALICE)
    apikeys.revoke_key(acme, key.key_id, actor=ALICE)
    after = {
        "tenants": accounts.list_tenants(),
        "accounts": accounts.list_accounts(acme),
        "switches": accounts.list_switches(acme),
        "dids": accounts.list_dids(acme),
        "contracts": accounts.list_contracts(acme),
        "audit": accounts.list_audit(acme, "tenant", acme),
        "account audit": accounts.list_audit(acme, "account", "res"),
        "decks": accounts.list_deck_versions(acme, "res"),
    }
    assert after == before
    # Only the tenants the tests made: no key item read as a tenant.
    assert acme in [t.tenant for t in after["tenants"]]
    assert all(re.fullmatch(r"(acme|globex)[0-9]+", t.tenant) for t in after["tenants"])
    assert sorted(a.account for a in after["accounts"]) == ["cust", "res", "tata"]
    # The items are there: the reads above skip them, not an empty table.
    lookups = [i for i in raw_items() if i["sk"]["S"] == "APIKEY" and i["tenant"]["S"] == acme]
    assert len(lookups) == 3
