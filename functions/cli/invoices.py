"""`tollgate billing|invoice`: billing profiles, the invoice cycle, issued invoices.

    tollgate billing set TENANT [ACCOUNT] --legal-name ... --tax standard:20 --cycle monthly
    tollgate billing show TENANT [ACCOUNT] --json
    tollgate billing fx TENANT --from USD --to EUR --rate 0.9213 --day 2026-03-31
    tollgate invoice run TENANT --period 2026-03 [--account A] [--wait]
    tollgate invoice list TENANT [--account A] [--period P] [--json]
    tollgate invoice show TENANT NUMBER --json
    tollgate invoice download TENANT NUMBER --format pdf|xml|csv|cdrs --out FILE [--json]
    tollgate invoice credit TENANT NUMBER [--amount A] --reason TEXT

Without ACCOUNT, `billing` sets the tenant's own profile: the carrier as the seller of its
invoices. A reseller's profile is the seller of its own customers' invoices (white label).
"""

from __future__ import annotations

import argparse
import datetime as dt
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from functions.cli import (
    CliError,
    OperationError,
    currency_code,
    day_arg,
    emit,
    guarded,
    json_flag,
    tenant_today,
    timezone_name,
)

# --format: the document's key in the invoice's documents
FORMATS = {"pdf": "pdf", "xml": "xml", "csv": "lines", "summary": "summary", "cdrs": "cdrs"}


def register(subparsers: argparse._SubParsersAction) -> None:
    billing = subparsers.add_parser("billing", help="billing profiles and FX rates")
    actions = billing.add_subparsers(dest="billing_action", required=True, metavar="ACTION")
    put = actions.add_parser(
        "set",
        help="set fields of a billing profile (the others keep their values)",
        description="Without ACCOUNT: the tenant's own profile (the carrier as seller).",
    )
    put.add_argument("tenant")
    put.add_argument("account", nargs="?")
    for name in ("legal-name", "address", "city", "postcode", "email", "phone", "brand"):
        put.add_argument(f"--{name}")
    put.add_argument("--country", metavar="CC", help="ISO 3166 code, e.g. DE")
    put.add_argument("--vat-id")
    put.add_argument("--iban", help="the issuer's account for payment instructions")
    put.add_argument(
        "--tax",
        metavar="standard:RATE|reverse_charge|exempt",
        help="tax treatment from --tax-from (default: today); RATE in percent",
    )
    put.add_argument("--tax-from", type=day_arg, metavar="YYYY-MM-DD")
    put.add_argument("--certificate", help="exempt: the exemption certificate on file")
    put.add_argument("--terms-days", type=int, metavar="N", help="payment terms: net N days")
    put.add_argument("--cycle", choices=("monthly", "semimonthly", "weekly"))
    put.add_argument("--series", metavar="PREFIX", help="an issuer's invoice number prefix")
    put.add_argument("--currency", type=currency_code, help="invoice currency (FX at period end)")
    put.add_argument("--timezone", type=timezone_name, help="the cycle's days (IANA name)")
    json_flag(put)
    put.set_defaults(run=run_billing_set)

    show = actions.add_parser("show", help="a billing profile")
    show.add_argument("tenant")
    show.add_argument("account", nargs="?")
    json_flag(show)
    show.set_defaults(run=run_billing_show)

    fx = actions.add_parser("fx", help="an FX rate, in force from its day on")
    fx.add_argument("tenant")
    fx.add_argument("--from", dest="source", type=currency_code, required=True)
    fx.add_argument("--to", dest="target", type=currency_code, required=True)
    fx.add_argument("--rate", required=True, help="units of --to per unit of --from")
    fx.add_argument("--day", type=day_arg, required=True)
    fx.add_argument("--source-name", default="operator", help="e.g. ECB")
    json_flag(fx)
    fx.set_defaults(run=run_billing_fx)

    invoice = subparsers.add_parser("invoice", help="invoice cycles and issued invoices")
    acts = invoice.add_subparsers(dest="invoice_action", required=True, metavar="ACTION")
    run = acts.add_parser(
        "run",
        help="start the invoice cycle of a period (again: changes nothing)",
        description="Periods: 2026-03 (monthly accounts), 2026-03-1 / 2026-03-2 "
        "(semimonthly halves), 2026-W10 (weekly).",
    )
    run.add_argument("tenant")
    run.add_argument("--period", required=True)
    run.add_argument("--account")
    run.add_argument("--issue-date", type=day_arg, help="default: today (the tenant's)")
    run.add_argument("--wait", action="store_true", help="wait for the run and report it")
    run.add_argument("--timeout", type=float, default=900.0, help="seconds --wait waits")
    json_flag(run)
    run.set_defaults(run=run_invoice_run)

    listing = acts.add_parser("list", help="issued invoices and credit notes")
    listing.add_argument("tenant")
    listing.add_argument("--account")
    listing.add_argument("--period")
    json_flag(listing)
    listing.set_defaults(run=run_invoice_list)

    show_one = acts.add_parser("show", help="one invoice or credit note")
    show_one.add_argument("tenant")
    show_one.add_argument("number")
    json_flag(show_one)
    show_one.set_defaults(run=run_invoice_show)

    download = acts.add_parser("download", help="an issued invoice's document")
    download.add_argument("tenant")
    download.add_argument("number")
    download.add_argument("--format", required=True, choices=tuple(FORMATS))
    download.add_argument("--out", required=True, type=Path)
    json_flag(download)
    download.set_defaults(run=run_invoice_download)

    credit = acts.add_parser("credit", help="issue a credit note against an invoice")
    credit.add_argument("tenant")
    credit.add_argument("number")
    credit.add_argument("--amount", help="before tax (default: all that is left to credit)")
    credit.add_argument("--reason", required=True)
    json_flag(credit)
    credit.set_defaults(run=run_invoice_credit)


def _profile_json(profile: Any) -> dict[str, Any]:
    from functions.invoice.profiles import PROFILE_FIELDS

    return {
        "tenant": profile.tenant,
        "account": profile.account,
        **{name: getattr(profile, name) for name in PROFILE_FIELDS},
        "taxes": [
            {
                "treatment": t.treatment,
                "rate": str(t.rate),
                "since": t.since.isoformat(),
                "certificate": t.certificate,
            }
            for t in profile.taxes
        ],
    }


def _profile_text(data: dict[str, Any]) -> str:
    lines = [f"{data['tenant']} {data['account'] or '(tenant: the carrier as seller)'}"]
    for key, value in data.items():
        if key in ("tenant", "account", "taxes") or value is None:
            continue
        lines.append(f"  {key}: {value}")
    for tax in data["taxes"]:
        rate = f" {tax['rate']}%" if tax["treatment"] == "standard" else ""
        lines.append(f"  tax from {tax['since']}: {tax['treatment']}{rate}")
    return "\n".join(lines)


@guarded
def run_billing_set(args: argparse.Namespace) -> int:
    from functions.invoice.profiles import merge, parse_tax
    from functions.store import accounts, billing

    tenant = accounts.get_tenant(args.tenant)
    if args.account is not None:
        accounts.get_account(args.tenant, args.account)
    profile = billing.get_profile(args.tenant, args.account)
    changes = [
        (name, getattr(args, name))
        for name in (
            "legal_name", "address", "city", "postcode", "country", "email", "phone", "vat_id",
            "iban", "cycle", "terms_days", "currency", "series", "timezone", "brand",
        )
    ]  # fmt: skip
    if args.tax is None and (args.tax_from or args.certificate):
        raise CliError("--tax-from and --certificate go with --tax")
    if not any(value is not None for _, value in changes) and args.tax is None:
        raise CliError("nothing to set: name at least one field")
    if args.account is None and (args.cycle or args.tax or args.terms_days is not None):
        raise CliError("--cycle, --tax and --terms-days belong to an account's profile")
    profile = merge(profile, changes)
    if args.tax is not None:
        since = args.tax_from or tenant_today(tenant)
        profile = profile.with_tax(parse_tax(args.tax, since, args.certificate))
    if profile.series is not None and profile.account is not None:
        _check_series_free(args.tenant, profile)
    billing.put_profile(profile)
    data = _profile_json(profile)
    emit(args, data, _profile_text(data))
    return 0


def _check_series_free(tenant: str, profile: Any) -> None:
    """Two issuers in one series would share its numbers: refused."""
    from functions.store import billing

    for account, other in billing.list_profiles(tenant).items():
        if account != profile.account and (other.series or "INV") == profile.series:
            raise CliError(f"series {profile.series!r} is {account or 'the tenant'}'s already")


@guarded
def run_billing_show(args: argparse.Namespace) -> int:
    from functions.store import accounts, billing

    accounts.get_tenant(args.tenant)
    if args.account is not None:
        accounts.get_account(args.tenant, args.account)
    data = _profile_json(billing.get_profile(args.tenant, args.account))
    emit(args, data, _profile_text(data))
    return 0


@guarded
def run_billing_fx(args: argparse.Namespace) -> int:
    from functions.store import accounts, billing

    accounts.get_tenant(args.tenant)
    try:
        rate = Decimal(args.rate)
    except InvalidOperation:
        raise CliError(f"invalid --rate {args.rate!r}: a decimal number") from None
    if args.source == args.target:
        raise CliError("--from and --to are the same currency")
    stored = billing.set_fx_rate(
        args.tenant, billing.FxRate(args.source, args.target, args.day, rate, args.source_name)
    )
    data = {
        "from": stored.source_currency,
        "to": stored.target_currency,
        "day": stored.day.isoformat(),
        "rate": str(stored.rate),
        "source": stored.source,
    }
    emit(args, data, f"1 {args.source} = {rate} {args.target} from {args.day} ({stored.source})")
    return 0


def _existing_issue_date(tenant: str, period: str, account: str | None) -> str | None:
    """The issue date of this period's run, if one was started: a re-run keeps it."""
    from functions.store import states

    runs = states.cycles_of(tenant, period, account)
    return runs[-1]["input"].get("issue_date") if runs else None


def run_report(tenant: str, period: str, account: str | None) -> dict[str, Any]:
    """What a period's run left: every draft, its number or why it has none, its gaps."""
    from functions.store import billing

    invoices, gaps, unnumbered = [], {}, []
    for found in billing.list_drafts(tenant, period):
        if account not in (None, found.invoice.account):
            continue
        if found.invoice.gaps:
            gaps[found.invoice.account] = list(found.invoice.gaps)
        if found.number is None:
            unnumbered.append(found.invoice.account)
            continue
        issued = billing.get_invoice(tenant, found.number)
        invoices.append(
            {
                "number": found.number,
                "account": found.invoice.account,
                "total": str(issued.invoice.total),
                "currency": issued.invoice.currency,
                "status": issued.invoice.status,
                "delivery": issued.delivery,
                "pdf": issued.documents.get("pdf"),
            }
        )
    return {"invoices": invoices, "gaps": gaps, "unnumbered": unnumbered}


@guarded
def run_invoice_run(args: argparse.Namespace) -> int:
    from functions.invoice.cycles import parse_period
    from functions.store import accounts, states

    tenant = accounts.get_tenant(args.tenant)
    period = parse_period(args.period)
    if args.account is not None:
        accounts.get_account(args.tenant, args.account)
    issue_date = args.issue_date
    if issue_date is None:
        found = _existing_issue_date(args.tenant, period.name, args.account)
        issue_date = dt.date.fromisoformat(found) if found else tenant_today(tenant)
    if issue_date <= period.last_day:
        raise CliError(
            f"period {period} has not ended by {issue_date}: invoice it from {period.end} on"
        )
    arn = states.start_invoice_cycle(
        args.tenant, period.name, account=args.account, issue_date=issue_date
    )
    data: dict[str, Any] = {"execution": arn, "period": period.name, "issue_date": str(issue_date)}
    if not args.wait:
        emit(args, data, f"started {arn}")
        return 0
    described = states.wait_cycle(arn, args.timeout)
    data["status"] = described["status"]
    if described["status"] != "SUCCEEDED":
        raise OperationError(
            f"invoice run {described['name']} {described['status']}: "
            f"{_failure(described.get('error'), described.get('cause'))}"
        )
    output = described["output"] or {}
    problems = {
        account: text for part in output.get("drafts", []) for account, text in
        part.get("problems", {}).items()
    }  # fmt: skip
    data |= run_report(args.tenant, period.name, args.account) | {"problems": problems}
    lines = [f"{period} issued {issue_date}: {len(data['invoices'])} invoice(s)"]
    for item in data["invoices"]:
        lines.append(
            f"  {item['number']:<18} {item['account']:<16} {item['total']:>14} "
            f"{item['currency']}  {item['delivery'] or ''}  {item['pdf'] or ''}"
        )
    for account, missing in sorted(data["gaps"].items()):
        lines.append(f"  e-invoice gaps {account}: {', '.join(missing)}")
    for account, text in sorted(problems.items()):
        lines.append(f"  not invoiced {account}: {text}")
    emit(args, data, "\n".join(lines))
    return 0


def _failure(error: str | None, cause: str | None) -> str:
    """A task's failure as one line: its error type and message (Lambda's cause is JSON with
    the stack trace, which the execution's history keeps)."""
    import json

    try:
        found = json.loads(cause or "")
        return f"{found.get('errorType', error)}: {found.get('errorMessage', '')}"
    except (ValueError, AttributeError):
        return f"{error}: {cause or ''}".strip()


@guarded
def run_invoice_list(args: argparse.Namespace) -> int:
    from functions.store import accounts, billing

    accounts.get_tenant(args.tenant)
    rows = []
    for found in billing.list_invoices(args.tenant, args.account):
        invoice = found.invoice
        if args.period and invoice.period != args.period:
            continue
        rows.append(
            {
                "number": invoice.number,
                "kind": invoice.kind,
                "account": invoice.account,
                "period": invoice.period,
                "issue_date": invoice.issue_date.isoformat(),
                "due_date": invoice.due_date.isoformat(),
                "currency": invoice.currency,
                "total": str(invoice.total),
                "status": invoice.status,
            }
        )
    text = "\n".join(
        f"{r['number']:<18} {r['kind']:<11} {r['account']:<16} {r['period']:<10} "
        f"{r['issue_date']} {r['total']:>14} {r['currency']} {r['status']}"
        for r in rows
    )
    emit(args, rows, text or "no invoices")
    return 0


@guarded
def run_invoice_show(args: argparse.Namespace) -> int:
    from functions.store import billing

    found = billing.get_invoice(args.tenant, args.number)
    data = found.invoice.as_json() | {
        "credited": str(found.credited),
        "delivery": found.delivery,
        "documents": found.documents,
    }
    invoice = found.invoice
    lines = [
        f"{invoice.number} {invoice.kind} {invoice.account} {invoice.period} "
        f"issued {invoice.issue_date} due {invoice.due_date} {invoice.status}"
    ]
    for line in invoice.lines:
        lines.append(
            f"  {line.description:<40} {line.quantity:>12} {line.unit} x {line.unit_price:<10} "
            f"{line.amount:>12}"
        )
    lines.append(f"  {'subtotal':<40} {invoice.subtotal:>40}")
    for tax in invoice.taxes:
        lines.append(f"  {'tax ' + tax.category + ' ' + str(tax.rate) + '%':<40} {tax.amount:>40}")
    lines.append(f"  {'total ' + invoice.currency:<40} {invoice.total:>40}")
    emit(args, data, "\n".join(lines))
    return 0


@guarded
def run_invoice_download(args: argparse.Namespace) -> int:
    from functions.store import billing, documents

    found = billing.get_invoice(args.tenant, args.number)
    key = found.documents.get(FORMATS[args.format])
    if key is None:
        raise CliError(f"invoice {args.number} has no {args.format} document (yet)")
    args.out.write_bytes(documents.get(key))
    size = args.out.stat().st_size
    data = {
        "number": args.number,
        "format": args.format,
        "key": key,
        "out": str(args.out),
        "bytes": size,
    }
    emit(args, data, f"{args.out} ({size} bytes)")
    return 0


@guarded
def run_invoice_credit(args: argparse.Namespace) -> int:
    from functions.invoice import cycle
    from functions.invoice.handler import ports
    from functions.store import accounts, billing

    amount = None
    if args.amount is not None:
        try:
            amount = Decimal(args.amount)
        except InvalidOperation:
            raise CliError(f"invalid --amount {args.amount!r}: a decimal number") from None
    tenant = accounts.get_tenant(args.tenant)
    billing.get_invoice(args.tenant, args.number)
    note = cycle.credit(
        ports(),
        args.tenant,
        args.number,
        reason=args.reason,
        amount=amount,
        issue_date=tenant_today(tenant),
    )
    data = note.as_json()
    emit(args, data, f"{note.number} credits {note.total} {note.currency} on {args.number}")
    return 0
