"""Dunning and credit limits: what to do today about overdue invoices and exposure. Pure.

Dunning (docs: invoicing reference §7, after Kill Bill's overdue states and Lago's campaigns):
per overdue invoice, reminders at 3 and 7 days past the due date, a final notice at 10 and the
account's suspension at 14, each configurable per account and each taken once; a step is
recorded as done by the caller, so running the same day again does nothing twice. A job that
missed days sends only the latest message step due and records the ones it passed over
(one e-mail, not three at once). The suspension is lifted when nothing is overdue any more —
only a suspension this job made (the account's status reason starts with `dunning:`), never
one for fraud or by an operator.

Credit limits (postpaid accounts with a limit > 0; 0 means none set): exposure = open
invoices + unbilled charges - credit. In Tollgate a postpaid account's ledger balance is
payments - all charges (the usage posted as files are rated, fees, true-ups, and the taxes
posted when an invoice is issued), so -balance is exactly open invoices + unbilled charges -
credit, and exposure = max(0, -balance). A warning at 80 % of the limit, suspension at 100 %,
each once per level until exposure falls below that level again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

REASON_PREFIX = "dunning:"  # Account.status_reason of a suspension this job made
MESSAGE_STEPS = ("reminder", "final_notice")
WARNING_PERCENT = 80
LIMIT_PERCENT = 100
LEVELS = ("ok", "warning", "limit")  # credit-limit levels, in order


@dataclass(frozen=True, slots=True)
class Policy:
    """Days past the due date of each step; `final` or `suspend` None: no such step."""

    reminders: tuple[int, ...] = (3, 7)
    final: int | None = 10
    suspend: int | None = 14

    def __post_init__(self) -> None:
        days = [*self.reminders, *(d for d in (self.final, self.suspend) if d is not None)]
        if any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in days):
            raise ValueError(f"dunning days are whole days >= 1, not {days}")
        if list(self.reminders) != sorted(set(self.reminders)):
            raise ValueError(f"reminder days must increase: {list(self.reminders)}")
        if self.final is not None and self.reminders and self.final <= self.reminders[-1]:
            raise ValueError(f"the final notice ({self.final}) comes after the last reminder")

    def steps(self) -> list[tuple[str, int]]:
        """(step name, days overdue), in the order they fall due."""
        out = [(f"reminder-{i}", days) for i, days in enumerate(self.reminders, start=1)]
        if self.final is not None:
            out.append(("final", self.final))
        if self.suspend is not None:
            out.append(("suspend", self.suspend))
        return sorted(out, key=lambda s: s[1])

    def as_json(self) -> dict:
        return {"reminders": list(self.reminders), "final": self.final, "suspend": self.suspend}

    @classmethod
    def from_json(cls, data: dict) -> Policy:
        return cls(tuple(data["reminders"]), data.get("final"), data.get("suspend"))


@dataclass(frozen=True, slots=True)
class Overdue:
    """An open invoice as dunning sees it: its due date and what is still to pay on it."""

    number: str
    due_date: dt.date
    outstanding: Decimal
    currency: str

    def days_overdue(self, today: dt.date) -> int:
        return (today - self.due_date).days


@dataclass(frozen=True, slots=True)
class Action:
    """One step: `kind` reminder | final_notice | suspend | resume | passed (a step recorded
    without sending, the job having missed its day). `step` is what gets recorded."""

    kind: str
    invoice: str | None
    step: str
    days_overdue: int = 0


def evaluate(
    today: dt.date,
    open_invoices: Sequence[Overdue],
    steps_done: Iterable[tuple[str, str]],
    policy: Policy,
    *,
    status: str = "active",
    status_reason: str | None = None,
    over_limit: bool = False,
) -> list[Action]:
    """Today's dunning actions for one account.

    `steps_done`: (invoice, step) pairs recorded before. `status`/`status_reason`: the
    account's. A suspension is proposed only for an active account (one suspended for another
    reason stays as it is, and its step is taken when it is active again); a resume only for
    an account this job suspended, when no invoice is overdue any more and the account is not
    at its credit limit (`over_limit`: that suspension is this job's too).
    """
    done = set(steps_done)
    actions: list[Action] = []
    overdue = [i for i in open_invoices if i.outstanding > 0 and i.days_overdue(today) > 0]
    to_suspend: list[Overdue] = []
    for invoice in sorted(overdue, key=lambda i: (i.due_date, i.number)):
        days = invoice.days_overdue(today)
        reached = [s for s, d in policy.steps() if d <= days and (invoice.number, s) not in done]
        messages = [s for s in reached if s != "suspend"]
        for step in messages[:-1]:
            actions.append(Action("passed", invoice.number, step, days))
        if messages:
            kind = "final_notice" if messages[-1] == "final" else "reminder"
            actions.append(Action(kind, invoice.number, messages[-1], days))
        if "suspend" in reached:
            to_suspend.append(invoice)
    if to_suspend and status == "active":
        # one suspension; every invoice that reached the step has it recorded, so an
        # operator's resume is not undone tomorrow by another invoice's step
        first, *others = to_suspend
        actions.append(Action("suspend", first.number, "suspend", first.days_overdue(today)))
        actions += [Action("passed", i.number, "suspend", i.days_overdue(today)) for i in others]
    if (
        not overdue
        and not over_limit
        and status == "suspended"
        and is_dunning_suspension(status_reason)
    ):
        actions.append(Action("resume", None, "resume"))
    return actions


def is_dunning_suspension(status_reason: str | None) -> bool:
    return bool(status_reason) and status_reason.startswith(REASON_PREFIX)


# --- credit limits -------------------------------------------------------------------------


def exposure(balance_micro: int) -> int:
    """A postpaid account's exposure in micro-units: max(0, -balance). The balance is payments
    - every charge posted (taxes included), so -balance = open invoices + unbilled charges -
    credit."""
    return max(0, -balance_micro)


def credit_level(exposure_micro: int, limit_micro: int) -> str:
    """ok below 80 % of the limit, warning from 80 %, limit from 100 % (exact integers)."""
    if limit_micro <= 0:
        return "ok"  # no limit set
    if exposure_micro * 100 >= limit_micro * LIMIT_PERCENT:
        return "limit"
    if exposure_micro * 100 >= limit_micro * WARNING_PERCENT:
        return "warning"
    return "ok"


@dataclass(frozen=True, slots=True)
class CreditCheck:
    level: str  # the level now: what the caller records
    actions: tuple[str, ...]  # "warning" (an event), "suspend" (event + suspension), in order


def check_credit(
    *, prepaid: bool, limit_micro: int, balance_micro: int, level_before: str = "ok"
) -> CreditCheck:
    """The credit-limit level of a postpaid account and what newly crossing it asks for.

    Each level acts once: only a level above `level_before` (the recorded one) acts; when
    exposure falls below a level the recorded level falls with it, so crossing again acts
    again. Jumping from ok to the limit gives both the warning and the suspension.
    """
    if prepaid:
        return CreditCheck("ok", ())  # a prepaid account is stopped by its balance, not here
    level = credit_level(exposure(balance_micro), limit_micro)
    before, now = LEVELS.index(level_before), LEVELS.index(level)
    crossed = {1: "warning", 2: "suspend"}
    return CreditCheck(level, tuple(crossed[i] for i in range(before + 1, now + 1)))
