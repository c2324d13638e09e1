"""`tollgate balance|adjust|statement`: balances, what moves them, and the record of it
(`tollgate payment`: functions.cli.payments).

Amounts are exact decimals in micro-units, printed with 6 places; every command takes --json.
Payments and adjustments are named by their reference (the bank's or the PSP's): the same
reference again records nothing and says so, whatever retried the command.
"""

from __future__ import annotations

import argparse
from typing import Any

from functions.cli import (
    CliError,
    OperationError,
    day_arg,
    emit,
    guarded,
    json_flag,
    money_text,
    parse_amount,
)

_OWED = "what the carrier owes it"


def register(subparsers: argparse._SubParsersAction) -> None:
    balance = subparsers.add_parser("balance", help="an account's balance")
    balance.add_argument("tenant")
    balance.add_argument("account")
    json_flag(balance)
    balance.set_defaults(run=run_balance)

    adjust = subparsers.add_parser(
        "adjust",
        help="credit (+) or debit (-) an account's balance",
        description="AMOUNT moves the balance as written: 12.50 raises it, -5.00 lowers it. "
        "Recorded once per reference.",
    )
    adjust.add_argument("tenant")
    adjust.add_argument("account")
    adjust.add_argument("amount", help="signed, e.g. 12.50 or -5.00 (at most 6 decimal places)")
    adjust.add_argument(
        "--reason", required=True, metavar="TEXT", help="why: printed on the statement"
    )
    adjust.add_argument(
        "--reference",
        required=True,
        metavar="REF",
        help="names this adjustment; recording it again changes nothing",
    )
    json_flag(adjust)
    adjust.set_defaults(run=run_adjust)

    statement = subparsers.add_parser(
        "statement",
        help="an account's opening balance, every posting of a period, its closing balance",
        description="Days are calendar days in the tenant's time zone, both inclusive.",
    )
    statement.add_argument("tenant")
    statement.add_argument("account")
    for flag, dest, what in (("--from", "first", "first day"), ("--to", "last", "last day")):
        statement.add_argument(
            flag, dest=dest, type=day_arg, required=True, metavar="D", help=f"{what}, YYYY-MM-DD"
        )
    json_flag(statement)
    statement.set_defaults(run=run_statement)


@guarded
def run_balance(args: argparse.Namespace) -> int:
    from functions.store import accounts, ledger

    account = accounts.get_account(args.tenant, args.account)
    balance, reserved = ledger.get_balance(args.tenant, args.account)
    payload = {
        "tenant": account.tenant,
        "account": account.account,
        "currency": account.currency,
        "balance": money_text(balance),
        "reserved": money_text(reserved),
    }
    emit(
        args,
        payload,
        f"{account.tenant}/{account.account}: balance {payload['balance']} {account.currency}"
        f" (reserved {payload['reserved']})",
    )
    return 0


# --- payments and adjustments ------------------------------------------------------------


def conflict(error: Any, currency: str) -> OperationError:
    """The reused reference's recorded payment or adjustment, named in the account's money:
    a conflict with what is stored (exit 1), not a malformed request."""
    entry = error.recorded.entry
    what = f"a payment of {money_text(error.recorded.paid)} {currency}"
    if entry.kind == "adjustment":
        what = f"an adjustment of {money_text(entry.amount)} {currency} ({entry.description})"
    return OperationError(
        f"reference {entry.reference!r} is already {what} to account {entry.account!r}, "
        f"booked {entry.booked_at.isoformat(timespec='seconds')}; nothing recorded"
    )


def recorded_payload(account: Any, recorded: Any, balance: int) -> dict[str, Any]:
    entry = recorded.entry
    return {
        "tenant": account.tenant,
        "account": account.account,
        "account_kind": account.kind,
        "reference": entry.reference,
        "recorded": recorded.recorded,
        "status": "recorded" if recorded.recorded else "already recorded",
        "currency": account.currency,
        "balance_change": money_text(entry.amount),
        "booked_at": entry.booked_at.isoformat(timespec="microseconds"),
        "balance": money_text(balance),
    }


@guarded
def run_adjust(args: argparse.Namespace) -> int:
    from functions.store import accounts, ledger

    account = accounts.get_account(args.tenant, args.account)
    amount = parse_amount(args.amount, "amount")
    if amount == 0:
        raise CliError(f"invalid amount {args.amount!r}: an adjustment must not be zero")
    if not args.reason.strip():
        raise CliError("--reason must not be empty")
    try:
        recorded = ledger.record_adjustment(
            args.tenant, args.account, amount, reference=args.reference, reason=args.reason
        )
    except ledger.ReferenceConflictError as error:
        raise conflict(error, account.currency) from None
    balance, _ = ledger.get_balance(args.tenant, args.account)
    payload = {
        **recorded_payload(account, recorded, balance),
        "adjustment_id": recorded.entry.posting_id,
        "amount": money_text(amount),
        "reason": recorded.entry.description,
    }
    side = "credit" if amount > 0 else "debit"
    done = "recorded" if recorded.recorded else "already recorded, nothing changed:"
    emit(
        args,
        payload,
        f"{done} {side} {payload['amount']} {account.currency} to "
        f"{account.tenant}/{account.account} ({payload['reason']}), reference "
        f"{recorded.entry.reference!r}; balance {payload['balance']}",
    )
    return 0


# --- statements --------------------------------------------------------------------------


def statement_payload(account: Any, statement: Any) -> dict[str, Any]:
    return {
        "tenant": account.tenant,
        "account": account.account,
        "account_kind": account.kind,
        "currency": account.currency,
        "timezone": statement.timezone,
        "from": statement.first_day.isoformat(),
        "to": statement.last_day.isoformat(),
        "opening_balance": money_text(statement.opening),
        "closing_balance": money_text(statement.closing),
        "net_change": money_text(statement.closing - statement.opening),
        "totals": {kind: money_text(units) for kind, units in statement.totals().items()},
        "lines": [
            {
                "booked_at": line.entry.booked_at.isoformat(timespec="microseconds"),
                "day": line.day.isoformat(),
                "kind": line.entry.kind,
                "posting_id": line.entry.posting_id,
                "description": line.entry.description,
                "reference": line.entry.reference,
                "amount": money_text(line.entry.amount),
                "balance": money_text(line.balance),
            }
            for line in statement.lines
        ],
    }


def format_statement(account: Any, statement: Any) -> str:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(statement.timezone)
    meaning = _OWED if account.kind == "supplier" else "payments minus charges"
    out = [
        f"statement of {account.tenant}/{account.account} ({account.kind}, {account.currency}; "
        f"balance = {meaning})",
        f"{statement.first_day} to {statement.last_day}, days in {statement.timezone}",
        f"{'booked (local)':<18}{'kind':<12}{'amount':>18}{'balance':>20}  description [reference]",
        f"{'opening balance':<48}{money_text(statement.opening):>20}",
    ]
    for line in statement.lines:
        entry = line.entry
        when = entry.booked_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
        detail = entry.description + (f" [{entry.reference}]" if entry.reference else "")
        out.append(
            f"{when:<18}{entry.kind:<12}{money_text(entry.amount):>18}"
            f"{money_text(line.balance):>20}  {detail}"
        )
    out.append(f"{'closing balance':<48}{money_text(statement.closing):>20}")
    return "\n".join(out)


@guarded
def run_statement(args: argparse.Namespace) -> int:
    from functions.invoice.statement import build_statement, period_bounds
    from functions.store import accounts, ledger

    tenant = accounts.get_tenant(args.tenant)
    account = accounts.get_account(args.tenant, args.account)
    _, end = period_bounds(tenant.timezone, args.first, args.last)
    entries = ledger.list_entries(args.tenant, args.account, before=end)
    statement = build_statement(args.account, tenant.timezone, args.first, args.last, entries)
    emit(args, statement_payload(account, statement), format_statement(account, statement))
    return 0
