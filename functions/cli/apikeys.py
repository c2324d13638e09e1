"""`tollgate apikey create|list|revoke`: the keys resellers and customers call the API with.

    tollgate apikey create TENANT --role ROLE [--account A] [--allow-ip CIDR ...] [--label T]
    tollgate apikey list TENANT
    tollgate apikey revoke TENANT KEY_ID

`create` prints the key once: only its SHA-256 is stored, so a lost key is revoked and
replaced, never shown again. `list` never shows a key or its digest.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from functions.api.keys import ROLES
from functions.cli import by_flag, emit, guarded, json_flag


def register(subparsers: argparse._SubParsersAction) -> None:
    apikey = subparsers.add_parser("apikey", help="API keys: create (shown once), list, revoke")
    actions = apikey.add_subparsers(dest="apikey_action", required=True, metavar="ACTION")

    create = actions.add_parser(
        "create",
        help="a new API key, printed once",
        description="Roles: tenant-admin (the carrier: everything of the tenant), finance "
        "(reads money, changes nothing), reseller-admin (a reseller's subtree; needs "
        "--account), customer (its own account; needs --account), read-only (reads, tenant-wide "
        "or with --account below it). The key is printed once; only its hash is kept.",
    )
    create.add_argument("tenant")
    # Checked by the adapter, not argparse choices: one message names the field either way.
    create.add_argument("--role", required=True, metavar="ROLE", help=", ".join(ROLES))
    create.add_argument("--account", metavar="A", help="the account the key acts for")
    create.add_argument("--allow-ip", dest="allow_ips", action="append", default=[],
                        metavar="CIDR", help="an address or network the key may be used from "
                        "(IPv4 or IPv6; repeatable; none: any)")  # fmt: skip
    create.add_argument("--label", metavar="TEXT", help="what the key is for (shown by list)")
    by_flag(create)
    json_flag(create)
    create.set_defaults(run=run_create)

    listing = actions.add_parser("list", help="a tenant's keys, revoked ones too (never a key)")
    listing.add_argument("tenant")
    json_flag(listing)
    listing.set_defaults(run=run_list)

    revoke = actions.add_parser("revoke", help="revoke a key: refused from its next request")
    revoke.add_argument("tenant")
    revoke.add_argument("key_id")
    by_flag(revoke)
    json_flag(revoke)
    revoke.set_defaults(run=run_revoke)


def _actor(args: argparse.Namespace) -> Any:
    from functions.store import accounts

    return accounts.caller(args.by or os.environ.get("TOLLGATE_OPERATOR") or None)


def _when(moment: Any) -> str | None:
    return None if moment is None else moment.isoformat(timespec="microseconds")


def _payload(key: Any) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "tenant": key.tenant,
        "role": key.role,
        "account": key.account,
        "allow_ips": list(key.allow_ips),
        "label": key.label,
        "created_at": _when(key.created_at),
        "created_by": key.created_by,
        "revoked_at": _when(key.revoked_at),
        "revoked_by": key.revoked_by,
    }


@guarded
def run_create(args: argparse.Namespace) -> int:
    from functions.store import apikeys

    key, presented = apikeys.create_key(
        args.tenant,
        args.role,
        account=args.account,
        allow_ips=args.allow_ips,
        label=args.label,
        actor=_actor(args),
    )
    payload = {
        "key_id": key.key_id,
        "key": presented,
        "tenant": key.tenant,
        "role": key.role,
        "account": key.account,
        "allow_ips": list(key.allow_ips),
        "label": key.label,
    }
    scope = f"account {key.account}" if key.account else "tenant-wide"
    text = [
        f"key_id  {key.key_id}",
        f"key     {presented}",
        f"{key.role} key of {key.tenant}, {scope}, from "
        + (", ".join(key.allow_ips) or "any address"),
        "This key is shown once: store it now. Tollgate keeps only its hash; a lost key is "
        "revoked and replaced.",
    ]
    emit(args, payload, "\n".join(text))
    return 0


@guarded
def run_list(args: argparse.Namespace) -> int:
    from functions.store import accounts, apikeys

    accounts.get_tenant(args.tenant)  # an unknown tenant is an error, not an empty list
    keys = [_payload(k) for k in apikeys.list_keys(args.tenant)]
    header = ["key_id", "role", "account", "allow_ips", "label", "created", "by", "revoked"]
    rows = [header] + [
        [k["key_id"], k["role"], k["account"] or "-", ",".join(k["allow_ips"]) or "any",
         k["label"] or "-", k["created_at"][:19], k["created_by"],
         (k["revoked_at"] or "-")[:19]]
        for k in keys
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    table = "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
                      for r in rows)  # fmt: skip
    emit(args, keys, table if keys else f"no API keys in tenant {args.tenant}")
    return 0


@guarded
def run_revoke(args: argparse.Namespace) -> int:
    from functions.store import apikeys

    key = apikeys.revoke_key(args.tenant, args.key_id, actor=_actor(args))
    text = f"revoked {key.key_id} ({key.role} of {key.tenant}) at {_when(key.revoked_at)}"
    emit(args, _payload(key), text + f" by {key.revoked_by}")
    return 0
