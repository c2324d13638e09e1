"""`tollgate balance|payment`: balances and the payments that move them.

Amounts are exact decimals in micro-units, printed with 6 places; every command takes --json.
"""

from __future__ import annotations

import argparse
import hashlib
import uuid

from functions.cli import CliError, emit, guarded, json_flag, money_text, parse_amount


def register(subparsers: argparse._SubParsersAction) -> None:
    balance = subparsers.add_parser("balance", help="an account's balance")
    balance.add_argument("tenant")
    balance.add_argument("account")
    json_flag(balance)
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
    json_flag(record)
    record.set_defaults(run=run_payment_record)


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


def _payment_id(reference: str | None) -> str:
    """A reference of any spelling names one payment; without one, every call is new."""
    if reference is None:
        return f"pay-{uuid.uuid4().hex}"
    if not reference.strip():
        raise CliError("--reference must not be empty")
    return "ref-" + hashlib.sha256(reference.encode()).hexdigest()[:40]


@guarded
def run_payment_record(args: argparse.Namespace) -> int:
    from functions.store import accounts, ledger

    account = accounts.get_account(args.tenant, args.account)
    amount = parse_amount(args.amount, "amount")
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
        "amount": money_text(amount),
        "currency": account.currency,
        "recorded": recorded,
        "balance": money_text(balance),
    }
    verb = "recorded" if recorded else "already recorded, unchanged:"
    emit(
        args,
        payload,
        f"{verb} payment {payload['amount']} {account.currency} to "
        f"{account.tenant}/{account.account}; balance {payload['balance']}",
    )
    return 0
