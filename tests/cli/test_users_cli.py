"""`tollgate user create|list|disable`, in-process on moto."""

from __future__ import annotations

import io
import re
import time
import urllib.parse

import pytest

from functions.api import signin
from functions.store import accounts, users
from tests.cli.conftest import json_document, run_command, tollgate

PASSWORD = "a long enough password"


@pytest.fixture
def acme(tenant_numbers, monkeypatch):
    """A fresh tenant with the reseller res; its name. The password comes on stdin."""
    tenant = f"acme{next(tenant_numbers)}"
    tollgate("tenant", "create", tenant)
    tollgate("account", "create", tenant, "res", "--kind", "reseller")
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    return tenant


def test_create_prints_the_totp_secret_once_and_the_user_signs_in(acme, capsys):
    status, out, err = run_command(
        capsys, "user", "create", acme, f"ops.{acme}", "--role", "reseller-admin",
        "--account", "res", "--by", "alice",
    )  # fmt: skip
    assert (status, err) == (0, "")
    secret = re.search(r"^totp secret  ([A-Z2-7]{32})$", out, re.M).group(1)
    uri = re.search(r"^otpauth uri  (otpauth://\S+)$", out, re.M).group(1)
    assert dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(uri).query))["secret"] == secret
    assert "shown once" in out
    session, token = users.sign_in(f"ops.{acme}", PASSWORD, signin.totp(secret, time.time()))
    assert (session.tenant, session.role, session.account) == (acme, "reseller-admin", "res")
    assert users.authenticate(token).created_by == f"ops.{acme}"
    (entry,) = accounts.list_audit(acme, "user", f"ops.{acme}")
    assert entry.by == "alice"


def test_list_and_disable_as_json_never_show_a_secret(acme, capsys, monkeypatch):
    monkeypatch.setenv("TOLLGATE_OPERATOR", "ops-bot")
    created = json_document(capsys, "user", "create", acme, f"fin.{acme}", "--role", "finance")
    secret = created.pop("totp_secret")
    assert created.pop("otpauth_uri").startswith("otpauth://totp/")
    assert (created["role"], created["account"], created["created_by"]) == (
        "finance", None, "ops-bot"
    )  # fmt: skip
    listed = json_document(capsys, "user", "list", acme)
    assert listed == [created]
    _, token = users.sign_in(f"fin.{acme}", PASSWORD, signin.totp(secret, time.time()))
    disabled = json_document(capsys, "user", "disable", acme, f"fin.{acme}", "--by", "bob")
    assert (disabled["disabled_by"], disabled["disabled_at"] is not None) == ("bob", True)
    with pytest.raises(users.Unauthorized):
        users.authenticate(token)  # its sessions ended
    status, text, _ = run_command(capsys, "user", "list", acme)
    assert status == 0 and secret not in text and f"fin.{acme}" in text
    assert "password" not in str(json_document(capsys, "user", "list", acme))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--role", "boss"], "invalid role"),
        (["--role", "customer"], "needs an account"),
        (["--role", "customer", "--account", "res"], "needs a customer"),
        (["--role", "finance", "--account", "res"], "tenant-wide"),
    ],
)
def test_bad_input_exits_2_naming_the_field(acme, capsys, argv, message):
    status, out, err = run_command(capsys, "user", "create", acme, f"u.{acme}", *argv)
    assert (status, out) == (2, "") and message in err


def test_a_short_password_a_taken_name_and_an_unknown_user(acme, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    status, _, err = run_command(capsys, "user", "create", acme, f"s.{acme}", "--role", "finance")
    assert status == 2 and "invalid password" in err
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    tollgate("user", "create", acme, f"t.{acme}", "--role", "finance")
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    status, _, err = run_command(capsys, "user", "create", acme, f"t.{acme}", "--role", "finance")
    assert status == 1 and "exists already" in err
    status, _, err = run_command(capsys, "user", "disable", acme, "nobody")
    assert status == 2 and "unknown user" in err
    status, _, err = run_command(capsys, "user", "list", "no-such-tenant")
    assert status == 2
