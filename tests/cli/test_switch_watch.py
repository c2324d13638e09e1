"""`tollgate switch watch TENANT SWITCH --silence-hours N | --off`, against moto CloudWatch.

New in issue 9 §4 (the command did not exist): every test fails on the code before it.
"""

from __future__ import annotations

import json

import pytest

from functions.cli import main
from functions.store import client

TOPIC = "arn:aws:sns:us-east-1:123456789012:tollgate-alarms"


def alarms() -> dict[str, dict]:
    found = client("cloudwatch").describe_alarms(AlarmNamePrefix="Tollgate/")["MetricAlarms"]
    return {alarm["AlarmName"]: alarm for alarm in found}


@pytest.fixture
def acme(aws, capsys):
    for argv in (
        ("tenant", "create", "acme"),
        ("switch", "create", "acme", "sbc1", "--format", "generic"),
    ):
        assert main(list(argv)) == 0
    capsys.readouterr()


def test_watch_creates_the_switchs_alarm_and_prints_it(acme, capsys):
    argv = ["switch", "watch", "acme", "sbc1", "--silence-hours", "6", "--notify", TOPIC]
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "tenant": "acme",
        "switch": "sbc1",
        "watched": True,
        "alarm": "Tollgate/acme/sbc1/no-files",
        "silence_hours": 6,
        "notify": [TOPIC],
    }
    stored = alarms()["Tollgate/acme/sbc1/no-files"]
    assert (stored["MetricName"], stored["Period"], stored["EvaluationPeriods"]) == (
        "FilesReceived",
        3600,
        6,
    )
    assert (stored["TreatMissingData"], stored["AlarmActions"]) == ("breaching", [TOPIC])

    assert main(["switch", "watch", "acme", "sbc1", "--silence-hours", "12"]) == 0
    assert capsys.readouterr().out == (
        "acme/sbc1: alarm Tollgate/acme/sbc1/no-files fires after 12 h without a file\n"
    )
    assert alarms()["Tollgate/acme/sbc1/no-files"]["EvaluationPeriods"] == 12


def test_watch_off_removes_the_alarm(acme, capsys):
    assert main(["switch", "watch", "acme", "sbc1", "--silence-hours", "6"]) == 0
    assert main(["switch", "watch", "acme", "sbc1", "--off", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {
        "tenant": "acme",
        "switch": "sbc1",
        "watched": False,
    }
    assert alarms() == {}
    assert main(["switch", "watch", "acme", "sbc1", "--off"]) == 2
    assert "not watched" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["acme", "nosuch", "--silence-hours", "6"], "unknown switch 'nosuch'"),
        (["acme", "sbc1", "--silence-hours", "0"], "1 to 168"),
        (["acme", "sbc1", "--silence-hours", "169"], "1 to 168"),
        (["acme", "sbc1", "--off", "--notify", TOPIC], "--notify goes with --silence-hours"),
    ],
)
def test_bad_watches_exit_2_and_create_nothing(acme, capsys, argv, message):
    assert main(["switch", "watch", *argv]) == 2
    assert message in capsys.readouterr().err
    assert alarms() == {}


def test_watch_needs_hours_or_off(acme, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["switch", "watch", "acme", "sbc1"])
    assert exit_.value.code == 2
    assert "--silence-hours" in capsys.readouterr().err
