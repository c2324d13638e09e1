"""Dunning steps and credit-limit levels."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.invoice.dunning import (
    Action,
    Overdue,
    Policy,
    check_credit,
    credit_level,
    evaluate,
    exposure,
)

DUE = dt.date(2026, 5, 2)
INV = Overdue("INV-2026-000001", DUE, Decimal("158.03"), "EUR")
POLICY = Policy()


def day(n: int) -> dt.date:
    return DUE + dt.timedelta(days=n)


def run_daily(invoices, last_day, policy=POLICY, status="active", reason=None):
    """Evaluate every day from the due date on, recording steps as the job does."""
    done: set[tuple[str, str]] = set()
    log = []
    for n in range(last_day + 1):
        for action in evaluate(day(n), invoices, done, policy, status=status, status_reason=reason):
            log.append((n, action))
            done.add((action.invoice, action.step))
            if action.kind == "suspend":
                status, reason = "suspended", "dunning: overdue"
    return log


def test_the_default_steps_fall_on_days_3_7_10_and_14_once_each():
    log = run_daily([INV], 30)
    assert [(n, a.kind, a.step) for n, a in log] == [
        (3, "reminder", "reminder-1"),
        (7, "reminder", "reminder-2"),
        (10, "final_notice", "final"),
        (14, "suspend", "suspend"),
    ]


def test_nothing_before_the_due_date_is_passed_or_when_nothing_is_outstanding():
    assert evaluate(day(0), [INV], set(), POLICY) == []
    paid = Overdue("INV-2026-000002", DUE, Decimal("0.00"), "EUR")
    assert evaluate(day(20), [paid], set(), POLICY) == []


def test_a_missed_run_sends_only_the_latest_message_and_records_the_others():
    actions = evaluate(day(11), [INV], set(), POLICY)
    assert actions == [
        Action("passed", INV.number, "reminder-1", 11),
        Action("passed", INV.number, "reminder-2", 11),
        Action("final_notice", INV.number, "final", 11),
    ]


def test_a_policy_per_account_with_other_days():
    policy = Policy(reminders=(1,), final=None, suspend=5)
    log = run_daily([INV], 10, policy)
    assert [(n, a.kind) for n, a in log] == [(1, "reminder"), (5, "suspend")]


def test_one_suspension_for_several_invoices_each_recorded():
    other = Overdue("INV-2026-000009", day(-2), Decimal("1.00"), "EUR")
    actions = evaluate(
        day(14),
        [INV, other],
        {(i, s) for i in (INV.number, other.number) for s in ("reminder-1", "reminder-2", "final")},
        POLICY,
    )
    assert actions == [
        Action("suspend", other.number, "suspend", 16),
        Action("passed", INV.number, "suspend", 14),
    ]


def test_lifted_when_nothing_is_overdue_only_for_a_dunning_suspension():
    paid = [Overdue(INV.number, DUE, Decimal("0.00"), "EUR")]
    lift = evaluate(
        day(20),
        paid,
        set(),
        POLICY,
        status="suspended",
        status_reason="dunning: INV-2026-000001 14 days overdue",
    )
    assert lift == [Action("resume", None, "resume")]
    for reason in ("fraud: short calls to premium ranges", None, "operator hold"):
        assert (
            evaluate(day(20), paid, set(), POLICY, status="suspended", status_reason=reason) == []
        )
    # still over its credit limit: that suspension stands
    assert (
        evaluate(
            day(20),
            paid,
            set(),
            POLICY,
            status="suspended",
            status_reason="dunning: credit limit",
            over_limit=True,
        )
        == []
    )
    # one invoice paid, another still overdue: not lifted
    still = [*paid, Overdue("INV-2026-000003", day(19), Decimal("0.01"), "EUR")]
    assert [
        a.kind
        for a in evaluate(
            day(20),
            still,
            {("INV-2026-000003", "reminder-1")},
            POLICY,
            status="suspended",
            status_reason="dunning: x",
        )
    ] == []


def test_an_account_suspended_for_another_reason_is_not_suspended_again():
    done = {(INV.number, s) for s in ("reminder-1", "reminder-2", "final")}
    assert (
        evaluate(day(15), [INV], done, POLICY, status="suspended", status_reason="fraud: FAS") == []
    )


def test_policies_are_checked():
    with pytest.raises(ValueError, match="must increase"):
        Policy(reminders=(7, 3))
    with pytest.raises(ValueError, match="after the last reminder"):
        Policy(reminders=(3, 7), final=7)
    with pytest.raises(ValueError, match="whole days"):
        Policy(reminders=(0,))
    assert Policy.from_json(Policy((2, 5), 9, None).as_json()) == Policy((2, 5), 9, None)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(1, 40), min_size=1, max_size=4, unique=True).map(sorted),
    st.integers(0, 60),
)
def test_every_step_is_taken_at_most_once_and_none_early(days, horizon):
    *reminders, suspend = days if len(days) > 1 else (*days, None)
    policy = Policy(tuple(reminders), None, suspend)
    log = run_daily([INV], horizon, policy)
    steps = [(a.invoice, a.step) for _, a in log]
    assert len(steps) == len(set(steps))
    wanted = dict(policy.steps())
    for n, action in log:
        assert n == wanted[action.step]  # checked daily: each on its own day
    assert {s for _, s in steps} == {s for s, d in wanted.items() if d <= horizon}


# --- credit limits -------------------------------------------------------------------------


def test_exposure_is_what_the_balance_owes():
    assert exposure(-158_030_000) == 158_030_000
    assert exposure(25_000_000) == 0


def test_levels_at_80_and_100_percent_exactly():
    limit = 1_000_000_000  # 1,000.00
    assert credit_level(799_999_999, limit) == "ok"
    assert credit_level(800_000_000, limit) == "warning"
    assert credit_level(999_999_999, limit) == "warning"
    assert credit_level(1_000_000_000, limit) == "limit"
    assert credit_level(10**15, 0) == "ok"  # no limit set


def test_each_level_acts_once_until_exposure_falls_below_it():
    limit = 1_000_000_000
    level, seen = "ok", []
    for balance in (
        -500_000_000,
        -850_000_000,
        -900_000_000,
        -1_000_000_000,
        -1_200_000_000,
        -700_000_000,
        -820_000_000,
        -300_000_000,
        -1_000_000_001,
    ):
        check = check_credit(
            prepaid=False, limit_micro=limit, balance_micro=balance, level_before=level
        )
        seen.append(check.actions)
        level = check.level
    assert seen == [
        (),
        ("warning",),
        (),
        ("suspend",),
        (),
        (),
        ("warning",),
        (),
        ("warning", "suspend"),
    ]
    assert check_credit(prepaid=True, limit_micro=limit, balance_micro=-2 * limit).actions == ()
