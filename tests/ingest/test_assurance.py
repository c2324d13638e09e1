"""The revenue assurance rules (functions.ingest.assurance) on an in-memory registry and lake:
sequence gaps, wraps and resets, silent hours against 14 days, late and resent files,
quarantine, unrated calls and the money they did not bill, to the last digit."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from types import SimpleNamespace

import pyarrow as pa
import pytest

from functions.ingest import assurance
from functions.ingest.assurance import (
    SequenceSettings,
    Thresholds,
    check_day,
    check_sequence_settings,
    publish_alerts,
    sequence_report,
    thresholds_from,
)

D = dt.date(2026, 11, 20)
UTC = dt.UTC
PATTERN = r"cdr_(\d+)\.csv"


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), UTC)


# --- the sequence alone -----------------------------------------------------------------


def test_consecutive_numbers_have_no_gap():
    report = sequence_report(["cdr_7.csv", "cdr_8.csv", "cdr_9.csv"], SequenceSettings(PATTERN), 6)
    assert (report.numbered, report.first, report.last, report.missing) == (3, 7, 9, 0)
    assert report.gaps == [] and report.resets == [] and report.wraps == 0


def test_a_step_up_is_a_gap_of_the_numbers_skipped():
    names = ["cdr_5.csv", "cdr_9.csv", "cdr_10.csv", "cdr_12.csv", "notes.txt"]
    report = sequence_report(names, SequenceSettings(PATTERN), 3)
    assert report.gaps == [[4, 4], [6, 8], [11, 11]]
    assert report.missing == 5
    assert report.unsequenced == ["notes.txt"]


def test_a_wrap_at_the_modulus_counts_the_numbers_skipped_across_it():
    settings = SequenceSettings(PATTERN, 10000)
    report = sequence_report(["cdr_9999.csv", "cdr_0000.csv", "cdr_0001.csv"], settings, 9998)
    assert (report.wraps, report.missing, report.gaps) == (1, 0, [])
    report = sequence_report(["cdr_0002.csv"], settings, 9997)
    assert report.wraps == 1
    assert report.gaps == [[9998, 9999], [0, 1]]
    assert report.missing == 4


def test_a_drop_is_a_reset_not_a_gap():
    # Without a modulus every drop is a restart of the counter (Asterisk's `sequence`).
    report = sequence_report(["a_41.csv", "a_0.csv", "a_1.csv"], SequenceSettings(r"a_(\d+)"), 40)
    assert report.resets == [{"name": "a_0.csv", "previous": 41, "number": 0}]
    assert (report.missing, report.wraps, report.gaps) == (0, 0, [])
    # With one, a drop far from the top of the range is a reset too.
    settings = SequenceSettings(PATTERN, 10000)
    report = sequence_report(["cdr_0001.csv", "cdr_0002.csv"], settings, 4000)
    assert [r["number"] for r in report.resets] == [1]
    assert report.missing == 0


def test_the_same_number_again_is_a_repeated_file():
    report = sequence_report(["cdr_3.csv", "cdr_3.csv"], SequenceSettings(PATTERN), 2)
    assert report.repeated == ["cdr_3.csv"]
    assert report.missing == 0


def test_sequence_settings_are_checked():
    with pytest.raises(ValueError, match="group"):
        check_sequence_settings(r"cdr_\d+", None)
    with pytest.raises(ValueError, match="regular expression"):
        check_sequence_settings("cdr_(", None)
    with pytest.raises(ValueError, match="modulus"):
        check_sequence_settings(PATTERN, 1)
    with pytest.raises(ValueError, match="needs a sequence pattern"):
        check_sequence_settings(None, 100)
    assert check_sequence_settings(PATTERN, 10000) == SequenceSettings(PATTERN, 10000)


def test_thresholds_are_checked_and_named():
    changed = thresholds_from({"quarantine_share": "0.1", "late_hours": "12"})
    assert changed.quarantine_share == Decimal("0.1") and changed.late_hours == 12
    assert changed.unrated_share == Decimal("0.02")
    for values, field in (
        ({"quarantine_share": "2"}, "quarantine_share"),
        ({"money_not_billed": "-1"}, "money_not_billed"),
        ({"usual_days": "15"}, "usual_days"),
        ({"late_hours": "x"}, "late_hours"),
        ({"nope": 1}, "nope"),
    ):
        with pytest.raises(ValueError, match=field):
            thresholds_from(values)


# --- a day of a switch, against its 14 days ---------------------------------------------


class Lake:
    """The lake's per-file tables, in memory: (area, day, file id) -> table."""

    def __init__(self) -> None:
        self.tables: dict[tuple[str, str, str], pa.Table] = {}
        self.reads: list[tuple[str, str, str]] = []

    def read(self, area, day, file_id, columns):
        self.reads.append((area, day, file_id))
        table = self.tables[(area, day, file_id)]
        return table.select([c for c in columns if c in table.column_names])


def starts(times: list[dt.datetime]) -> pa.Table:
    return pa.table({"start_time": pa.array(times, pa.timestamp("us", tz="UTC"))})


def rated(calls: list[dict]) -> pa.Table:
    columns = {name: [] for name in assurance.RATED_COLUMNS}
    for call in calls:
        row = {
            "reason": None,
            "customer": "CUST",
            "supplier_reason": None,
            "matched_prefix": None,
            "billed_seconds": 0,
            "customer_amount": None,
            "currency": "USD",
        } | call
        for name in columns:
            columns[name].append(row[name])
    types = {
        "start_time": pa.timestamp("us", tz="UTC"),
        "billsec": pa.int64(),
        "billed_seconds": pa.int64(),
        "customer_amount": pa.decimal128(18, 6),
    }
    return pa.table(
        {
            name: pa.array(
                [Decimal(v) if name == "customer_amount" and v is not None else v for v in values],
                types.get(name, pa.string()),
            )
            for name, values in columns.items()
        }
    )


def record(file_id, switch, name, arrived, days, status="done", **counts):
    return SimpleNamespace(
        file_id=file_id,
        status=status,
        created_at=arrived,
        counts={"rows": 0, "quarantined": 0, "duplicates": 0} | counts,
        meta={
            "switch": switch,
            "name": name,
            "days": [d.isoformat() for d in days],
            "quarantine_day": arrived.date().isoformat(),
        },
    )


def call(callee, hour, billsec, status, **more):
    return {"callee": callee, "start_time": at(D, hour, 5), "billsec": billsec, "status": status}


@pytest.fixture(scope="module")
def world():
    return build_world()


def build_world() -> SimpleNamespace:
    """sw1's 14 days and its day D (four files), sw2's one EUR file, one old file."""
    lake = Lake()
    records = []
    d = D.isoformat()
    # 14 days of history: one file a day, numbered 9985..9998, at 23:30 of its day. Hours 9
    # and 10 busy every day, 14 h on 10 of the 14 days (usual), 03 h on 9 (not usual).
    for k in range(14):
        day = D - dt.timedelta(days=14 - k)
        hours = [9, 10] + ([14] if k < 10 else []) + ([3] if k < 9 else [])
        file_id = f"h{k:02d}"
        records.append(record(file_id, "sw1", f"cdr_{9985 + k}.csv", at(day, 23, 30), [day]))
        lake.tables[("normalized", day.isoformat(), file_id)] = starts([at(day, h) for h in hours])

    def add(file_id, name, arrived, calls, normalized=None, **counts):
        records.append(record(file_id, "sw1", name, arrived, [D], **counts))
        lake.tables[("rated", d, file_id)] = rated(calls)
        times = normalized if normalized is not None else [c["start_time"] for c in calls]
        lake.tables[("normalized", d, file_id)] = starts(times)

    usd = {"currency": "USD"}
    add(
        "fa",
        "cdr_0001.csv",  # 9998 -> 0001 across the wrap: 9999 and 0000 missing
        at(D, 11),
        [
            call("4420711", 9, 60, "rated")
            | {"matched_prefix": "44207", "billed_seconds": 60, "customer_amount": "0.05"},
            call("4420722", 9, 30, "rated")
            | {"matched_prefix": "44207", "billed_seconds": 30, "customer_amount": "0.025"},
            call("4479001", 9, 90, "rated")
            | {"matched_prefix": "447", "billed_seconds": 90, "customer_amount": "0.18"},
            call("4420799", 9, 45, "unrated")
            | {"reason": "unknown_account", "customer": None, **usd},
            call("4479555", 10, 7, "unrated") | {"reason": "unknown_account", "customer": None},
            call("3361234", 10, 0, "unrated") | {"reason": "no_rate"},
        ],
        rows=8,
        quarantined=2,
    )
    lake.tables[("quarantine", d, "fa")] = pa.table(
        {"reason": ["bad_number", "malformed"], "line": [3, 7]}
    )
    b_calls = [
        call("3361111", 10, 13, "unrated") | {"reason": "no_rate"},
        call("4470000", 10, 20, "rated")
        | {"matched_prefix": "447", "billed_seconds": 20, "customer_amount": "0.04"},
        call("4420700", 10, 0, "rated")
        | {"matched_prefix": "44207", "billed_seconds": 0, "customer_amount": "0"},
    ]
    add("fb", "cdr_0002.csv", at(D, 23), b_calls, rows=3)
    # The same file again under its own name: every call claimed by fb first.
    add(
        "fc",
        "cdr_0002.csv",
        at(D, 23, 30),
        [],
        normalized=[c["start_time"] for c in b_calls],
        rows=3,
        duplicates=3,
    )
    # Seven hours after D ended (the margin is six): late.
    add(
        "fl",
        "cdr_0003.csv",
        at(D + dt.timedelta(days=1), 7),
        [
            call("4420711", 10, 120, "rated")
            | {"matched_prefix": "44207", "billed_seconds": 120, "customer_amount": "0.1"},
            call("4420712", 10, 10, "rated")
            | {
                "matched_prefix": "44207",
                "billed_seconds": 60,
                "customer_amount": "0.05",
                "supplier_reason": "unknown_account",
            },
        ],
        rows=2,
    )
    # Another switch of the tenant, billing in EUR: not part of the USD revenue book.
    records.append(record("fe", "sw2", "x.csv", at(D, 12), [D], rows=1))
    lake.tables[("rated", d, "fe")] = rated(
        [
            call("4420799", 9, 60, "rated")
            | {
                "matched_prefix": "44207",
                "billed_seconds": 60,
                "customer_amount": "9",
                "currency": "EUR",
            }
        ]
    )
    lake.tables[("normalized", d, "fe")] = starts([at(D, 9, 5)])
    # Long ago: outside the window, never read.
    records.append(record("old", "sw1", "cdr_0.csv", at(D - dt.timedelta(days=40), 1), []))
    return SimpleNamespace(lake=lake, records=records)


@pytest.fixture(scope="module")
def checked(world):
    world.lake.reads.clear()
    return check_day(
        "acme",
        D,
        records=world.records,
        switches={"sw1": SequenceSettings(PATTERN, 10000), "sw2": SequenceSettings()},
        thresholds=Thresholds(),
        currency="USD",
        tables=world.lake,
    )


def sw1(checked) -> dict:
    return checked.as_json()["switches"][0]


def test_files_received_on_the_day_with_their_arrival(checked):
    files = sw1(checked)["files"]
    assert [(f["name"], f["arrived"], f["sequence"]) for f in files["received"]] == [
        ("cdr_0001.csv", "2026-11-20T11:00:00Z", 1),
        ("cdr_0002.csv", "2026-11-20T23:00:00Z", 2),
        ("cdr_0002.csv", "2026-11-20T23:30:00Z", 2),
    ]
    assert files["with_calls_of_day"] == 4 and files["not_rated_yet"] == []


def test_the_sequence_continues_from_the_day_before_across_the_wrap(checked):
    sequence = sw1(checked)["sequence"]
    assert sequence["anchor"] == 9998
    assert sequence["gaps"] == [[9999, 9999], [0, 0]]
    assert (sequence["missing"], sequence["wraps"], sequence["resets"]) == (2, 1, [])
    assert sequence["repeated"] == ["cdr_0002.csv"]


def test_an_hour_busy_on_10_of_14_days_is_silent_when_empty(checked):
    hours = sw1(checked)["hours"]
    assert hours["usual"] == [9, 10, 14]  # 03 h had calls on 9 days only
    assert hours["silent"] == [14]
    assert hours["calls"][9] == 4 and hours["calls"][10] == 10  # the resent calls included
    assert sum(hours["calls"]) == 14


def test_late_files_with_their_calls_and_what_they_billed(checked):
    assert sw1(checked)["late_files"] == [
        {
            "file_id": "fl",
            "name": "cdr_0003.csv",
            "arrived": "2026-11-21T07:00:00Z",
            "hours_late": "7.00",
            "calls": 2,
            "billed": "0.150000",
        }
    ]


def test_a_resent_file_and_its_duplicate_calls(checked):
    report = sw1(checked)
    assert report["duplicate_files"] == [
        {"file_id": "fc", "name": "cdr_0002.csv", "why": "every call claimed by an earlier file"}
    ]
    assert report["duplicate_calls"] == 3


def test_quarantine_share_of_the_files_received_with_its_reasons(checked):
    assert sw1(checked)["quarantine"] == {
        "rows": 14,
        "quarantined": 2,
        "share": "0.142857",
        "reasons": {"bad_number": 1, "malformed": 1},
    }


def test_unrated_calls_by_reason_and_the_money_they_did_not_bill(checked):
    report = sw1(checked)
    calls = report["calls"]
    assert (calls["calls"], calls["rated"], calls["unrated"]) == (11, 7, 4)
    assert calls["unrated_share"] == "0.363636"
    # USD book: 44207 earned 0.225 in 270 s, 447 earned 0.22 in 110 s, all 0.445 in 380 s.
    # unknown_account: 45 s on 44207 -> 0.0375; 7 s on 447 -> 0.014.
    # no_rate: 13 s on 33.. (no rated prefix) at the average -> 13 * 0.445 / 380 = 0.015224.
    assert calls["unrated_by_reason"] == {
        "no_rate": {
            "calls": 2,
            "share": "0.181818",
            "answered": 1,
            "answered_seconds": 13,
            "money_not_billed": "0.015224",
            "by_prefix": 0,
            "by_tenant_average": 1,
            "not_estimated": 0,
        },
        "unknown_account": {
            "calls": 2,
            "share": "0.181818",
            "answered": 2,
            "answered_seconds": 52,
            "money_not_billed": "0.051500",
            "by_prefix": 2,
            "by_tenant_average": 0,
            "not_estimated": 0,
        },
    }
    # The supplier-side unknown (a rated call) counts among the calls with no account.
    assert report["unknown_account"] == {"calls": 3, "money_not_billed": "0.051500"}
    assert (report["money_not_billed"], report["currency"]) == ("0.066724", "USD")


def test_every_default_threshold_passed_is_an_alert(checked):
    assert sw1(checked)["alerts"] == [
        {"check": "sequence_gap", "value": 2, "threshold": "0"},
        {"check": "silent_hours", "value": 1, "threshold": "0"},
        {"check": "late_files", "value": 1, "threshold": "0"},
        {"check": "quarantine_share", "value": "0.142857", "threshold": "0.05"},
        {"check": "unrated_share", "value": "0.363636", "threshold": "0.02"},
        {"check": "money_not_billed", "value": "0.066724", "threshold": "0"},
    ]


def test_a_quiet_switch_raises_nothing(checked):
    sw2 = checked.as_json()["switches"][1]
    assert sw2["switch"] == "sw2" and sw2["alerts"] == []
    assert sw2["sequence"]["unsequenced"] == ["x.csv"]
    assert sw2["money_not_billed"] == "0.000000"


def test_reads_scale_with_files_not_calls(checked, world):
    # Each table read once per (area, day, file), the old file never.
    reads = world.lake.reads
    assert all(r[2] != "old" for r in reads)
    assert len(reads) == len(set(reads))
    rated_reads = [r for r in reads if r[0] == "rated"]
    assert sorted(r[2] for r in rated_reads) == ["fa", "fb", "fc", "fe", "fl"]


def test_thresholds_raised_silence_the_alerts(world):
    lenient = thresholds_from(
        {
            "quarantine_share": "0.15",
            "unrated_share": "0.5",
            "sequence_gap": 2,
            "silent_hours": 1,
            "late_files": 1,
            "money_not_billed": "0.066724",
        }
    )
    result = check_day(
        "acme",
        D,
        records=world.records,
        switches={"sw1": SequenceSettings(PATTERN, 10000)},
        thresholds=lenient,
        currency="USD",
        tables=world.lake,
        only="sw1",
    )
    assert result.switches[0].alerts == []
    # A later margin makes the file on time.
    later = check_day(
        "acme",
        D,
        records=world.records,
        switches={"sw1": SequenceSettings(PATTERN, 10000)},
        thresholds=thresholds_from({"late_hours": 7}),
        currency="USD",
        tables=world.lake,
        only="sw1",
    )
    assert later.switches[0].report["late_files"] == []


# --- publishing once ----------------------------------------------------------------------


class Claims:
    """The alert store's semantics in memory (functions.store.files has the real one)."""

    def __init__(self, lease=dt.timedelta(minutes=30)):
        self.items: dict[str, tuple[str, dt.datetime]] = {}
        self.lease = lease

    def claim_alert(self, key, now):
        state = self.items.get(key)
        if state is not None and (state[0] == "sent" or now - state[1] < self.lease):
            return False
        self.items[key] = ("pending", now)
        return True

    def alert_sent(self, key):
        self.items[key] = ("sent", self.items[key][1])

    def release_alert(self, key):
        del self.items[key]


def test_each_alert_is_published_once_across_reruns(checked):
    claims, sent = Claims(), []
    now = at(D + dt.timedelta(days=1), 7)
    first = publish_alerts(checked, store=claims, publish=sent.append, now=now)
    assert len(first) == len(sent) == 6
    assert publish_alerts(checked, store=claims, publish=sent.append, now=now) == []
    assert len(sent) == 6
    assert sent[0]["alert_id"] == assurance.alert_id("acme", "sw1", D, "sequence_gap")
    assert {e["check"] for e in sent} == set(assurance.CHECKS) - {"rejected_files"}


def test_a_failed_publish_is_retried_by_the_next_run(checked):
    claims, sent = Claims(), []

    def refuse(detail):
        raise RuntimeError("EventBridge down")

    now = at(D + dt.timedelta(days=1), 7)
    with pytest.raises(RuntimeError):
        publish_alerts(checked, store=claims, publish=refuse, now=now)
    assert publish_alerts(checked, store=claims, publish=sent.append, now=now)
    assert len(sent) == 6


def test_a_file_not_rated_yet_is_listed_and_its_calls_wait():
    lake = Lake()
    d = D.isoformat()
    records = [
        record("f1", "sw1", "cdr_1.csv", at(D, 2), [D], rows=2),
        # The same name again, new content (another object): not a resend of every call,
        # still a name seen before; ingested, its rating not done yet.
        record("f2", "sw1", "cdr_1.csv", at(D, 3), [D], status="ingested", rows=1),
    ]
    lake.tables[("rated", d, "f1")] = rated(
        [call("4420711", 1, 60, "rated") | {"matched_prefix": "44", "billed_seconds": 60,
                                            "customer_amount": "0.06"}] * 2
    )  # fmt: skip
    lake.tables[("normalized", d, "f1")] = starts([at(D, 1, 5)] * 2)
    lake.tables[("normalized", d, "f2")] = starts([at(D, 2, 5)])
    result = check_day(
        "acme",
        D,
        records=records,
        switches={"sw1": SequenceSettings(PATTERN)},
        thresholds=Thresholds(),
        currency="USD",
        tables=lake,
    ).switches[0]
    report = result.report
    assert report["files"]["not_rated_yet"] == [
        {"file_id": "f2", "name": "cdr_1.csv", "status": "ingested"}
    ]
    assert report["duplicate_files"] == [
        {"file_id": "f2", "name": "cdr_1.csv", "why": "name seen before"}
    ]
    assert (report["calls"]["calls"], report["duplicate_calls"]) == (2, 0)
    assert report["sequence"]["repeated"] == ["cdr_1.csv"]
    assert report["money_not_billed"] == "0.000000" and result.alerts == []
    assert ("rated", d, "f2") not in lake.reads
