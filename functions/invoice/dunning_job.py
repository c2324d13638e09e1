"""The daily dunning job: reminders, final notices, suspensions and credit limits of a tenant.

Runs daily from EventBridge (app.py) and on demand (`tollgate dunning run`). The stores come
in as ports (functions.store.accounts, .ledger, .billing, .mail, .events), as in
functions.rate.recurring_job; the rules are functions.invoice.dunning's. Every step is
claimed in the billing table before it is acted on, so a second run the same day (or a retry
of a crashed one) sends nothing twice; a crash between the claim and the e-mail leaves that
reminder unsent rather than sent twice. Suspensions and resumes go through the accounts'
audited update as `system:dunning`, with a reason starting `dunning:`, which is what lets a
later run lift them — and only them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from functions.invoice import dunning, payments
from functions.invoice.receipts import micro_to_decimal

DUNNED_KINDS = ("customer", "reseller")  # a supplier is paid, not invoiced
SUBJECTS = {
    "reminder": "Payment reminder: invoice {number} is {days} days overdue",
    "final_notice": "Final notice: invoice {number} is {days} days overdue",
}


@dataclass
class DunningRun:
    tenant: str
    day: dt.date
    sent: list[dict[str, Any]] = field(default_factory=list)  # e-mails sent
    recorded: list[dict[str, Any]] = field(default_factory=list)  # steps taken without e-mail
    suspended: list[dict[str, Any]] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "day": self.day.isoformat(),
            "sent": self.sent,
            "recorded": self.recorded,
            "suspended": self.suspended,
            "resumed": self.resumed,
            "credit_warnings": self.warnings,
        }


def run_dunning(
    tenant: str,
    day: dt.date,
    *,
    accounts: Any,
    ledger: Any,
    billing: Any,
    mail: Any,
    events: Any,
    actor: Any,
) -> DunningRun:
    """Evaluate every customer and reseller account of `tenant` on `day` and act once."""
    run = DunningRun(tenant, day)
    for account in accounts.list_accounts(tenant):
        if account.kind in DUNNED_KINDS:
            _dun_account(run, account, accounts, ledger, billing, mail, events, actor)
    return run


def _dun_account(run, account, accounts, ledger, billing, mail, events, actor) -> None:
    tenant, name = run.tenant, account.account
    over_limit = _credit_limit(run, account, accounts, ledger, billing, events, actor)
    account = accounts.get_account(tenant, name)  # its status after the credit check
    rows = billing.list_allocations(tenant, name)
    dues = billing.account_dues(tenant, name)
    open_invoices = [
        dunning.Overdue(d.number, d.due_date, payments.outstanding(d, rows), d.currency)
        for d in dues
    ]
    open_invoices = [i for i in open_invoices if i.outstanding > 0]
    policy, _ = billing.get_dunning_policy(tenant, name)
    actions = dunning.evaluate(
        run.day,
        open_invoices,
        billing.dunning_steps(tenant, name),
        policy,
        status=account.status,
        status_reason=account.status_reason,
        over_limit=over_limit,
    )
    by_number = {i.number: i for i in open_invoices}
    for action in actions:
        if action.kind == "resume":
            accounts.set_account_status(
                tenant, name, "active", actor=actor, reason="dunning: nothing overdue any more"
            )
            events.publish_billing_event(
                events.ACCOUNT_RESUMED, {"tenant": tenant, "account": name, "day": str(run.day)}
            )
            run.resumed.append(name)
            continue
        claimed = billing.claim_dunning_step(
            tenant, name, action.invoice, action.step, run.day, action.kind
        )
        if not claimed:
            continue  # taken by an earlier run
        step = {"account": name, "invoice": action.invoice, "step": action.step,
                "days_overdue": action.days_overdue}  # fmt: skip
        if action.kind == "suspend":
            reason = f"dunning: invoice {action.invoice} {action.days_overdue} days overdue"
            _suspend(run, account, reason, accounts, events, actor, step)
        elif action.kind in SUBJECTS:
            invoice = by_number[action.invoice]
            issued = billing.get_invoice(tenant, invoice.number).invoice
            # the address on file now, else the one printed on the invoice
            to = billing.get_profile(tenant, name).email or issued.buyer.email
            if to:
                subject = SUBJECTS[action.kind].format(number=invoice.number,
                                                       days=action.days_overdue)  # fmt: skip
                # from the invoice's brand, answered by its seller (a white-label reseller)
                mail.send(display_name=issued.brand, to=to, reply_to=issued.seller.email,
                          subject=subject, text=_text(action, invoice))  # fmt: skip
                run.sent.append({**step, "kind": action.kind, "to": to})
            else:
                run.recorded.append({**step, "kind": action.kind, "note": "no e-mail address"})
        else:
            run.recorded.append({**step, "kind": action.kind})


def _text(action: dunning.Action, invoice: dunning.Overdue) -> str:
    final = action.kind == "final_notice"
    return (
        f"Invoice {invoice.number} was due on {invoice.due_date.isoformat()} and is "
        f"{action.days_overdue} days overdue.\n"
        f"Outstanding: {invoice.outstanding} {invoice.currency}.\n\n"
        + (
            "This is the final notice: service will be suspended if it is not paid.\n"
            if final
            else "Please pay it at your earliest convenience; ignore this if you have.\n"
        )
    )


def _suspend(run, account, reason, accounts, events, actor, detail) -> None:
    if account.status != "active":
        return
    accounts.set_account_status(
        run.tenant, account.account, "suspended", actor=actor, reason=reason
    )
    events.publish_billing_event(
        events.ACCOUNT_SUSPENDED,
        {"tenant": run.tenant, "account": account.account, "day": str(run.day), "reason": reason},
    )
    run.suspended.append({**detail, "reason": reason})


def _credit_limit(run, account, accounts, ledger, billing, events, actor) -> bool:
    """Act on a postpaid account's credit level; True while it is at its limit."""
    if account.prepaid or account.credit_limit_micro <= 0:
        return False
    balance, _ = ledger.get_balance(run.tenant, account.account)
    before = billing.get_credit_level(run.tenant, account.account)
    check = dunning.check_credit(
        prepaid=account.prepaid,
        limit_micro=account.credit_limit_micro,
        balance_micro=balance,
        level_before=before,
    )
    if check.level != before and not billing.set_credit_level(
        run.tenant, account.account, check.level, before=before
    ):
        return check.level == "limit"  # another run moved it and acts on it
    exposure = dunning.exposure(balance)
    detail = {
        "account": account.account,
        "exposure_micro": exposure,
        "limit_micro": account.credit_limit_micro,
    }
    for action in check.actions:
        if action == "warning":
            events.publish_billing_event(
                events.CREDIT_LIMIT_WARNING, {"tenant": run.tenant, "day": str(run.day), **detail}
            )
            run.warnings.append(detail)
        else:
            reason = (
                f"dunning: credit limit reached ({micro_to_decimal(exposure)} of "
                f"{micro_to_decimal(account.credit_limit_micro)} {account.currency})"
            )
            _suspend(run, account, reason, accounts, events, actor, detail)
    return check.level == "limit"
