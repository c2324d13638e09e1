"""`tollgate tenant|switch|account|cdr|file|balance|payment`: operate the pipeline's state.

Also `register_deck_upload`, which functions.cli.deck calls to add `deck upload`.
Every command takes --json for scripts; amounts print as decimal strings with 6 places.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import re
import uuid
import zoneinfo
from collections.abc import Callable
from decimal import InvalidOperation
from pathlib import Path
from typing import Any

from functions.cli import CliError
from functions.shared.money import to_units, units_to_str

SWITCH_FORMATS = ("generic", "freeswitch-csv", "freeswitch-json", "asterisk-csv", "vos3000")
AMOUNT_SCALE = 6  # balances, payments and credit limits are micro-units


# --- helpers ---------------------------------------------------------------------------


def _guarded(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn the adapters' errors into one clear CliError line."""

    @functools.wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        # Imported here: building the parser must not pay for boto3.
        from botocore.exceptions import BotoCoreError

        from functions.store import StoreError

        try:
            return run(args)
        except (StoreError, ValueError) as error:
            raise CliError(str(error)) from error
        except BotoCoreError as error:
            raise CliError(f"cannot reach AWS: {error}") from error

    return wrapper


def _amount(text: str, what: str) -> int:
    """An exact decimal amount in micro-units; never through float."""
    try:
        return to_units(text.strip(), AMOUNT_SCALE)
    except (InvalidOperation, ValueError) as error:
        detail = str(error) if isinstance(error, ValueError) else "not a number"
        raise CliError(f"invalid {what} {text!r}: {detail}") from None


def _money(units: int) -> str:
    return units_to_str(units, AMOUNT_SCALE)


def _currency(text: str) -> str:
    code = text.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise CliError(f"invalid currency {text!r}: use a 3-letter ISO code such as USD")
    return code


def _timezone(text: str) -> str:
    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise CliError(
            f"unknown time zone {text!r}: use an IANA name such as Europe/London"
        ) from None
    return text


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    print(json.dumps(payload) if args.json else text)


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def _account_payload(account: Any) -> dict[str, Any]:
    return {
        "tenant": account.tenant,
        "account": account.account,
        "kind": account.kind,
        "parent": account.parent,
        "billing": "prepaid" if account.prepaid else "postpaid",
        "credit_limit": _money(account.credit_limit_micro),
        "currency": account.currency,
        "status": account.status,
        "deck_version": account.deck_version,
    }


# --- registration ----------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    tenant = subparsers.add_parser("tenant", help="manage tenants")
    tenant_actions = tenant.add_subparsers(dest="tenant_action", required=True, metavar="ACTION")
    create = tenant_actions.add_parser("create", help="create a tenant")
    create.add_argument("tenant")
    create.add_argument("--currency", default="USD", help="billing currency (default USD)")
    create.add_argument("--timezone", default="UTC", help="IANA time zone (default UTC)")
    _json_flag(create)
    create.set_defaults(run=run_tenant_create)

    switch = subparsers.add_parser("switch", help="manage switches")
    switch_actions = switch.add_subparsers(dest="switch_action", required=True, metavar="ACTION")
    create = switch_actions.add_parser("create", help="register a switch of a tenant")
    create.add_argument("tenant")
    create.add_argument("switch")
    create.add_argument("--format", required=True, help=f"one of: {', '.join(SWITCH_FORMATS)}")
    create.add_argument("--timezone", help="time zone of the switch's CDRs (default: tenant's)")
    create.add_argument(
        "--customer-field", default="customer", help="CDR field naming the customer"
    )
    create.add_argument(
        "--supplier-field", default="supplier", help="CDR field naming the supplier"
    )
    create.add_argument(
        "--default-supplier",
        metavar="ACCOUNT",
        help="supplier of calls whose CDR names none (e.g. FreeSWITCH's stock CSV templates)",
    )
    _json_flag(create)
    create.set_defaults(run=run_switch_create)

    account = subparsers.add_parser("account", help="manage accounts")
    account_actions = account.add_subparsers(dest="account_action", required=True, metavar="ACTION")
    create = account_actions.add_parser("create", help="create an account of a tenant")
    create.add_argument("tenant")
    create.add_argument("account")
    create.add_argument("--kind", required=True, choices=("customer", "supplier", "reseller"))
    create.add_argument("--parent", help="the reseller this account belongs to")
    billing = create.add_mutually_exclusive_group()
    billing.add_argument("--prepaid", dest="prepaid", action="store_true", help="prepaid")
    billing.add_argument(
        "--postpaid", dest="prepaid", action="store_false", help="postpaid (default)"
    )
    create.set_defaults(prepaid=False)
    create.add_argument("--credit-limit", default="0", help="e.g. 500.00 (default 0)")
    create.add_argument("--currency", help="default: the tenant's currency")
    _json_flag(create)
    create.set_defaults(run=run_account_create)

    cdr = subparsers.add_parser("cdr", help="raw CDR files")
    cdr_actions = cdr.add_subparsers(dest="cdr_action", required=True, metavar="ACTION")
    drop = cdr_actions.add_parser("drop", help="upload a CDR file as if the switch had sent it")
    drop.add_argument("tenant")
    drop.add_argument("switch")
    drop.add_argument("file")
    _json_flag(drop)
    drop.set_defaults(run=run_cdr_drop)

    file = subparsers.add_parser("file", help="processed CDR files")
    file_actions = file.add_subparsers(dest="file_action", required=True, metavar="ACTION")
    status = file_actions.add_parser("status", help="processing status and counts")
    status.add_argument("tenant")
    status.add_argument(
        "file", nargs="?", help="a file name as dropped, or a file id (default: every file)"
    )
    _json_flag(status)
    status.set_defaults(run=run_file_status)

    balance = subparsers.add_parser("balance", help="an account's balance")
    balance.add_argument("tenant")
    balance.add_argument("account")
    _json_flag(balance)
    balance.set_defaults(run=run_balance)

    payment = subparsers.add_parser("payment", help="payments")
    payment_actions = payment.add_subparsers(dest="payment_action", required=True, metavar="ACTION")
    record = payment_actions.add_parser("record", help="credit a payment to an account")
    record.add_argument("tenant")
    record.add_argument("account")
    record.add_argument("amount", help="e.g. 100.50 (at most 6 decimal places)")
    record.add_argument(
        "--reference", help="the payment's reference; recording it again changes nothing"
    )
    _json_flag(record)
    record.set_defaults(run=run_payment_record)


def register_deck_upload(deck_subparsers: argparse._SubParsersAction) -> None:
    """Add `upload` to the `deck` group (functions.cli.deck owns the group)."""
    upload = deck_subparsers.add_parser("upload", help="compile a deck and make it active")
    upload.add_argument("tenant")
    upload.add_argument("account")
    upload.add_argument("deck", help="deck CSV file")
    upload.add_argument("--currency", help="the deck's currency (default: the account's)")
    upload.add_argument("--skip-invalid", action="store_true", help="drop invalid rows")
    _json_flag(upload)
    upload.set_defaults(run=run_deck_upload)


# --- commands --------------------------------------------------------------------------


@_guarded
def run_tenant_create(args: argparse.Namespace) -> int:
    from functions.store import accounts

    tenant = accounts.create_tenant(
        args.tenant, currency=_currency(args.currency), timezone=_timezone(args.timezone)
    )
    payload = {"tenant": tenant.tenant, "currency": tenant.currency, "timezone": tenant.timezone}
    _emit(args, payload, f"created tenant {tenant.tenant} ({tenant.currency}, {tenant.timezone})")
    return 0


@_guarded
def run_switch_create(args: argparse.Namespace) -> int:
    from functions.store import accounts

    if args.format not in SWITCH_FORMATS:
        raise CliError(f"unknown format {args.format!r}: use one of {', '.join(SWITCH_FORMATS)}")
    for field in (args.customer_field, args.supplier_field):
        if not field.strip():
            raise CliError("--customer-field and --supplier-field must not be empty")
    switch = accounts.create_switch(
        args.tenant,
        args.switch,
        format=args.format,
        timezone=_timezone(args.timezone) if args.timezone else None,
        customer_field=args.customer_field,
        supplier_field=args.supplier_field,
        default_supplier=args.default_supplier,
    )
    payload = {
        "tenant": switch.tenant,
        "switch": switch.switch,
        "format": switch.format,
        "timezone": switch.timezone,
        "customer_field": switch.customer_field,
        "supplier_field": switch.supplier_field,
        "default_supplier": switch.default_supplier,
    }
    _emit(
        args,
        payload,
        f"created switch {switch.tenant}/{switch.switch} ({switch.format}, {switch.timezone}; "
        f"customer={switch.customer_field}, supplier={switch.supplier_field})",
    )
    return 0


@_guarded
def run_account_create(args: argparse.Namespace) -> int:
    from functions.store import accounts

    credit_limit = _amount(args.credit_limit, "credit limit")
    if credit_limit < 0:
        raise CliError(f"invalid credit limit {args.credit_limit!r}: must not be negative")
    account = accounts.create_account(
        args.tenant,
        args.account,
        kind=args.kind,
        parent=args.parent,
        prepaid=args.prepaid,
        credit_limit_micro=credit_limit,
        currency=_currency(args.currency) if args.currency else None,
    )
    payload = _account_payload(account)
    parent = f", parent {account.parent}" if account.parent else ""
    _emit(
        args,
        payload,
        f"created {account.kind} {account.tenant}/{account.account} ({payload['billing']}, "
        f"credit limit {payload['credit_limit']} {account.currency}{parent})",
    )
    return 0


@_guarded
def run_cdr_drop(args: argparse.Namespace) -> int:
    from functions.shared.settings import settings
    from functions.store import accounts, lake

    accounts.get_switch(args.tenant, args.switch)  # unknown tenant or switch: say so
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CliError(f"cannot read {args.file}: {error.strerror}") from None
    dropped = lake.put_cdr(args.tenant, args.switch, path.name, data)
    bucket = settings().cdr_bucket
    payload = {
        "tenant": dropped.tenant,
        "switch": dropped.switch,
        "file": dropped.name,
        "bucket": bucket,
        "key": dropped.key,
        "bytes": len(data),
    }
    _emit(args, payload, f"dropped {len(data)} bytes to s3://{bucket}/{dropped.key}")
    return 0


def _file_payload(record: Any) -> dict[str, Any]:
    meta = record.meta or {}
    payload = {
        "file": meta.get("name", record.file_id),
        "switch": meta.get("switch"),
        "file_id": record.file_id,
        "status": record.status,
    }
    payload |= {name: record.counts.get(name, 0) for name in FILE_COUNTS}
    if meta.get("error"):
        payload["error"] = meta["error"]
    return payload


FILE_COUNTS = ("rows", "rated", "unrated", "quarantined", "duplicates")


@_guarded
def run_file_status(args: argparse.Namespace) -> int:
    from functions.store import accounts, files

    accounts.get_tenant(args.tenant)
    records = files.list_files(args.tenant)
    if args.file:  # the name it was dropped under (all its drops), or its file id
        records = [r for r in records if args.file in (r.file_id, (r.meta or {}).get("name"))]
        if not records:
            raise CliError(f"no file {args.file!r} in tenant {args.tenant}")
    if args.json:
        for record in records:  # JSON Lines: one object per file
            print(json.dumps(_file_payload(record)))
        return 0
    if not records:
        print(f"no files for tenant {args.tenant}")
        return 0
    columns = ("file", "status", "rows", "rated", "unrated", "quarantined", "duplicates")
    rows = [[str(_file_payload(r)[c]) for c in columns] for r in records]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return 0


@_guarded
def run_balance(args: argparse.Namespace) -> int:
    from functions.store import accounts, ledger

    account = accounts.get_account(args.tenant, args.account)
    balance, reserved = ledger.get_balance(args.tenant, args.account)
    payload = {
        "tenant": account.tenant,
        "account": account.account,
        "currency": account.currency,
        "balance": _money(balance),
        "reserved": _money(reserved),
    }
    _emit(
        args,
        payload,
        f"{account.tenant}/{account.account}: balance {payload['balance']} {account.currency}"
        f" (reserved {payload['reserved']})",
    )
    return 0


def _payment_id(reference: str | None) -> str:
    """A reference of any spelling names one payment; without one, every call is new."""
    if reference is None:
        return f"pay-{uuid.uuid4().hex}"
    if not reference.strip():
        raise CliError("--reference must not be empty")
    return "ref-" + hashlib.sha256(reference.encode()).hexdigest()[:40]


@_guarded
def run_payment_record(args: argparse.Namespace) -> int:
    from functions.store import accounts, ledger

    account = accounts.get_account(args.tenant, args.account)
    amount = _amount(args.amount, "amount")
    if amount <= 0:
        raise CliError(f"invalid amount {args.amount!r}: a payment must be positive")
    payment_id = _payment_id(args.reference)
    recorded = ledger.record_payment(
        args.tenant, args.account, amount, payment_id, reference=args.reference
    )
    balance, _ = ledger.get_balance(args.tenant, args.account)
    payload = {
        "tenant": account.tenant,
        "account": account.account,
        "payment_id": payment_id,
        "reference": args.reference,
        "amount": _money(amount),
        "currency": account.currency,
        "recorded": recorded,
        "balance": _money(balance),
    }
    verb = "recorded" if recorded else "already recorded, unchanged:"
    _emit(
        args,
        payload,
        f"{verb} payment {payload['amount']} {account.currency} to "
        f"{account.tenant}/{account.account}; balance {payload['balance']}",
    )
    return 0


@_guarded
def run_deck_upload(args: argparse.Namespace) -> int:
    from functions.rate.deck import InvalidDeckError, parse_deck
    from functions.store import accounts, lake

    account = accounts.get_account(args.tenant, args.account)
    currency = _currency(args.currency) if args.currency else account.currency
    if currency != account.currency:
        raise CliError(
            f"deck currency {currency} differs from account {account.account}'s currency "
            f"{account.currency}"
        )
    path = Path(args.deck)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CliError(f"cannot read {args.deck}: {error.strerror}") from None
    try:
        deck = parse_deck(data, source=path.name, currency=currency, skip_invalid=args.skip_invalid)
    except InvalidDeckError as error:
        raise CliError(f"invalid deck {error}") from None
    # Order matters: the version number is reserved, the immutable Parquet written, the
    # version recorded, and only then does the account's pointer move.
    version = accounts.reserve_deck_version(args.tenant, args.account)
    table = deck.table.replace_schema_metadata(
        {
            **(deck.table.schema.metadata or {}),
            b"tollgate.currency": deck.currency.encode(),
            b"tollgate.source": path.name.encode(),
        }
    )
    key, sha256 = lake.put_deck(args.tenant, args.account, version, table)
    accounts.put_deck_version(
        args.tenant,
        args.account,
        version,
        key=key,
        currency=deck.currency,
        rows=table.num_rows,
        skipped=len(deck.skipped),
        source=path.name,
        sha256=sha256,
    )
    active = accounts.activate_deck(args.tenant, args.account, version)
    payload = {
        "tenant": account.tenant,
        "account": account.account,
        "version": version,
        "active": active,
        "rows": table.num_rows,
        "skipped": len(deck.skipped),
        "currency": deck.currency,
        "key": key,
    }
    state = "active" if active else "stored (a newer version is already active)"
    lines = [
        f"deck v{version} of {account.tenant}/{account.account} {state}: "
        f"{table.num_rows} rates in {deck.currency}"
    ]
    if deck.skipped:
        lines.append(f"skipped {len(deck.skipped)} invalid rows:")
        lines += [f"  {error}" for error in deck.skipped]
    _emit(args, payload, "\n".join(lines))
    return 0
