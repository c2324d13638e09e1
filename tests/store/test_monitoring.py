"""functions.store.monitoring: a switch's silence alarm, as moto's CloudWatch stores it.

New in issue 9 §4 (no alarm per switch existed): every test fails on the code before it.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.store import NotFoundError, client, monitoring

TOPIC = "arn:aws:sns:us-east-1:123456789012:tollgate-alarms"


def alarms() -> dict[str, dict]:
    found = client("cloudwatch").describe_alarms(AlarmNamePrefix="Tollgate/")["MetricAlarms"]
    return {alarm["AlarmName"]: alarm for alarm in found}


def test_a_silence_alarm_sums_files_received_per_hour_and_counts_silence_as_breaching(aws):
    alarm = monitoring.put_switch_silence_alarm("acme", "sbc1", 6, actions=(TOPIC,))
    assert alarm == monitoring.SilenceAlarm(
        "Tollgate/acme/sbc1/no-files", "acme", "sbc1", 6, (TOPIC,)
    )

    stored = alarms()[alarm.name]
    assert (stored["Namespace"], stored["MetricName"]) == ("Tollgate", "FilesReceived")
    assert {d["Name"]: d["Value"] for d in stored["Dimensions"]} == {
        "service": "ingest",
        "tenant": "acme",
        "switch": "sbc1",
    }
    assert (stored["Statistic"], stored["Period"]) == ("Sum", 3600)
    # every one of the last 6 hours without a file, and only then
    assert (stored["EvaluationPeriods"], stored["DatapointsToAlarm"]) == (6, 6)
    assert (stored["ComparisonOperator"], stored["Threshold"]) == ("LessThanThreshold", 1.0)
    # ingest writes no data point in an hour without a file: missing data must breach
    assert stored["TreatMissingData"] == "breaching"
    assert (stored["AlarmActions"], stored["OKActions"]) == ([TOPIC], [TOPIC])


def test_watching_again_replaces_the_switchs_alarm_and_other_switches_keep_theirs(aws):
    monitoring.put_switch_silence_alarm("acme", "sbc1", 6)
    monitoring.put_switch_silence_alarm("acme", "sbc2", 2)
    monitoring.put_switch_silence_alarm("acme", "sbc1", 24)
    stored = alarms()
    assert sorted(stored) == ["Tollgate/acme/sbc1/no-files", "Tollgate/acme/sbc2/no-files"]
    assert stored["Tollgate/acme/sbc1/no-files"]["EvaluationPeriods"] == 24
    assert stored["Tollgate/acme/sbc2/no-files"]["EvaluationPeriods"] == 2
    assert stored["Tollgate/acme/sbc1/no-files"]["AlarmActions"] == []


# moto's account is shared by the examples: each one must leave it without an alarm.
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(hours=st.one_of(st.integers(max_value=0), st.integers(min_value=169), st.booleans()))
def test_silence_outside_one_hour_to_seven_days_is_refused(aws, hours):
    # CloudWatch caps an hourly alarm's evaluation range at 7 days (168 periods).
    with pytest.raises(ValueError, match="1 to 168"):
        monitoring.put_switch_silence_alarm("acme", "sbc1", hours)
    assert alarms() == {}


def test_the_longest_silence_is_a_week(aws):
    assert monitoring.put_switch_silence_alarm("acme", "sbc1", 168).hours == 168
    assert alarms()["Tollgate/acme/sbc1/no-files"]["EvaluationPeriods"] == 168


def test_ids_that_could_forge_another_alarm_name_are_refused(aws):
    with pytest.raises(ValueError, match="invalid switch id"):
        monitoring.put_switch_silence_alarm("acme", "sbc1/no-files", 6)
    assert alarms() == {}


def test_unwatching_deletes_only_that_switchs_alarm(aws):
    monitoring.put_switch_silence_alarm("acme", "sbc1", 6)
    monitoring.put_switch_silence_alarm("acme", "sbc2", 6)
    monitoring.delete_switch_silence_alarm("acme", "sbc1")
    assert sorted(alarms()) == ["Tollgate/acme/sbc2/no-files"]
    with pytest.raises(NotFoundError, match="not watched"):
        monitoring.delete_switch_silence_alarm("acme", "sbc1")
