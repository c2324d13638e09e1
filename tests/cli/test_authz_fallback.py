"""`tollgate tenant update --authz-fallback open|closed --authz-fallback-seconds N` (issue 14 §3).

What POST /v1/authz answers when it cannot decide in time is a tenant setting, stored with the
other tenant fields and audited like them: who, old, new, why.
"""

from __future__ import annotations

from functions.api.dialects import degraded
from functions.cli import main
from functions.store import accounts
from tests.cli.conftest import json_document

MOTO = "arn:aws:sts::123456789012:user/moto"


def fails(capsys, *argv: str) -> str:
    capsys.readouterr()
    assert main(list(argv)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


def test_the_fallback_is_closed_until_changed_then_stored_audited_and_used(aws, capsys):
    main(["tenant", "create", "acme"])
    main(["tenant", "create", "globex"])
    tenant = accounts.get_tenant("acme")
    assert (tenant.authz_fallback, tenant.authz_fallback_seconds) == ("closed", 600)

    updated = json_document(
        capsys, "tenant", "update", "acme", "--authz-fallback", "open",
        "--authz-fallback-seconds", "300", "--reason", "keep calls up", "--by", "alice",
    )  # fmt: skip
    audit = updated.pop("audit")
    assert updated == {
        "tenant": "acme", "currency": "USD", "timezone": "UTC",
        "authz_fallback": "open", "authz_fallback_seconds": 300,
    }  # fmt: skip
    assert (audit["by"], audit["principal"], audit["reason"]) == ("alice", MOTO, "keep calls up")
    assert audit["changes"] == [
        {"field": "authz_fallback", "old": "closed", "new": "open"},
        {"field": "authz_fallback_seconds", "old": 600, "new": 300},
    ]
    tenant = accounts.get_tenant("acme")
    assert (tenant.authz_fallback, tenant.authz_fallback_seconds) == ("open", 300)
    assert accounts.get_tenant("globex").authz_fallback == "closed"  # another tenant: untouched
    # The stored setting is what the degraded decision is made of.
    decision = degraded(
        tenant.authz_fallback, "timeout", max_duration_seconds=tenant.authz_fallback_seconds
    )
    assert (decision["allow"], decision["max_duration_seconds"], decision["hold_amount"]) == (
        True,
        300,
        "0.000000",
    )

    again = json_document(capsys, "tenant", "update", "acme", "--authz-fallback", "open")
    assert again["audit"] is None  # nothing differed, nothing recorded
    back = json_document(capsys, "tenant", "update", "acme", "--authz-fallback", "closed")
    assert back["audit"]["changes"] == [{"field": "authz_fallback", "old": "open", "new": "closed"}]
    shown = json_document(capsys, "tenant", "show", "acme")
    assert [e["changes"] for e in shown["history"]] == [audit["changes"], back["audit"]["changes"]]
    assert (shown["authz_fallback"], shown["authz_fallback_seconds"]) == ("closed", 300)

    assert "must be one of open, closed" in fails(
        capsys, "tenant", "update", "acme", "--authz-fallback", "x"
    )
    assert "from 1 to 14400" in fails(
        capsys, "tenant", "update", "acme", "--authz-fallback-seconds", "0"
    )
    assert accounts.get_tenant("acme").authz_fallback_seconds == 300
