"""Each rule family on hand-made counters: where it fires, where it does not, and how the
tenant's values, an account's overrides and its allow-list change that (pure, no store)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from functions.fraud.counters import ALL, CUSTOMER, RANGE, SUPPLIER, Callback, Counter, Evidence
from functions.fraud.policy import Policy, PolicyError, parse_setting
from functions.fraud.ranges import RangeList
from functions.fraud.rules import WEEK, Evaluation, History, run_all

H = 500_000  # an hour (epoch hours): 2027-01-14T08


def c(group, hour=H, *, party=CUSTOMER, account="acct", minutes=0, calls=None, answered=None,
      amount=0, short=0):  # fmt: skip
    seconds = int(minutes * 60)
    answered = answered if answered is not None else (1 if seconds else 0)
    calls = calls if calls is not None else max(answered, 1)
    return Counter(party, account, group, hour, calls, answered, seconds, amount, short)


def judge(counters, touched, *, policy=None, first_hour=H - 10 * WEEK, **context):
    history = History(counters, {(CUSTOMER, "acct"): first_hour, (SUPPLIER, "sup"): first_hour})
    evaluation = Evaluation("t", set(touched), history, policy or Policy(), RangeList.of(),
                            **context)  # fmt: skip
    return {(f.rule, f.severity, f.scope) for f in run_all(evaluation)}


def weeks_of(group, minutes, weeks=8, **kw):
    return [c(group, H - WEEK * k, minutes=minutes, **kw) for k in range(1, weeks + 1)]


def test_a_spike_needs_minimum_volume_k_times_the_baseline_and_a_z_score_of_3():
    past = weeks_of("India", 50) + weeks_of(ALL, 50)
    key = (CUSTOMER, "acct", "India", H)
    # 149 minutes against 50 every week: under 3x; 150: k reached, z = 100 / sqrt(50) > 3
    assert not judge([*past, c("India", minutes=149)], [key])
    assert ("spike", "warning", "India") in judge([*past, c("India", minutes=150)], [key])
    # from nothing: 59 minutes is under the minimum volume, 60 fires
    assert not judge([c("India", minutes=59)], [key])
    assert ("spike", "warning", "India") in judge([c("India", minutes=60)], [key])
    # critical: 600 minutes and 10x the baseline
    assert ("spike", "critical", "India") in judge([*past, c("India", minutes=600)], [key])
    assert ("spike", "warning", "India") in judge(
        [*weeks_of("India", 61), c("India", minutes=600)], [key]
    )


def test_a_young_account_is_judged_against_its_recent_hours_and_a_new_one_not_at_all():
    key = (CUSTOMER, "acct", "India", H)
    steady = [c("India", H - h, minutes=100) for h in range(1, 24)]
    # three days old: its last day at 100 a minute-hour makes 250 ordinary, 400 a spike
    assert not judge([*steady, c("India", minutes=250)], [key], first_hour=H - 72)
    assert ("spike", "warning", "India") in judge(
        [*steady, c("India", minutes=400)], [key], first_hour=H - 72
    )
    # younger than the familiarity period: no baseline yet, the static limits judge it
    assert not judge([c("India", minutes=5000)], [key], first_hour=H - 5) - {
        ("velocity.minutes_per_hour", "critical", ALL)
    }


def test_an_account_may_be_allowed_a_destination_and_have_its_own_thresholds():
    key = (CUSTOMER, "acct", "India", H)
    counters = [c("India", minutes=700)]
    assert ("spike", "critical", "India") in judge(counters, [key])
    allowed = Policy().with_allowed("acct", {"India"}, set())
    assert not judge(counters, [key], policy=allowed)
    raised = Policy().with_settings({"spike.min_minutes": Decimal(800)}, account="acct")
    assert not judge(counters, [key], policy=raised)
    elsewhere = Policy().with_settings({"spike.min_minutes": Decimal(800)}, account="other")
    assert ("spike", "critical", "India") in judge(counters, [key], policy=elsewhere)
    off = Policy().with_settings({"spike.enabled": Decimal(0)})
    assert not judge(counters, [key], policy=off)


def test_a_test_number_alerts_on_any_answered_call_even_when_its_country_is_allowed():
    test_range = next(r for r in RangeList.of().ranges if r.kind == "test")
    group = RANGE + test_range.prefix
    key = (CUSTOMER, "acct", group, H)
    assert not judge([c(group, calls=3, answered=0)], [key])
    allowed = Policy().with_allowed("acct", {test_range.prefix, test_range.label}, set())
    found = judge([c(group, minutes=0.5)], [key], policy=allowed)
    assert found == {("test_number", "critical", f"{test_range.label} ({test_range.prefix})")}


def test_high_risk_minutes_add_up_over_a_sliding_day():
    group = RANGE + "252"
    key = (CUSTOMER, "acct", group, H)
    # 9.99 minutes in 24 h: nothing; 10 warns; 120 is critical; 130 minutes 24 h ago is gone
    assert not judge([c(group, H - 23, minutes=5), c(group, minutes=4.99)], [key])
    assert judge([c(group, H - 23, minutes=5), c(group, minutes=5)], [key]) == {
        ("high_risk", "warning", "Somalia (252)")
    }
    assert ("high_risk", "critical", "Somalia (252)") in judge(
        [c(group, H - 23, minutes=60), c(group, minutes=60)], [key]
    )
    assert not judge([c(group, H - 24, minutes=130), c(group, minutes=1)], [key])


def test_velocity_spend_over_24_hours_in_the_accounts_currency_to_the_micro_unit():
    key = (CUSTOMER, "acct", ALL, H)
    just_under = [c(ALL, H - 12, amount=500_000_000), c(ALL, amount=499_999_999)]
    assert not judge(just_under, [key])
    at_limit = [c(ALL, H - 12, amount=500_000_000), c(ALL, amount=500_000_000)]
    assert judge(at_limit, [key]) == {("velocity.spend_per_day", "warning", ALL)}


def test_short_calls_fire_above_a_fifth_of_100_answered_calls_in_6_hours():
    key = (CUSTOMER, "acct", ALL, H)

    def hours(short_now):
        return [c(ALL, H - 3, calls=60, answered=50, short=10, minutes=100),
                c(ALL, calls=60, answered=50, short=short_now, minutes=100)]  # fmt: skip

    def short(counters):
        return {f for f in judge(counters, [key]) if f[0] == "short_calls"}

    assert not short(hours(10))  # 20 of 100: not above a fifth
    assert short(hours(11)) == {("short_calls", "warning", ALL)}
    # 99 answered calls: not enough to judge
    assert not short([c(ALL, calls=99, answered=99, short=90, minutes=10)])


def test_off_hours_fire_in_an_hour_the_account_was_silent_for_four_weeks():
    key = (CUSTOMER, "acct", ALL, H)
    assert ("off_hours", "warning", ALL) in judge([c(ALL, minutes=30)], [key])
    assert not judge([c(ALL, minutes=29)], [key])
    one_call = [c(ALL, H - 3 * WEEK, minutes=1)]  # it called once at this hour 3 weeks ago
    assert not judge([*one_call, c(ALL, minutes=30)], [key])
    assert not judge([c(ALL, minutes=30)], [key], first_hour=H - 3 * WEEK)  # too young


def test_asr_collapse_compares_a_suppliers_hour_with_its_last_days():
    key = (SUPPLIER, "sup", "India", H)
    usual = [c("India", H - 24 * d, party=SUPPLIER, account="sup", calls=100, answered=60)
             for d in range(1, 7)]  # fmt: skip
    assert judge([*usual, c("India", party=SUPPLIER, account="sup", calls=100, answered=29)],
                 [key]) == {("asr_collapse", "warning", "India")}  # fmt: skip
    assert not judge(
        [*usual, c("India", party=SUPPLIER, account="sup", calls=100, answered=30)], [key]
    )
    assert not judge(  # 99 calls: too few to judge
        [*usual, c("India", party=SUPPLIER, account="sup", calls=99, answered=1)], [key]
    )


def test_wangiri_callbacks_need_many_callers_beyond_the_accounts_usual_traffic():
    hit = Callback("acct", "2693123", "Comoros", H, callers=60, calls=61, listed=False)
    key = (CUSTOMER, "acct", "Comoros", H)
    assert ("wangiri", "warning", "Comoros (2693123…)") in judge(
        [c("Comoros", calls=61)], [key], callbacks=[hit]
    )
    usual = [c("Comoros", H - WEEK, calls=40)]  # it always sends this much there
    assert not {f for f in judge([*usual, c("Comoros", calls=61)], [key], callbacks=[hit])
                if f[0] == "wangiri"}  # fmt: skip


def test_a_new_dear_destination_is_critical_only_for_an_established_account():
    evidence = {("acct", "Somalia"): Evidence("acct", "Somalia", H, H, (), (), 5_000_000)}
    key = (CUSTOMER, "acct", "Somalia", H)
    new = {"acct": {"Somalia": H}}
    counters = [c("Somalia", minutes=700)]
    assert ("new_destination", "critical", "Somalia") in judge(
        counters, [key], evidence=evidence, new_groups=new
    )
    young = judge(counters, [key], evidence=evidence, new_groups=new, first_hour=H - 2)
    assert ("new_destination", "warning", "Somalia") in young
    cheap = {("acct", "Somalia"): Evidence("acct", "Somalia", H, H, (), (), 4_999_999)}
    assert not {f for f in judge(counters, [key], evidence=cheap, new_groups=new)
                if f[0] == "new_destination"}  # fmt: skip


@pytest.mark.parametrize(
    "text, field",
    [
        ("spike.k", "RULE.KEY=VALUE"),
        ("spikes.k=3", "rule 'spikes'"),
        ("spike.kk=3", "spike.kk is not a setting"),
        ("spike.k=three", "spike.k: 'three' is not a number"),
        ("spike.k=-1", "spike.k: '-1' must be zero or more"),
        ("spike.weeks=2.5", "spike.weeks: '2.5' must be a whole number"),
        ("spike.enabled=2", "spike.enabled: '2' must be 1"),
    ],
)
def test_a_bad_setting_names_the_field_at_fault(text, field):
    with pytest.raises(PolicyError, match=field.replace(".", r"\.").replace("'", "'")):
        parse_setting(text)
