"""`tollgate apikey create|list|revoke`, in-process on moto."""

from __future__ import annotations

import re

import pytest

from functions.store import accounts, apikeys
from functions.store.apikeys import Unauthorized
from tests.cli.conftest import json_document, run_command, tollgate


@pytest.fixture
def acme(tenant_numbers):
    """A fresh tenant with the reseller res and its customer cust; its name."""
    tenant = f"acme{next(tenant_numbers)}"
    tollgate("tenant", "create", tenant)
    tollgate("account", "create", tenant, "res", "--kind", "reseller")
    tollgate("account", "create", tenant, "cust", "--kind", "customer", "--parent", "res")
    return tenant


def test_create_prints_a_key_once_that_authenticates(acme, capsys):
    status, out, err = run_command(
        capsys, "apikey", "create", acme, "--role", "reseller-admin", "--account", "res",
        "--allow-ip", "203.0.113.0/24", "--allow-ip", "2001:DB8::/32", "--label", "portal",
        "--by", "alice",
    )  # fmt: skip
    assert (status, err) == (0, "")
    key_id = re.search(r"^key_id  ([0-9a-f]{16})$", out, re.M).group(1)
    presented = re.search(r"^key     (tg_\S+)$", out, re.M).group(1)
    assert "shown once" in out
    key = apikeys.authenticate(presented, ip="2001:db8::7")
    assert (key.key_id, key.tenant, key.account) == (key_id, acme, "res")
    assert key.role == "reseller-admin"
    assert (key.allow_ips, key.label, key.created_by) == (
        ("203.0.113.0/24", "2001:db8::/32"), "portal", "alice"
    )  # fmt: skip
    (entry,) = accounts.list_audit(acme, "apikey", key_id)
    assert entry.by == "alice" and entry.principal.startswith("arn:aws:")


def test_create_json_and_list_never_show_the_key(acme, capsys, monkeypatch):
    monkeypatch.setenv("TOLLGATE_OPERATOR", "ops-bot")
    created = json_document(capsys, "apikey", "create", acme, "--role", "finance")
    presented = created.pop("key")
    assert created == {"key_id": created["key_id"], "tenant": acme, "role": "finance",
                       "account": None, "allow_ips": [], "label": None}  # fmt: skip
    assert apikeys.authenticate(presented).created_by == "ops-bot"
    secret = presented.removeprefix(f"tg_{created['key_id']}_")
    listed = json_document(capsys, "apikey", "list", acme)
    assert [(k["key_id"], k["role"], k["created_by"], k["revoked_at"]) for k in listed] == [
        (created["key_id"], "finance", "ops-bot", None)
    ]
    status, text, _ = run_command(capsys, "apikey", "list", acme)
    for shown in (str(listed), text):
        assert secret not in shown and "digest" not in shown
    assert status == 0 and created["key_id"] in text


def test_revoke_stops_the_key_and_says_who(acme, capsys):
    created = json_document(capsys, "apikey", "create", acme, "--role", "customer",
                            "--account", "cust")  # fmt: skip
    revoked = json_document(capsys, "apikey", "revoke", acme, created["key_id"], "--by", "bob")
    assert (revoked["key_id"], revoked["revoked_by"]) == (created["key_id"], "bob")
    assert revoked["revoked_at"] is not None
    with pytest.raises(Unauthorized) as refused:
        apikeys.authenticate(created["key"])
    assert refused.value.code == "revoked_key"
    again = json_document(capsys, "apikey", "revoke", acme, created["key_id"], "--by", "carol")
    assert again == revoked  # a no-op: still bob's revocation
    (listed,) = json_document(capsys, "apikey", "list", acme)
    assert listed == revoked


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (("create", "{t}", "--role", "admin"), "invalid role 'admin'"),
        (("create", "{t}", "--role", "customer"), "invalid account"),
        (("create", "{t}", "--role", "finance", "--account", "res"), "invalid account 'res'"),
        (("create", "{t}", "--role", "reseller-admin", "--account", "cust"),
         "invalid account 'cust'"),
        (("create", "{t}", "--role", "customer", "--account", "ghost"), "unknown account"),
        (("create", "{t}", "--role", "finance", "--allow-ip", "10.0.0.0/33"),
         "invalid allow-ip '10.0.0.0/33'"),
        (("create", "nobody", "--role", "finance"), "unknown tenant"),
        (("list", "nobody"), "unknown tenant"),
        (("revoke", "{t}", "0123456789abcdef"), "unknown API key"),
        (("revoke", "{t}", "nothex"), "invalid key id"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_naming_the_field(acme, capsys, argv, field):
    argv = [a.format(t=acme) for a in argv]
    status, out, err = run_command(capsys, "apikey", *argv)
    assert (status, out) == (2, "")
    assert err.startswith("tollgate: error: ") and field in err
    assert len(err.strip().splitlines()) == 1
    assert apikeys.list_keys(acme) == []


def test_a_missing_role_is_a_usage_error(acme, capsys):
    with pytest.raises(SystemExit) as usage:
        run_command(capsys, "apikey", "create", acme)
    assert usage.value.code == 2
    assert "--role" in capsys.readouterr().err
