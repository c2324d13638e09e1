"""`tollgate payment record|list`: payments, and what they paid.

A customer's or reseller's payment is recorded in the ledger once per reference and
allocated to its invoices once (functions.invoice.receipts): the invoice(s) named with
--invoice first, then the oldest open ones; what is left is account credit. A payment to a
supplier only moves the ledger.
"""

from __future__ import annotations

import argparse
from decimal import Decimal
from typing import Any

from functions.cli import CliError, emit, guarded, json_flag, money_text, parse_amount

_OWED = "what the carrier owes it"


def register(subparsers: argparse._SubParsersAction) -> None:
    payment = subparsers.add_parser("payment", help="payments and their allocation to invoices")
    actions = payment.add_subparsers(dest="payment_action", required=True, metavar="ACTION")
    record = actions.add_parser(
        "record",
        help="record a payment: from a customer or reseller, or to a supplier",
        description="A customer's or reseller's payment raises its balance and pays its "
        "invoices (the ones named with --invoice first, then the oldest open; the rest is "
        "account credit); a payment to a supplier lowers what the carrier owes it. Recorded "
        "and allocated once per reference.",
    )
    record.add_argument("tenant")
    record.add_argument("account")
    record.add_argument("amount", help="e.g. 100.50 (positive, at most 6 decimal places)")
    record.add_argument(
        "--reference",
        required=True,
        metavar="REF",
        help="the bank's or PSP's transaction reference; recording it again changes nothing",
    )
    record.add_argument(
        "--invoice",
        action="append",
        default=[],
        metavar="NUMBER",
        help="the invoice the payment names (repeatable): paid first",
    )
    json_flag(record)
    record.set_defaults(run=run_payment_record)

    listing = actions.add_parser("list", help="payments received and their allocations")
    listing.add_argument("tenant")
    listing.add_argument(
        "--account", help="one account's (default: every customer's and reseller's)"
    )
    json_flag(listing)
    listing.set_defaults(run=run_payment_list)


def _allocation_json(allocation: Any) -> dict[str, Any]:
    if allocation is None:
        return {"allocations": [], "credit": None}
    return {
        "allocations": [
            {"invoice": a.invoice, "amount": str(a.amount), "day": a.day.isoformat()}
            for a in allocation.allocations
        ],
        "credit": str(allocation.credit),
    }


@guarded
def run_payment_record(args: argparse.Namespace) -> int:
    from functions.cli.ledger import conflict, recorded_payload
    from functions.invoice.receipts import receive_payment
    from functions.store import accounts, billing, ledger

    account = accounts.get_account(args.tenant, args.account)
    amount = parse_amount(args.amount, "amount")
    if amount <= 0:
        raise CliError(f"invalid amount {args.amount!r}: a payment must be positive")
    try:
        receipt = receive_payment(
            args.tenant,
            args.account,
            amount,
            reference=args.reference,
            named=tuple(dict.fromkeys(n.strip() for n in args.invoice)),
            accounts=accounts,
            ledger=ledger,
            billing=billing,
        )
    except ledger.ReferenceConflictError as error:
        raise conflict(error, account.currency) from None
    recorded = receipt.recorded
    balance, _ = ledger.get_balance(args.tenant, args.account)
    payload = {
        **recorded_payload(account, recorded, balance),
        "payment_id": recorded.entry.posting_id,
        "amount": money_text(amount),
        **_allocation_json(receipt.allocation),
    }
    direction = "to" if account.kind == "supplier" else "from"
    owed = f" ({_OWED})" if account.kind == "supplier" else ""
    done = "recorded" if recorded.recorded else "already recorded, nothing changed:"
    lines = [
        f"{done} payment {payload['amount']} {account.currency} {direction} "
        f"{account.tenant}/{account.account}, reference {recorded.entry.reference!r}; "
        f"balance {payload['balance']}{owed}"
    ]
    allocation = receipt.allocation
    if allocation is not None and allocation.allocations:
        lines += [
            f"  paid {a.amount} {account.currency} on invoice {a.invoice}"
            for a in allocation.allocations
        ]
        lines.append(f"  account credit {allocation.credit} {account.currency}")
    emit(args, payload, "\n".join(lines))
    return 0


@guarded
def run_payment_list(args: argparse.Namespace) -> int:
    from functions.store import accounts, billing, ledger

    if args.account:
        chosen = [accounts.get_account(args.tenant, args.account)]
    else:
        accounts.get_tenant(args.tenant)
        chosen = [a for a in accounts.list_accounts(args.tenant) if a.kind != "supplier"]
    rows = []
    for account in chosen:
        for entry in ledger.list_entries(args.tenant, account.account):
            if entry.kind != "payment":
                continue
            allocation = billing.get_payment_allocation(args.tenant, entry.reference)
            rows.append(
                {
                    "account": account.account,
                    "reference": entry.reference,
                    "booked_at": entry.booked_at.isoformat(timespec="seconds"),
                    "currency": account.currency,
                    "amount": money_text(abs(entry.amount)),
                    **_allocation_json(allocation),
                }
            )
    text = [f"{'account':<16}{'booked (UTC)':<27}{'amount':>16}  reference -> invoices"]
    for row in rows:
        paid = ", ".join(f"{a['invoice']} {a['amount']}" for a in row["allocations"]) or "-"
        has_credit = row["credit"] is not None and Decimal(row["credit"]) != 0
        credit = f"; credit {row['credit']}" if has_credit else ""
        text.append(
            f"{row['account']:<16}{row['booked_at']:<27}{row['amount']:>16}  "
            f"{row['reference']} -> {paid}{credit}"
        )
    emit(args, rows, "\n".join(text) if rows else "no payments")
    return 0
