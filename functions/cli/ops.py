"""`tollgate tenant|switch|account|cdr|file`: operate the pipeline's state.

Every command takes --json for scripts; amounts print as decimal strings with 6 places.
"""

from __future__ import annotations

import argparse
import json
import os
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

SWITCH_FORMATS = (
    "generic",
    "freeswitch-csv",
    "freeswitch-json",
    "asterisk-csv",
    "vos3000",
    "mapped",
    "kamailio-acc-cdrs",
    "kamailio-acc",
)
ACCOUNT_KINDS = ("customer", "supplier", "reseller")


def _rounding_flags(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    parser.add_argument(
        "--rounding",
        choices=("half_up", "up", "down"),
        default="half_up" if defaults else None,
        help="how each charge is rounded, once" + (" (default half_up)" if defaults else ""),
    )
    parser.add_argument(
        "--decimals",
        type=int,
        default=6 if defaults else None,
        help="decimal places of each charge, 0-6" + (" (default 6)" if defaults else ""),
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
        "status_reason": account.status_reason,
        "status_since": _when(account.status_since),
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
    _register_tenant_admin(tenant_actions)

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
    _register_switch_columns(switch_actions)
    from functions.cli import access  # `switch credentials`: drop roles live with access

    access.register_switch_credentials(switch_actions)
    from functions.cli import watch  # `switch watch`: alarms live with monitoring

    watch.register(switch_actions)
    from functions.cli import assurance  # `switch assurance`: the file sequence it checks

    assurance.register_switch(switch_actions)
    _register_switch_admin(switch_actions)

    account = subparsers.add_parser("account", help="manage accounts")
    account_actions = account.add_subparsers(dest="account_action", required=True, metavar="ACTION")
    create = account_actions.add_parser("create", help="create an account of a tenant")
    create.add_argument("tenant")
    create.add_argument("account")
    create.add_argument("--kind", required=True, choices=ACCOUNT_KINDS)
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
    _register_account_admin(account_actions)

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
    from functions.cli import recovery  # `file retry` lives with `dlq`: both rerun files

    retry = file_actions.add_parser(
        "retry", help="run a failed or rejected file again (after fixing its cause)"
    )
    retry.add_argument("tenant")
    retry.add_argument("file", help="a file name as dropped, or a file id")
    json_flag(retry)
    retry.set_defaults(run=recovery.run_file_retry)
    reindex_help = (
        "give files recorded before the registry's day index their index item, so the "
        "assurance check sees their rejected and failed files (a one-off migration: it reads "
        "the tenant's whole registry in one Query); running it again writes nothing"
    )
    reindex = file_actions.add_parser("reindex", help=reindex_help, description=reindex_help)
    reindex.add_argument("tenant")
    json_flag(reindex)
    reindex.set_defaults(run=run_file_reindex)


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


def _check_format(name: str) -> str:
    if name not in SWITCH_FORMATS:
        raise CliError(f"unknown format {name!r}: use one of {', '.join(SWITCH_FORMATS)}")
    return name


@guarded
def run_switch_create(args: argparse.Namespace) -> int:
    from functions.store import accounts

    _check_format(args.format)
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
    mapping.add_argument(
        "--plan",
        metavar="NAME",
        help="ingress only: the customer's rate plan for calls on this trunk (wins over its "
        "caller rules; default: by caller rule, else default)",
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
    _change_flags(numbering)
    json_flag(numbering)
    numbering.set_defaults(run=run_switch_numbering)


def _mapping_payload(mapping: Any) -> dict[str, Any]:
    return {
        "tenant": mapping.tenant,
        "switch": mapping.switch,
        "direction": mapping.direction,
        "key": mapping.key,
        "account": mapping.account,
        # Only ingress trunks choose a plan (the customer's product).
        **({"plan": mapping.plan} if mapping.direction == "ingress" else {}),
    }


@guarded
def run_switch_map(args: argparse.Namespace) -> int:
    from functions.store import accounts

    mapping = accounts.map_trunk(
        args.tenant, args.switch, args.direction, args.key, args.account, plan=args.plan
    )
    plan = f" (plan {mapping.plan})" if mapping.plan else ""
    emit(
        args,
        _mapping_payload(mapping),
        f"{mapping.tenant}/{mapping.switch}: {mapping.direction} {mapping.key} -> "
        f"{mapping.account}{plan}",
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
    history = accounts.list_audit(args.tenant, "switch", args.switch)
    payload = {
        **_switch_payload(switch),
        "ingress": {m.key: m.account for m in mappings if m.direction == "ingress"},
        "egress": {m.key: m.account for m in mappings if m.direction == "egress"},
        "ingress_plans": {m.key: m.plan for m in mappings if m.plan is not None},
        "history": [_audit_payload(e) for e in history],
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
    print(f"  columns           {_columns_text(switch.column_mapping)}")
    if not mappings:
        print("  trunks            none mapped: CDRs name their accounts")
    width = max((len(m.key) for m in mappings), default=0)
    for m in mappings:
        plan = f" (plan {m.plan})" if m.plan else ""
        print(f"  {m.direction:<7} {m.key:<{width}}  -> {m.account}{plan}")
    print("\n".join(_history_lines(payload["history"])))
    return 0


# --- switch columns: a column mapping (functions.ingest.formats.mapped) ----------------------


def _register_switch_columns(switch_actions: argparse._SubParsersAction) -> None:
    columns = switch_actions.add_parser(
        "columns",
        help="which CSV column holds which CDR field: a `mapped` switch's column mapping "
        "(docs/formats.md)",
        description="Set the switch's whole column mapping (it replaces the one before). "
        "Example: tollgate switch columns acme sbc1 --column caller=SRC --column callee=DST "
        "--column start=Start --column answer=Answer --column end=End "
        "--column disposition=Status --disposition 'Normal=ANSWERED,Busy=BUSY' "
        "--time-format '%%Y-%%m-%%d %%H:%%M:%%S' --timezone Europe/London --delimiter ';'",
    )
    columns.add_argument("tenant")
    columns.add_argument("switch")
    columns.add_argument(
        "--column",
        action="append",
        default=[],
        dest="columns",
        metavar="MEMBER=HEADER",
        help="the header column holding MEMBER: call_id, caller, callee, start, answer, end, "
        "duration, disposition, customer, supplier, ingress_trunk, ingress_ip, egress_trunk, "
        "egress_ip, pdd_ms, mos, amount; repeatable",
    )
    columns.add_argument(
        "--time-format",
        metavar="ISO|EPOCH|EPOCH_MS|PATTERN",
        help="how times are written (default ISO; a strptime pattern is the switch's wall "
        "clock unless it has %%z)",
    )
    columns.add_argument(
        "--timezone", metavar="TZ", help="zone of wall-clock times (default: the switch's)"
    )
    columns.add_argument(
        "--disposition",
        action="append",
        default=[],
        dest="dispositions",
        metavar="VALUE=DISPOSITION,...",
        help="what the switch's dispositions mean, e.g. 'Normal=ANSWERED,Busy=BUSY' (SIP codes "
        "are known without it); repeatable",
    )
    columns.add_argument("--delimiter", metavar="CHAR", help="field separator (default ,)")
    columns.add_argument("--file", type=Path, metavar="MAPPING.json", help="the mapping as JSON")
    columns.add_argument("--clear", action="store_true", help="remove the switch's mapping")
    _change_flags(columns)
    json_flag(columns)
    columns.set_defaults(run=run_switch_columns)


def _pairs(texts: list[str], option: str, member: str) -> dict[str, str]:
    """`A=B` texts (each may hold several, comma-separated, for --disposition) as a dict."""
    out: dict[str, str] = {}
    for text in texts:
        for item in text.split(",") if option == "--disposition" else [text]:
            key, sign, value = item.partition("=")
            if not sign or not key.strip() or not value.strip():
                raise CliError(f"invalid {option} {item!r}: use {member}")
            out[key.strip()] = value.strip()
    return out


def column_mapping_of(args: argparse.Namespace) -> dict[str, Any] | None:
    """The JSON form of a mapping the flags (or --file) give; None with --clear."""
    flags = (args.columns, args.time_format, args.timezone, args.dispositions, args.delimiter)
    given = any(f for f in flags)
    if args.clear:
        if given or args.file:
            raise CliError("--clear takes no other mapping option")
        return None
    if args.file:
        if given:
            raise CliError("--file takes no other mapping option")
        try:
            return json.loads(args.file.read_text())
        except OSError as error:
            raise CliError(f"cannot read {args.file}: {error.strerror or error}") from None
        except ValueError as error:
            raise CliError(f"{args.file}: not JSON ({error})") from None
    if not args.columns:
        raise CliError("give --column MEMBER=HEADER (repeatable), --file or --clear")
    mapping: dict[str, Any] = {"columns": _pairs(args.columns, "--column", "MEMBER=HEADER")}
    if args.time_format is not None:
        mapping["time_format"] = args.time_format
    if args.timezone is not None:
        mapping["timezone"] = args.timezone
    if args.dispositions:
        mapping["dispositions"] = _pairs(args.dispositions, "--disposition", "VALUE=DISPOSITION")
    if args.delimiter is not None:
        mapping["delimiter"] = args.delimiter
    return mapping


def _columns_text(mapping: dict[str, Any] | None) -> str:
    if not mapping:
        return "-"
    columns = ", ".join(f"{m}={c}" for m, c in mapping["columns"].items())
    extra = [f"times {mapping['time_format']}"]
    if mapping.get("timezone"):
        extra.append(f"in {mapping['timezone']}")
    if mapping.get("dispositions"):
        extra.append(
            "dispositions " + ",".join(f"{k}={v}" for k, v in mapping["dispositions"].items())
        )
    if mapping.get("delimiter", ",") != ",":
        extra.append(f"delimiter {mapping['delimiter']!r}")
    return f"{columns} ({'; '.join(extra)})"


@guarded
def run_switch_columns(args: argparse.Namespace) -> int:
    from functions.store import accounts

    mapping = column_mapping_of(args)
    switch, entry = accounts.set_column_mapping(
        args.tenant, args.switch, mapping, actor=_actor(args), reason=args.reason
    )
    audit = None if entry is None else _audit_payload(entry)
    emit(
        args,
        {
            "tenant": switch.tenant,
            "switch": switch.switch,
            "format": switch.format,
            "column_mapping": switch.column_mapping,
            "audit": audit,
        },
        f"{switch.tenant}/{switch.switch}: columns {_columns_text(switch.column_mapping)}",
    )
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
    switch = accounts.set_numbering(
        args.tenant, args.switch, plan, actor=_actor(args), reason=args.reason
    )
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


# --- list, show and update: tenants, switches, accounts, with their audit trail -------------


def _change_flags(parser: argparse.ArgumentParser, *, reason_required: bool = False) -> None:
    """--reason and --by: what an audit entry records besides the change itself."""
    parser.add_argument(
        "--reason",
        metavar="TEXT",
        required=reason_required,
        help="why: kept in the audit trail" + ("" if reason_required else " (optional)"),
    )
    parser.add_argument(
        "--by",
        metavar="NAME",
        help="who makes the change, for the audit trail (default: $TOLLGATE_OPERATOR, else "
        "your AWS identity; the AWS identity is recorded as the principal either way)",
    )


def _actor(args: argparse.Namespace) -> Any:
    from functions.store import accounts

    return accounts.caller(args.by or os.environ.get("TOLLGATE_OPERATOR") or None)


def _when(moment: Any) -> str | None:
    return None if moment is None else moment.isoformat(timespec="microseconds")


# An account's stored fields as `account show` names and prints them.
_ACCOUNT_FIELD_NAMES = {
    "prepaid": "billing",
    "credit_limit_micro": "credit_limit",
    "rounding_decimals": "decimals",
}


def _account_value(field: str, value: Any) -> Any:
    if value is None:  # before the account was created
        return None
    if field == "prepaid":
        return "prepaid" if value else "postpaid"
    if field == "credit_limit_micro":
        return money_text(value)
    return value


def _audit_payload(entry: Any) -> dict[str, Any]:
    """An audit entry; an account's fields named and valued as `account show` prints them."""
    changes = []
    for change in entry.changes:
        field, old, new = change.field, change.old, change.new
        if entry.subject == "account":
            field = _ACCOUNT_FIELD_NAMES.get(change.field, change.field)
            old, new = _account_value(change.field, old), _account_value(change.field, new)
        changes.append({"field": field, "old": old, "new": new})
    return {
        "at": _when(entry.at),
        "by": entry.by,
        "principal": entry.principal,
        "reason": entry.reason,
        "changes": changes,
        "change_id": entry.change_id,
    }


def _value_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _changes_text(entry: dict[str, Any]) -> str:
    return "; ".join(
        f"{c['field']} {_value_text(c['old'])} -> {_value_text(c['new'])}" for c in entry["changes"]
    )


def _history_lines(history: list[dict[str, Any]]) -> list[str]:
    if not history:
        return ["  history           no changes since created"]
    lines = ["  history"]
    for entry in history:
        who = entry["by"]
        if entry["by"] != entry["principal"]:
            who += f" ({entry['principal']})"
        why = f" ({entry['reason']})" if entry["reason"] else ""
        lines.append(f"    {entry['at']}  {who}: {_changes_text(entry)}{why}")
    return lines


def _updated_text(what: str, audit: dict[str, Any] | None) -> str:
    if audit is None:
        return f"{what}: nothing changed"
    return f"{what}: {_changes_text(audit)} (by {audit['by']})"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _register_tenant_admin(actions: argparse._SubParsersAction) -> None:
    listing = actions.add_parser("list", help="every tenant")
    json_flag(listing)
    listing.set_defaults(run=run_tenant_list)

    show = actions.add_parser("show", help="a tenant's settings, switches, accounts and history")
    show.add_argument("tenant")
    json_flag(show)
    show.set_defaults(run=run_tenant_show)

    update = actions.add_parser(
        "update",
        help="change a tenant's currency (new accounts' default) or time zone (statement days)",
    )
    update.add_argument("tenant")
    update.add_argument("--currency", help="billing currency of accounts created from now on")
    update.add_argument("--timezone", help="IANA time zone of statement days")
    update.add_argument(
        "--authz-fallback",
        metavar="open|closed",
        help="when authorization cannot decide in time: allow (open) or deny (closed)",
    )
    update.add_argument(
        "--authz-fallback-seconds",
        type=int,
        metavar="N",
        help="the longest call allowed while failing open",
    )
    _change_flags(update)
    json_flag(update)
    update.set_defaults(run=run_tenant_update)


def _tenant_payload(tenant: Any) -> dict[str, Any]:
    return {
        "tenant": tenant.tenant,
        "currency": tenant.currency,
        "timezone": tenant.timezone,
        "authz_fallback": tenant.authz_fallback,
        "authz_fallback_seconds": tenant.authz_fallback_seconds,
    }


@guarded
def run_tenant_list(args: argparse.Namespace) -> int:
    from functions.store import accounts

    tenants = [_tenant_payload(t) for t in accounts.list_tenants()]
    rows = [["tenant", "currency", "timezone"]]
    rows += [[t["tenant"], t["currency"], t["timezone"]] for t in tenants]
    emit(args, tenants, _table(rows) if tenants else "no tenants")
    return 0


@guarded
def run_tenant_show(args: argparse.Namespace) -> int:
    from functions.store import accounts

    tenant = accounts.get_tenant(args.tenant)
    members = accounts.list_accounts(args.tenant)
    payload = {
        **_tenant_payload(tenant),
        "switches": [s.switch for s in accounts.list_switches(args.tenant)],
        "accounts": {kind: sum(a.kind == kind for a in members) for kind in ACCOUNT_KINDS},
        "history": [
            _audit_payload(e) for e in accounts.list_audit(args.tenant, "tenant", args.tenant)
        ],
    }
    counts = ", ".join(f"{n} {kind}s" for kind, n in payload["accounts"].items())
    text = [
        f"tenant {tenant.tenant}: {tenant.currency}, {tenant.timezone}",
        f"  authz fallback    {tenant.authz_fallback}"
        + (f" (max {tenant.authz_fallback_seconds} s)" if tenant.authz_fallback == "open" else ""),
        f"  switches          {', '.join(payload['switches']) or '-'}",
        f"  accounts          {counts}",
        *_history_lines(payload["history"]),
    ]
    emit(args, payload, "\n".join(text))
    return 0


@guarded
def run_tenant_update(args: argparse.Namespace) -> int:
    from functions.store import accounts

    changes = {}
    if args.currency is not None:
        changes["currency"] = currency_code(args.currency)
    if args.timezone is not None:
        changes["timezone"] = timezone_name(args.timezone)
    if args.authz_fallback is not None:
        changes["authz_fallback"] = args.authz_fallback
    if args.authz_fallback_seconds is not None:
        changes["authz_fallback_seconds"] = args.authz_fallback_seconds
    if not changes:
        raise CliError(
            "nothing to change: give --currency, --timezone, --authz-fallback"
            " and/or --authz-fallback-seconds"
        )
    tenant, entry = accounts.update_tenant(
        args.tenant, changes, actor=_actor(args), reason=args.reason
    )
    audit = None if entry is None else _audit_payload(entry)
    emit(
        args,
        {**_tenant_payload(tenant), "audit": audit},
        _updated_text(f"tenant {tenant.tenant}", audit),
    )
    return 0


def _register_switch_admin(actions: argparse._SubParsersAction) -> None:
    listing = actions.add_parser("list", help="a tenant's switches")
    listing.add_argument("tenant")
    json_flag(listing)
    listing.set_defaults(run=run_switch_list)

    update = actions.add_parser("update", help="change how a switch's next files are read")
    update.add_argument("tenant")
    update.add_argument("switch")
    update.add_argument("--format", help=f"one of: {', '.join(SWITCH_FORMATS)}")
    update.add_argument("--timezone", help="time zone of the switch's CDRs")
    update.add_argument("--customer-field", help="CDR field naming the customer")
    update.add_argument("--supplier-field", help="CDR field naming the supplier")
    supplier = update.add_mutually_exclusive_group()
    supplier.add_argument(
        "--default-supplier", metavar="ACCOUNT", help="supplier of calls whose CDR names none"
    )
    supplier.add_argument(
        "--no-default-supplier", action="store_true", help="calls whose CDR names none: no supplier"
    )
    template = update.add_mutually_exclusive_group()
    template.add_argument(
        "--template", metavar="VAR,VAR,...", help="freeswitch-csv: the switch's own template"
    )
    template.add_argument(
        "--no-template", action="store_true", help="freeswitch-csv: back to the stock templates"
    )
    _change_flags(update)
    json_flag(update)
    update.set_defaults(run=run_switch_update)


def _switch_payload(switch: Any) -> dict[str, Any]:
    return {
        "tenant": switch.tenant,
        "switch": switch.switch,
        "format": switch.format,
        "timezone": switch.timezone,
        "customer_field": switch.customer_field,
        "supplier_field": switch.supplier_field,
        "default_supplier": switch.default_supplier,
        "template": list(switch.template) if switch.template else None,
        "numbering": _numbering_payload(switch.numbering),
        "column_mapping": switch.column_mapping,
    }


@guarded
def run_switch_list(args: argparse.Namespace) -> int:
    from functions.store import accounts

    accounts.get_tenant(args.tenant)
    switches = accounts.list_switches(args.tenant)
    payload = [_switch_payload(s) for s in switches]
    rows = [["switch", "format", "timezone", "customer", "supplier", "default supplier"]]
    rows += [
        [s.switch, s.format, s.timezone, s.customer_field, s.supplier_field,
         s.default_supplier or "-"]
        for s in switches
    ]  # fmt: skip
    emit(args, payload, _table(rows) if switches else f"no switches in tenant {args.tenant}")
    return 0


@guarded
def run_switch_update(args: argparse.Namespace) -> int:
    from functions.store import accounts

    changes: dict[str, Any] = {}
    if args.format is not None:
        changes["format"] = _check_format(args.format)
    if args.timezone is not None:
        changes["timezone"] = timezone_name(args.timezone)
    for field in ("customer_field", "supplier_field"):
        if getattr(args, field) is not None:
            changes[field] = getattr(args, field)
    if args.default_supplier is not None or args.no_default_supplier:
        changes["default_supplier"] = args.default_supplier
    if args.template is not None:
        changes["template"] = args.template.split(",")
    elif args.no_template:
        changes["template"] = None
    if not changes:
        raise CliError(
            "nothing to change: give --format, --timezone, --customer-field, --supplier-field, "
            "--default-supplier/--no-default-supplier or --template/--no-template"
        )
    switch, entry = accounts.update_switch(
        args.tenant, args.switch, changes, actor=_actor(args), reason=args.reason
    )
    audit = None if entry is None else _audit_payload(entry)
    emit(
        args,
        {**_switch_payload(switch), "audit": audit},
        _updated_text(f"switch {switch.tenant}/{switch.switch}", audit),
    )
    return 0


def _register_account_admin(actions: argparse._SubParsersAction) -> None:
    listing = actions.add_parser("list", help="a tenant's accounts")
    listing.add_argument("tenant")
    listing.add_argument("--kind", choices=ACCOUNT_KINDS, help="only accounts of this kind")
    listing.add_argument("--status", choices=("active", "suspended"), help="only this status")
    listing.add_argument("--parent", metavar="ACCOUNT", help="only the accounts under it")
    json_flag(listing)
    listing.set_defaults(run=run_account_list)

    show = actions.add_parser("show", help="an account's settings, balance and history")
    show.add_argument("tenant")
    show.add_argument("account")
    json_flag(show)
    show.set_defaults(run=run_account_show)

    update = actions.add_parser(
        "update",
        aliases=["set"],  # `set` (rounding only) came first: it stays as a name for update
        help="change an account's kind, parent, currency, billing, credit limit or rounding",
        description="Refused (exit 1) when it would break history or the reseller chain: a "
        "kind or currency change once money has moved for the account, a currency change "
        "once it has a rate deck, a kind change while a trunk or switch names it or while "
        "accounts are under it, a parent that would make a cycle. A new parent applies to "
        "the next charges, and to any calls re-rated after the change.",
    )
    update.add_argument("tenant")
    update.add_argument("account")
    update.add_argument("--kind", choices=ACCOUNT_KINDS)
    parent = update.add_mutually_exclusive_group()
    parent.add_argument("--parent", metavar="ACCOUNT", help="the reseller it belongs to")
    parent.add_argument(
        "--no-parent", action="store_true", help="it belongs to no reseller (the carrier's own)"
    )
    billing = update.add_mutually_exclusive_group()
    billing.add_argument("--prepaid", dest="prepaid", action="store_const", const=True)
    billing.add_argument("--postpaid", dest="prepaid", action="store_const", const=False)
    update.add_argument("--credit-limit", metavar="AMOUNT", help="e.g. 500.00")
    update.add_argument("--currency", help="only before its first deck and first money")
    _rounding_flags(update, defaults=False)
    _change_flags(update)
    json_flag(update)
    update.set_defaults(run=run_account_update)

    for action, status, says in (
        ("suspend", "suspended", "stop an account's service; its status says suspended"),
        ("resume", "active", "make a suspended account active again"),
    ):
        command = actions.add_parser(action, help=says)
        command.add_argument("tenant")
        command.add_argument("account")
        _change_flags(command, reason_required=True)
        json_flag(command)
        command.set_defaults(run=run_account_status, status=status)

    history = actions.add_parser("history", help="who changed an account's settings, when, why")
    history.add_argument("tenant")
    history.add_argument("account")
    json_flag(history)
    history.set_defaults(run=run_account_history)


@guarded
def run_account_list(args: argparse.Namespace) -> int:
    from functions.store import accounts

    accounts.get_tenant(args.tenant)
    found = [
        a
        for a in accounts.list_accounts(args.tenant)
        if args.kind in (None, a.kind)
        and args.status in (None, a.status)
        and args.parent in (None, a.parent)
    ]
    payload = [_account_payload(a) for a in found]
    columns = ("account", "kind", "parent", "billing", "credit_limit", "currency", "status")
    rows = [list(columns)] + [[str(p[c] or "-") for c in columns] for p in payload]
    emit(args, payload, _table(rows) if payload else f"no such accounts in tenant {args.tenant}")
    return 0


def _account_history(tenant: str, account: str) -> list[dict[str, Any]]:
    from functions.store import accounts

    return [_audit_payload(e) for e in accounts.list_audit(tenant, "account", account)]


@guarded
def run_account_show(args: argparse.Namespace) -> int:
    from functions.store import accounts, ledger

    account = accounts.get_account(args.tenant, args.account)
    balance, reserved = ledger.get_balance(args.tenant, args.account)
    payload = {
        **_account_payload(account),
        # Each rate plan's active deck version (default first) and the caller rules.
        "plans": ({} if account.deck_version is None else {"default": account.deck_version})
        | dict(sorted(account.plan_versions.items())),
        "plan_rules": dict(account.plan_rules),
        "balance": money_text(balance),
        "reserved": money_text(reserved),
        "history": _account_history(args.tenant, args.account),
    }
    status = account.status
    if account.status_reason:
        status += f" since {_when(account.status_since)} ({account.status_reason})"
    text = [
        f"{account.kind} {account.tenant}/{account.account} ({account.currency})",
        f"  parent            {account.parent or '-'}",
        f"  billing           {payload['billing']}, credit limit {payload['credit_limit']}",
        f"  rounding          {account.rounding} to {account.rounding_decimals} decimals",
        f"  status            {status}",
        f"  deck version      {account.deck_version or '-'}",
        f"  plans             {_plans_text(payload)}",
        f"  balance           {payload['balance']} (reserved {payload['reserved']})",
        *_history_lines(payload["history"]),
    ]
    emit(args, payload, "\n".join(text))
    return 0


@guarded
def run_account_update(args: argparse.Namespace) -> int:
    from functions.store import accounts

    changes: dict[str, Any] = {}
    if args.kind is not None:
        changes["kind"] = args.kind
    if args.parent is not None or args.no_parent:
        changes["parent"] = args.parent
    if args.prepaid is not None:
        changes["prepaid"] = args.prepaid
    if args.credit_limit is not None:
        changes["credit_limit_micro"] = parse_amount(args.credit_limit, "credit limit")
        if changes["credit_limit_micro"] < 0:
            raise CliError(f"invalid credit limit {args.credit_limit!r}: must not be negative")
    if args.currency is not None:
        changes["currency"] = currency_code(args.currency)
    if args.rounding is not None:
        changes["rounding"] = args.rounding
    if args.decimals is not None:
        changes["rounding_decimals"] = args.decimals
    if not changes:
        raise CliError(
            "nothing to change: give --kind, --parent/--no-parent, --prepaid/--postpaid, "
            "--credit-limit, --currency, --rounding and/or --decimals"
        )
    account, entry = accounts.update_account(
        args.tenant, args.account, changes, actor=_actor(args), reason=args.reason
    )
    audit = None if entry is None else _audit_payload(entry)
    emit(
        args,
        {**_account_payload(account), "audit": audit},
        _updated_text(f"{account.tenant}/{account.account}", audit),
    )
    return 0


@guarded
def run_account_status(args: argparse.Namespace) -> int:
    from functions.store import accounts

    if not args.reason.strip():
        raise CliError("--reason must not be empty")
    account, entry = accounts.update_account(
        args.tenant, args.account, {"status": args.status}, actor=_actor(args), reason=args.reason
    )
    audit = None if entry is None else _audit_payload(entry)
    who = f"{account.tenant}/{account.account}"
    if audit is None:
        text = f"{who} is already {account.status}; nothing changed"
    else:
        text = f"{who} {account.status} (by {audit['by']}: {audit['reason']})"
    emit(args, {**_account_payload(account), "audit": audit}, text)
    return 0


@guarded
def run_account_history(args: argparse.Namespace) -> int:
    from functions.store import accounts

    accounts.get_account(args.tenant, args.account)
    history = _account_history(args.tenant, args.account)
    text = [f"{args.tenant}/{args.account}", *_history_lines(history)]
    emit(args, history, "\n".join(text))
    return 0


@guarded
def run_cdr_drop(args: argparse.Namespace) -> int:
    from functions.shared.settings import settings
    from functions.store import accounts, iam, lake

    accounts.get_switch(args.tenant, args.switch)  # unknown tenant or switch: say so
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CliError(f"cannot read {args.file}: {error.strerror}") from None
    # Uploaded as the switch itself: the CDR bucket takes files from switches' drop roles
    # only (infra/package.yaml), and each of those only under its own prefix.
    as_switch = iam.drop_credentials(args.tenant, args.switch, iam.MIN_SESSION_SECONDS)
    s3 = as_switch.session().client("s3")
    dropped = lake.put_cdr(args.tenant, args.switch, path.name, data, s3=s3)
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
    if record.status == "rejected":
        payload["reason"] = record.reason  # why the file was refused: fix it, then retry
    elif record.error:  # failed, or failing while SQS still redelivers it
        payload["error"] = record.error
        payload["stage"] = record.stage
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
        print(json.dumps([_file_payload(record) for record in records]))
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
    # What stopped a file, under the table: the operator's next step depends on it.
    for record in records:
        payload = _file_payload(record)
        why = payload.get("reason") or payload.get("error")
        if why and payload["status"] in ("failed", "rejected", "retrying"):
            print(f"{payload['file']} ({payload['status']}): {why}")
    return 0


@guarded
def run_file_reindex(args: argparse.Namespace) -> int:
    from functions.store import accounts, files

    accounts.get_tenant(args.tenant)
    done = files.backfill_arrivals(args.tenant)
    payload = {
        "tenant": args.tenant,
        "files": done.files,
        "present": done.present,
        "written": done.written,
        "skipped": len(done.skipped),
        "skipped_files": [{"file_id": f, "reason": why} for f, why in done.skipped],
    }
    lines = [
        f"{args.tenant}: {done.files} files, {done.present} present, {done.written} written, "
        f"{len(done.skipped)} skipped",
        *(f"skipped {file_id}: {why}" for file_id, why in done.skipped),
    ]
    emit(args, payload, "\n".join(lines))
    return 0


def _plans_text(payload: dict[str, Any]) -> str:
    """Each plan's active deck, then the caller rules choosing them."""
    decks = ", ".join(f"{plan} v{version}" for plan, version in payload["plans"].items())
    rules = ", ".join(f"{prefix}... -> {plan}" for prefix, plan in payload["plan_rules"].items())
    return (decks or "no deck") + (f"; callers {rules}" if rules else "")
