"""`tollgate tenant|switch|account|cdr|file`: operate the pipeline's state.

Every command takes --json for scripts; amounts print as decimal strings with 6 places.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from functions.cli import (
    CliError,
    currency_code,
    emit,
    guarded,
    json_flag,
    money_text,
    parse_amount,
    timezone_name,
)

SWITCH_FORMATS = ("generic", "freeswitch-csv", "freeswitch-json", "asterisk-csv", "vos3000")


def _rounding_flags(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    parser.add_argument(
        "--rounding",
        choices=("half_up", "up", "down"),
        default="half_up" if defaults else None,
        help="how each charge is rounded, once (default half_up)",
    )
    parser.add_argument(
        "--decimals",
        type=int,
        default=6 if defaults else None,
        help="decimal places of each charge, 0-6 (default 6)",
    )


def _account_payload(account: Any) -> dict[str, Any]:
    return {
        "tenant": account.tenant,
        "account": account.account,
        "kind": account.kind,
        "parent": account.parent,
        "billing": "prepaid" if account.prepaid else "postpaid",
        "credit_limit": money_text(account.credit_limit_micro),
        "currency": account.currency,
        "status": account.status,
        "deck_version": account.deck_version,
        "rounding": account.rounding,
        "decimals": account.rounding_decimals,
    }


# --- registration ----------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    tenant = subparsers.add_parser("tenant", help="manage tenants")
    tenant_actions = tenant.add_subparsers(dest="tenant_action", required=True, metavar="ACTION")
    create = tenant_actions.add_parser("create", help="create a tenant")
    create.add_argument("tenant")
    create.add_argument("--currency", default="USD", help="billing currency (default USD)")
    create.add_argument("--timezone", default="UTC", help="IANA time zone (default UTC)")
    json_flag(create)
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
    create.add_argument(
        "--template",
        metavar="VAR,VAR,...",
        help="freeswitch-csv: the switch's own mod_cdr_csv template, its variables in order",
    )
    json_flag(create)
    create.set_defaults(run=run_switch_create)
    _register_switch_trunks(switch_actions)

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
    _rounding_flags(create, defaults=True)
    json_flag(create)
    create.set_defaults(run=run_account_create)
    update = account_actions.add_parser("set", help="change an account's contract settings")
    update.add_argument("tenant")
    update.add_argument("account")
    _rounding_flags(update, defaults=False)
    json_flag(update)
    update.set_defaults(run=run_account_set)

    cdr = subparsers.add_parser("cdr", help="raw CDR files")
    cdr_actions = cdr.add_subparsers(dest="cdr_action", required=True, metavar="ACTION")
    drop = cdr_actions.add_parser("drop", help="upload a CDR file as if the switch had sent it")
    drop.add_argument("tenant")
    drop.add_argument("switch")
    drop.add_argument("file")
    json_flag(drop)
    drop.set_defaults(run=run_cdr_drop)

    file = subparsers.add_parser("file", help="processed CDR files")
    file_actions = file.add_subparsers(dest="file_action", required=True, metavar="ACTION")
    status = file_actions.add_parser("status", help="processing status and counts")
    status.add_argument("tenant")
    status.add_argument(
        "file", nargs="?", help="a file name as dropped, or a file id (default: every file)"
    )
    json_flag(status)
    status.set_defaults(run=run_file_status)


# --- commands --------------------------------------------------------------------------


@guarded
def run_tenant_create(args: argparse.Namespace) -> int:
    from functions.store import accounts

    tenant = accounts.create_tenant(
        args.tenant, currency=currency_code(args.currency), timezone=timezone_name(args.timezone)
    )
    payload = {"tenant": tenant.tenant, "currency": tenant.currency, "timezone": tenant.timezone}
    emit(args, payload, f"created tenant {tenant.tenant} ({tenant.currency}, {tenant.timezone})")
    return 0


@guarded
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
        timezone=timezone_name(args.timezone) if args.timezone else None,
        customer_field=args.customer_field,
        supplier_field=args.supplier_field,
        default_supplier=args.default_supplier,
        template=args.template.split(",") if args.template is not None else None,
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
    if switch.template:
        payload["template"] = list(switch.template)
    emit(
        args,
        payload,
        f"created switch {switch.tenant}/{switch.switch} ({switch.format}, {switch.timezone}; "
        f"customer={switch.customer_field}, supplier={switch.supplier_field})",
    )
    return 0


# --- switch trunks and numbering ------------------------------------------------------------


def _register_switch_trunks(switch_actions: argparse._SubParsersAction) -> None:
    def direction(parser: argparse.ArgumentParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument(
            "--ingress",
            dest="direction",
            action="store_const",
            const="ingress",
            help="a trunk or IP calls come IN on (a customer's)",
        )
        which.add_argument(
            "--egress",
            dest="direction",
            action="store_const",
            const="egress",
            help="a trunk or IP calls go OUT on (a supplier's)",
        )

    mapping = switch_actions.add_parser(
        "map", help="map a trunk, gateway or IP of a switch's CDRs to an account"
    )
    mapping.add_argument("tenant")
    mapping.add_argument("switch")
    direction(mapping)
    mapping.add_argument("key", metavar="KEY", help="trunk/gateway name or IP as the CDRs write it")
    mapping.add_argument(
        "account", metavar="ACCOUNT", help="ingress: a customer; egress: a supplier"
    )
    json_flag(mapping)
    mapping.set_defaults(run=run_switch_map)

    unmap = switch_actions.add_parser("unmap", help="remove a trunk mapping")
    unmap.add_argument("tenant")
    unmap.add_argument("switch")
    direction(unmap)
    unmap.add_argument("key", metavar="KEY")
    json_flag(unmap)
    unmap.set_defaults(run=run_switch_unmap)

    show = switch_actions.add_parser(
        "show", help="a switch's format, zone, template, numbering rules and trunk mappings"
    )
    show.add_argument("tenant")
    show.add_argument("switch")
    json_flag(show)
    show.set_defaults(run=run_switch_show)

    numbering = switch_actions.add_parser(
        "numbering", help="how a switch writes numbers: tech prefixes, national form"
    )
    numbering.add_argument("tenant")
    numbering.add_argument("switch")
    numbering.add_argument(
        "--strip",
        nargs="+",
        metavar="PREFIX",
        help="tech prefixes to strip before the number (e.g. '#123' 9999); replaces the list",
    )
    numbering.add_argument(
        "--international-prefix", metavar="DIGITS", help="the switch's own, e.g. 011 (default 00)"
    )
    numbering.add_argument(
        "--national-prefix", metavar="DIGITS", help="national trunk prefix, e.g. 0"
    )
    numbering.add_argument(
        "--country-code", metavar="DIGITS", help="the switch's country code, e.g. 44"
    )
    numbering.add_argument(
        "--clear", action="store_true", help="drop every rule first (back to the default)"
    )
    json_flag(numbering)
    numbering.set_defaults(run=run_switch_numbering)


def _mapping_payload(mapping: Any) -> dict[str, Any]:
    return {
        "tenant": mapping.tenant,
        "switch": mapping.switch,
        "direction": mapping.direction,
        "key": mapping.key,
        "account": mapping.account,
    }


@guarded
def run_switch_map(args: argparse.Namespace) -> int:
    from functions.store import accounts

    mapping = accounts.map_trunk(args.tenant, args.switch, args.direction, args.key, args.account)
    emit(
        args,
        _mapping_payload(mapping),
        f"{mapping.tenant}/{mapping.switch}: {mapping.direction} {mapping.key} -> "
        f"{mapping.account}",
    )
    return 0


@guarded
def run_switch_unmap(args: argparse.Namespace) -> int:
    from functions.store import accounts

    mapping = accounts.unmap_trunk(args.tenant, args.switch, args.direction, args.key)
    emit(
        args,
        _mapping_payload(mapping),
        f"{mapping.tenant}/{mapping.switch}: {mapping.direction} {mapping.key} unmapped "
        f"(was {mapping.account})",
    )
    return 0


def _numbering_payload(plan: Any) -> dict[str, Any]:
    return {
        "strip": list(plan.strip),
        "international_prefix": plan.international_prefix,
        "national_prefix": plan.national_prefix,
        "country_code": plan.country_code,
    }


def _numbering_text(plan: Any) -> str:
    rules = []
    if plan.strip:
        rules.append(f"strip {' '.join(plan.strip)}")
    rules.append(f"international prefix + or {plan.international_prefix}")
    if plan.national_prefix:
        rules.append(f"national {plan.national_prefix}... -> {plan.country_code}...")
    return "; ".join(rules)


@guarded
def run_switch_show(args: argparse.Namespace) -> int:
    from functions.store import accounts

    switch = accounts.get_switch(args.tenant, args.switch)
    mappings = accounts.list_trunks(args.tenant, args.switch)
    payload = {
        "tenant": switch.tenant,
        "switch": switch.switch,
        "format": switch.format,
        "timezone": switch.timezone,
        "customer_field": switch.customer_field,
        "supplier_field": switch.supplier_field,
        "default_supplier": switch.default_supplier,
        "template": list(switch.template) if switch.template else None,
        "numbering": _numbering_payload(switch.numbering),
        "ingress": {m.key: m.account for m in mappings if m.direction == "ingress"},
        "egress": {m.key: m.account for m in mappings if m.direction == "egress"},
    }
    if args.json:
        print(json.dumps(payload))
        return 0
    print(f"switch {switch.tenant}/{switch.switch}: {switch.format}, {switch.timezone}")
    print(f"  customer field    {switch.customer_field}")
    print(f"  supplier field    {switch.supplier_field}")
    print(f"  default supplier  {switch.default_supplier or '-'}")
    print(f"  template          {','.join(switch.template) if switch.template else '-'}")
    print(f"  numbering         {_numbering_text(switch.numbering)}")
    if not mappings:
        print("  trunks            none mapped: CDRs name their accounts")
    width = max((len(m.key) for m in mappings), default=0)
    for m in mappings:
        print(f"  {m.direction:<7} {m.key:<{width}}  -> {m.account}")
    return 0


# NumberingPlan's field names, as the flags that set them.
_NUMBERING_FLAGS = {
    "strip": "--strip",
    "international_prefix": "--international-prefix",
    "national_prefix": "--national-prefix",
    "country_code": "--country-code",
}


@guarded
def run_switch_numbering(args: argparse.Namespace) -> int:
    from functions.ingest.numbers import DEFAULT_PLAN, NumberingPlan
    from functions.store import accounts

    given = {
        "strip": args.strip,
        "international_prefix": args.international_prefix,
        "national_prefix": args.national_prefix,
        "country_code": args.country_code,
    }
    if not args.clear and all(value is None for value in given.values()):
        raise CliError(
            "nothing to set: give --strip, --international-prefix, --national-prefix, "
            "--country-code and/or --clear"
        )
    current = (
        DEFAULT_PLAN if args.clear else accounts.get_switch(args.tenant, args.switch).numbering
    )
    rules = _numbering_payload(current) | {k: v for k, v in given.items() if v is not None}
    try:
        plan = NumberingPlan(
            strip=tuple(rules["strip"]),
            international_prefix=rules["international_prefix"],
            national_prefix=rules["national_prefix"],
            country_code=rules["country_code"],
        )
    except ValueError as error:
        # Field names become flags in the words before the first quoted value only.
        words, quote, rest = str(error).partition("'")
        for name, flag in _NUMBERING_FLAGS.items():
            words = words.replace(name, flag)
        raise CliError(words + quote + rest) from None
    switch = accounts.set_numbering(args.tenant, args.switch, plan)
    emit(
        args,
        {"tenant": switch.tenant, "switch": switch.switch} | _numbering_payload(switch.numbering),
        f"{switch.tenant}/{switch.switch}: {_numbering_text(switch.numbering)}",
    )
    return 0


@guarded
def run_account_create(args: argparse.Namespace) -> int:
    from functions.store import accounts

    credit_limit = parse_amount(args.credit_limit, "credit limit")
    if credit_limit < 0:
        raise CliError(f"invalid credit limit {args.credit_limit!r}: must not be negative")
    account = accounts.create_account(
        args.tenant,
        args.account,
        kind=args.kind,
        parent=args.parent,
        prepaid=args.prepaid,
        credit_limit_micro=credit_limit,
        currency=currency_code(args.currency) if args.currency else None,
        rounding=args.rounding,
        rounding_decimals=args.decimals,
    )
    payload = _account_payload(account)
    parent = f", parent {account.parent}" if account.parent else ""
    emit(
        args,
        payload,
        f"created {account.kind} {account.tenant}/{account.account} ({payload['billing']}, "
        f"credit limit {payload['credit_limit']} {account.currency}{parent})",
    )
    return 0


@guarded
def run_account_set(args: argparse.Namespace) -> int:
    from functions.store import accounts

    current = accounts.get_account(args.tenant, args.account)
    if args.rounding is None and args.decimals is None:
        raise CliError("nothing to set: give --rounding and/or --decimals")
    account = accounts.set_rounding(
        args.tenant,
        args.account,
        args.rounding or current.rounding,
        current.rounding_decimals if args.decimals is None else args.decimals,
    )
    emit(
        args,
        _account_payload(account),
        f"{account.tenant}/{account.account}: charges rounded {account.rounding} to "
        f"{account.rounding_decimals} decimals",
    )
    return 0


@guarded
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
    emit(args, payload, f"dropped {len(data)} bytes to s3://{bucket}/{dropped.key}")
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


FILE_COUNTS = ("rows", "rated", "unrated", "quarantined", "duplicates", "unknown_account")


@guarded
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
    columns = ("file", "status", *FILE_COUNTS)
    rows = [[str(_file_payload(r)[c]) for c in columns] for r in records]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return 0
