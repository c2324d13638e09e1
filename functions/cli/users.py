"""`tollgate user create|list|disable`: the people who sign in to the portal.

    tollgate user create TENANT USER --role ROLE [--account A] [--password-file FILE]
    tollgate user list TENANT
    tollgate user disable TENANT USER

A user signs in (POST /v1/sessions) with its name, password and the code of its authenticator
app, and acts with its role and account, as an API key of that role would. `create` reads the
password from --password-file, the terminal (asked twice) or stdin's first line; it prints
the TOTP secret and its otpauth:// URI once: only the user's app keeps them. `disable`
ends the user's sessions at once.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from functions.api.keys import ROLES
from functions.cli import CliError, by_flag, emit, guarded, json_flag


def register(subparsers: argparse._SubParsersAction) -> None:
    user = subparsers.add_parser(
        "user", help="portal users: create (TOTP shown once), list, disable"
    )
    actions = user.add_subparsers(dest="user_action", required=True, metavar="ACTION")

    create = actions.add_parser(
        "create",
        help="a new portal user; its TOTP secret printed once",
        description="Roles as API keys have them: tenant-admin, finance, reseller-admin "
        "(needs --account), customer (needs --account), read-only. The password is read from "
        "the terminal (twice) or the first line of stdin; 12 characters at least. User names "
        "are unique across tenants.",
    )
    create.add_argument("tenant")
    create.add_argument("user")
    create.add_argument("--role", required=True, metavar="ROLE", help=", ".join(ROLES))
    create.add_argument("--account", metavar="A", help="the account the user acts for")
    create.add_argument(
        "--password-file", metavar="FILE", help="the password: FILE's first line ('-': stdin)"
    )
    by_flag(create)
    json_flag(create)
    create.set_defaults(run=run_create)

    listing = actions.add_parser("list", help="a tenant's users, disabled ones too")
    listing.add_argument("tenant")
    json_flag(listing)
    listing.set_defaults(run=run_list)

    disable = actions.add_parser("disable", help="disable a user and end its sessions")
    disable.add_argument("tenant")
    disable.add_argument("user")
    by_flag(disable)
    json_flag(disable)
    disable.set_defaults(run=run_disable)


def _actor(args: argparse.Namespace) -> Any:
    from functions.store import accounts

    return accounts.caller(args.by or os.environ.get("TOLLGATE_OPERATOR") or None)


def _when(moment: Any) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds")


def _payload(user: Any) -> dict[str, Any]:
    return {
        "user": user.user,
        "tenant": user.tenant,
        "role": user.role,
        "account": user.account,
        "created_at": _when(user.created_at),
        "created_by": user.created_by,
        "disabled_at": _when(user.disabled_at),
        "disabled_by": user.disabled_by,
    }


def _password(path: str | None) -> str:
    if path is not None and path != "-":
        try:
            with open(path, encoding="utf-8") as file:
                return file.readline().rstrip("\r\n")
        except OSError as error:
            raise CliError(f"invalid password-file {path!r}: {error.strerror}") from None
    if path is None and sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise CliError("invalid password: the two did not match")
        return first
    return sys.stdin.readline().rstrip("\r\n")


@guarded
def run_create(args: argparse.Namespace) -> int:
    from functions.api import signin
    from functions.store import users

    user, secret = users.create_user(
        args.tenant,
        args.user,
        _password(args.password_file),
        args.role,
        account=args.account,
        actor=_actor(args),
    )
    uri = signin.otpauth_uri(secret, user.user, user.tenant)
    scope = f"account {user.account}" if user.account else "tenant-wide"
    text = [
        f"user         {user.user} ({user.role} of {user.tenant}, {scope})",
        f"totp secret  {secret}",
        f"otpauth uri  {uri}",
        "The TOTP secret is shown once: add it to the user's authenticator app now (the URI "
        "as a QR code, or the secret by hand). A lost one: disable the user, create it anew.",
    ]
    emit(args, {**_payload(user), "totp_secret": secret, "otpauth_uri": uri}, "\n".join(text))
    return 0


@guarded
def run_list(args: argparse.Namespace) -> int:
    from functions.store import accounts, users

    accounts.get_tenant(args.tenant)  # an unknown tenant is an error, not an empty list
    found = [_payload(u) for u in users.list_users(args.tenant)]
    header = ["user", "role", "account", "created", "by", "disabled"]
    rows = [header] + [
        [u["user"], u["role"], u["account"] or "-", u["created_at"][:19], u["created_by"],
         (u["disabled_at"] or "-")[:19]]
        for u in found
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    table = "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
                      for r in rows)  # fmt: skip
    emit(args, found, table if found else f"no users in tenant {args.tenant}")
    return 0


@guarded
def run_disable(args: argparse.Namespace) -> int:
    from functions.store import users

    user = users.disable_user(args.tenant, args.user, actor=_actor(args))
    text = f"disabled {user.user} ({user.role} of {user.tenant}) at {_when(user.disabled_at)}"
    emit(args, _payload(user), text + f" by {user.disabled_by}; its sessions ended")
    return 0
