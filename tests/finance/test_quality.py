"""Quality analytics: the quality named queries and `tollgate report quality` on DuckDB over
rated traffic whose outcomes are known, with known drops.

Tenant `qa`, days 2024-05-01..08 (D[1]..D[8]); every figure below is worked out from the
rows `lake` writes:

- SUPA x India, 10h: 40 attempts a day, 20 answered (60 s, PDD 2000 ms), 6 BUSY (PDD 2500
  ms), 6 NO_ANSWER, 2 CANCEL, 4 FAILED, 2 CONGESTION; on D8 only 8 answered (12 more
  FAILED): an ASR drop in that hour (0.5 -> 0.2). 11h: 40 a day, 20 answered (60 s), 20
  NO_ANSWER, every day: D8's day is 28/80 = 0.35 against 0.5, within noise at 80 attempts
  (z -2.68, drop 30 %): the hour is flagged, the day is not.
- SUPB x UK, 9h: 30 a day, answered 15, 18, 12, 15, 18, 12, 15 (120 s), the rest NO_ANSWER;
  on D8 3 answered, 27 FAILED: an ASR drop in the hour and the day; ACD not judged (3
  answered < 10).
- SUPA x UK, 14h: 20 a day, 12 answered (110 s and 130 s alternately, MOS 4.1 and 4.3, PDD
  1500 ms), 8 BUSY; on D8 the 12 answered last 30 s with MOS 3.0: ACD and MOS drops, ASR
  steady.
- SUPB x India, 16h: 5 a day, 3 answered (60 s); none on D8: below the minimum attempts.
- SUPC x India, 10h, D7 and D8 only: 40 a day, 20 then 4 answered: too short a baseline.
- SUPA with no destination (no customer rate), D1 10h: one NO_ANSWER.

Tenant `zz` has SUPA x India calls on D8 in the same folder that would show in any figure.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from functions.cli import main
from functions.invoice.lake_sql import (
    LocalLakeSql,
    named_query,
    named_query_names,
    table_schema,
)
from functions.invoice.quality import (
    DROPS_KEYS,
    NER_FAILURE,
    NER_SUCCESS,
    QUALITY_KEYS,
    DropThresholds,
    drops_sql,
    format_quality,
    quality_sql,
)
from functions.shared.cdr import DISPOSITIONS

INDIA, UK = "India - Mobile", "UK - Fixed"
D = {n: f"2024-05-0{n}" for n in range(1, 9)}
TENANT = "qa"
QUALITY_QUERIES = (
    "quality_by_supplier_destination_day",
    "quality_by_supplier_destination_hour",
    "quality_drops",
)


def approx(value: float):
    return pytest.approx(value, rel=1e-12, abs=1e-12)


class Calls:
    """Rows of cdrs_rated (only the columns the quality queries read, plus some)."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict]] = {}

    def add(
        self,
        day: int,
        hour: int,
        supplier: str,
        destination: str | None,
        disposition: str,
        count: int,
        *,
        billsec: int | list[int] = 0,
        pdd_ms: int | None = None,
        mos: str | list[str] | None = None,
    ) -> None:
        rows = self.rows.setdefault(D[day], [])
        start = dt.datetime.fromisoformat(D[day]).replace(hour=hour, tzinfo=dt.UTC)
        for n in range(count):
            seconds = billsec[n % len(billsec)] if isinstance(billsec, list) else billsec
            score = mos[n % len(mos)] if isinstance(mos, list) else mos
            rows.append(
                {
                    "file_id": f"f{day}",
                    "line": len(rows) + 2,
                    "call_id": f"c{day}-{len(rows)}",
                    "start_time": start + dt.timedelta(seconds=n),
                    "callee": "917000000000" if destination == INDIA else "442000000000",
                    "billsec": seconds,
                    "disposition": disposition,
                    "status": "rated" if destination else "unrated",
                    "customer": "CUST1",
                    "destination": destination,
                    "supplier": supplier,
                    "pdd_ms": pdd_ms,
                    "mos": None if score is None else Decimal(score),
                }
            )


def known_traffic() -> Calls:
    calls = Calls()
    for day in range(1, 9):
        # SUPA x India, 10h (ASR drop on D8) and 11h (steady).
        calls.add(day, 10, "SUPA", INDIA, "ANSWERED", 20 if day < 8 else 8, billsec=60, pdd_ms=2000)
        calls.add(day, 10, "SUPA", INDIA, "BUSY", 6, pdd_ms=2500)
        calls.add(day, 10, "SUPA", INDIA, "NO_ANSWER", 6)
        calls.add(day, 10, "SUPA", INDIA, "CANCEL", 2)
        calls.add(day, 10, "SUPA", INDIA, "FAILED", 4 if day < 8 else 16)
        calls.add(day, 10, "SUPA", INDIA, "CONGESTION", 2)
        calls.add(day, 11, "SUPA", INDIA, "ANSWERED", 20, billsec=60)
        calls.add(day, 11, "SUPA", INDIA, "NO_ANSWER", 20)
        # SUPB x UK, 9h: ASR varies, then drops on D8.
        answered = (15, 18, 12, 15, 18, 12, 15, 3)[day - 1]
        calls.add(day, 9, "SUPB", UK, "ANSWERED", answered, billsec=120)
        calls.add(day, 9, "SUPB", UK, "NO_ANSWER" if day < 8 else "FAILED", 30 - answered)
        # SUPA x UK, 14h: ACD and MOS drop on D8.
        if day < 8:
            calls.add(
                day, 14, "SUPA", UK, "ANSWERED", 12, billsec=[110, 130], pdd_ms=1500,
                mos=["4.1", "4.3"],
            )  # fmt: skip
        else:
            calls.add(day, 14, "SUPA", UK, "ANSWERED", 12, billsec=30, pdd_ms=1500, mos="3.0")
        calls.add(day, 14, "SUPA", UK, "BUSY", 8)
        # SUPB x India, 16h: too few attempts to judge.
        if day < 8:
            calls.add(day, 16, "SUPB", INDIA, "ANSWERED", 3, billsec=60)
            calls.add(day, 16, "SUPB", INDIA, "NO_ANSWER", 2)
        else:
            calls.add(day, 16, "SUPB", INDIA, "FAILED", 5)
    # SUPC x India: two days only.
    calls.add(7, 10, "SUPC", INDIA, "ANSWERED", 20, billsec=60)
    calls.add(7, 10, "SUPC", INDIA, "NO_ANSWER", 20)
    calls.add(8, 10, "SUPC", INDIA, "ANSWERED", 4, billsec=60)
    calls.add(8, 10, "SUPC", INDIA, "FAILED", 36)
    # An unrated call: no destination.
    calls.add(1, 10, "SUPA", None, "NO_ANSWER", 1)
    return calls


def write(folder, tenant: str, calls: Calls) -> None:
    schema = table_schema("cdrs_rated")
    schema = pa.schema([f for f in schema if f.name not in ("tenant", "date")])
    for day, rows in calls.rows.items():
        path = (
            folder / "rated" / f"tenant={tenant}" / f"date={day}" / f"{rows[0]['file_id']}.parquet"
        )
        path.parent.mkdir(parents=True)
        columns = {f.name: [row.get(f.name) for row in rows] for f in schema}
        pq.write_table(pa.table(columns, schema=schema), path)


@pytest.fixture(scope="module")
def lake_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quality-lake")
    write(folder, TENANT, known_traffic())
    other = Calls()  # another tenant's calls: 1000 answered, long, on D8 at 10h
    other.add(8, 10, "SUPA", INDIA, "ANSWERED", 1000, billsec=3600, pdd_ms=9, mos="1.0")
    write(folder, "zz", other)
    return folder


@pytest.fixture(scope="module")
def qa(lake_dir):
    with LocalLakeSql(TENANT, lake_dir) as sql:
        yield sql


def by_key(rows, *keys):
    return {tuple(row[k] for k in keys): row for row in rows}


# --- the definitions -------------------------------------------------------------------


def test_the_quality_queries_are_shipped():
    assert set(QUALITY_QUERIES) <= set(named_query_names())


def test_ner_counts_the_documented_dispositions():
    assert set(NER_SUCCESS) | set(NER_FAILURE) == set(DISPOSITIONS)
    assert NER_FAILURE == ("FAILED", "CONGESTION")
    listed = "disposition IN (" + ", ".join(f"'{d}'" for d in NER_SUCCESS) + ")"
    for name in QUALITY_QUERIES[:2]:
        assert listed in named_query(name)


@pytest.mark.parametrize("name", QUALITY_QUERIES)
def test_each_quality_query_runs_on_an_empty_lake(tmp_path, name):
    """A lake without rated files (and without the mos / pdd_ms columns in its Parquet)."""
    with LocalLakeSql("nobody", tmp_path) as empty:
        assert empty.named(name) == []


def test_a_lake_written_without_the_quality_columns_reads_them_as_null(tmp_path):
    schema = pa.schema([f for f in table_schema("cdrs_rated") if f.name not in ("mos", "pdd_ms")])
    schema = pa.schema([f for f in schema if f.name not in ("tenant", "date")])
    row = {"file_id": "f", "line": 2, "call_id": "c", "billsec": 30, "disposition": "ANSWERED"}
    row |= {"supplier": "SUPA", "destination": UK, "customer": "CUST1", "status": "rated"}
    row["start_time"] = dt.datetime(2024, 5, 1, 7, tzinfo=dt.UTC)
    path = tmp_path / "rated" / "tenant=old" / "date=2024-05-01" / "f.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({f.name: [row.get(f.name)] for f in schema}, schema=schema), path)
    with LocalLakeSql("old", tmp_path) as old:
        [got] = old.named("quality_by_supplier_destination_hour")
    assert (got["utc_hour"], got["attempts"], got["answered"], got["asr"]) == (7, 1, 1, 1.0)
    assert (got["pdd_calls"], got["pdd_ms_avg"], got["mos_calls"], got["mos_avg"]) == (
        0,
        None,
        0,
        None,
    )


# --- per day and per hour --------------------------------------------------------------


def test_quality_per_supplier_destination_day(qa):
    rows = by_key(qa.named("quality_by_supplier_destination_day"), "day", "supplier", "destination")
    assert len(rows) == 8 * 4 + 2 + 1  # 4 groups a day, SUPC on two days, no destination

    india = rows[(D[1], "SUPA", INDIA)]  # 10h and 11h
    assert (india["attempts"], india["answered"], india["answered_seconds"]) == (80, 40, 2400)
    assert india["asr"] == approx(40 / 80)
    assert india["acd_minutes"] == approx(1.0)
    assert india["ner"] == approx((20 + 6 + 6 + 2 + 40) / 80)  # FAILED, CONGESTION fail
    assert (india["pdd_calls"], india["mos_calls"], india["mos_avg"]) == (26, 0, None)
    assert india["pdd_ms_avg"] == approx((20 * 2000 + 6 * 2500) / 26)
    assert india["pdd_ms_p50"] == 2000.0

    dropped = rows[(D[8], "SUPA", INDIA)]
    assert (dropped["attempts"], dropped["answered"]) == (80, 28)
    assert dropped["asr"] == approx(28 / 80)
    assert dropped["ner"] == approx((8 + 6 + 6 + 2 + 40) / 80)

    uk = rows[(D[3], "SUPB", UK)]
    assert (uk["attempts"], uk["answered"], uk["answered_seconds"]) == (30, 12, 1440)
    assert uk["asr"] == approx(0.4)
    assert uk["acd_minutes"] == approx(2.0)
    assert uk["ner"] == approx(1.0)
    assert (uk["pdd_calls"], uk["pdd_ms_avg"], uk["mos_calls"], uk["mos_avg"]) == (0, None, 0, None)

    voice = rows[(D[2], "SUPA", UK)]
    assert (voice["attempts"], voice["answered"], voice["answered_seconds"]) == (20, 12, 1440)
    assert voice["asr"] == approx(0.6)
    assert voice["acd_minutes"] == approx(2.0)
    assert (voice["pdd_calls"], voice["pdd_ms_avg"], voice["mos_calls"]) == (12, 1500.0, 12)
    assert voice["mos_avg"] == approx((6 * 4.1 + 6 * 4.3) / 12)
    bad = rows[(D[8], "SUPA", UK)]
    assert bad["acd_minutes"] == approx(0.5)
    assert bad["mos_avg"] == approx(3.0)

    thin = rows[(D[8], "SUPB", INDIA)]
    assert (thin["attempts"], thin["answered"], thin["asr"], thin["acd_minutes"]) == (
        5,
        0,
        0.0,
        None,
    )
    assert thin["ner"] == approx(0.0)

    unrated = rows[(D[1], "SUPA", None)]
    assert (unrated["attempts"], unrated["answered"], unrated["ner"]) == (1, 0, 1.0)


def test_quality_per_supplier_destination_hour(qa):
    rows = qa.named("quality_by_supplier_destination_hour")
    keyed = by_key(rows, "day", "utc_hour", "supplier", "destination")
    hour10 = keyed[(D[8], 10, "SUPA", INDIA)]
    assert (hour10["attempts"], hour10["answered"], hour10["pdd_calls"]) == (40, 8, 14)
    assert hour10["asr"] == approx(0.2)
    assert hour10["ner"] == approx((8 + 6 + 6 + 2) / 40)
    assert hour10["pdd_ms_avg"] == approx((8 * 2000 + 6 * 2500) / 14)
    assert hour10["pdd_ms_p50"] == 2000.0
    hour11 = keyed[(D[8], 11, "SUPA", INDIA)]
    assert (hour11["attempts"], hour11["answered"], hour11["asr"], hour11["ner"]) == (
        40,
        20,
        0.5,
        1.0,
    )
    assert (hour11["pdd_calls"], hour11["pdd_ms_avg"], hour11["pdd_ms_p50"]) == (0, None, None)
    # Every hour row sums to its day row.
    days = by_key(qa.named("quality_by_supplier_destination_day"), "day", "supplier", "destination")
    for (day, supplier, destination), row in days.items():
        hours = [r for k, r in keyed.items() if (k[0], k[2], k[3]) == (day, supplier, destination)]
        assert sum(r["attempts"] for r in hours) == row["attempts"]
        assert sum(r["answered"] for r in hours) == row["answered"]
    # Ordered by day, hour, supplier, destination.
    order = [
        (r["day"], r["utc_hour"], r["supplier"], r["destination"] or "\uffff") for r in rows
    ]  # nulls last
    assert order == sorted(order)


# --- drops -----------------------------------------------------------------------------

EXPECTED_DROPS = {
    ("hour", D[8], 10, "SUPA", INDIA): "asr",
    ("day", D[8], None, "SUPB", UK): "asr",
    ("hour", D[8], 9, "SUPB", UK): "asr",
    ("day", D[8], None, "SUPA", UK): "acd,mos",
    ("hour", D[8], 14, "SUPA", UK): "acd,mos",
}
KEY = ("grain", "day", "utc_hour", "supplier", "destination")


def test_exactly_the_known_drops_are_flagged(qa):
    rows = qa.named("quality_drops")
    assert {k: r["drops"] for k, r in by_key(rows, *KEY).items()} == EXPECTED_DROPS
    assert [r["grain"] for r in rows] == ["day", "day", "hour", "hour", "hour"]  # ordered

    drops = by_key(rows, *KEY)
    asr = drops[("hour", D[8], 10, "SUPA", INDIA)]
    assert (asr["attempts"], asr["answered"], asr["asr_periods"]) == (40, 8, 7)
    assert asr["asr"] == approx(0.2)
    assert asr["asr_baseline"] == approx(0.5)
    assert asr["asr_sd"] == approx(0.0)
    # sigma: the sampling error at the baseline's ASR, sqrt(0.5 * 0.5 / 40)
    assert asr["asr_z"] == approx(-0.3 / math.sqrt(0.25 / 40))
    assert asr["asr_drop"] == approx(0.6)

    uk = drops[("day", D[8], None, "SUPB", UK)]
    spread = math.sqrt(sum((x - 0.5) ** 2 for x in (0.5, 0.6, 0.4, 0.5, 0.6, 0.4, 0.5)) / 6)
    assert uk["asr_sd"] == approx(spread)
    assert uk["asr_z"] == approx((0.1 - 0.5) / max(spread, math.sqrt(0.25 / 30)))
    # ACD not judged (3 answered < 10); every call lasting 120 s, it has no spread and no z.
    assert (uk["answered"], uk["acd_periods"], uk["acd_drop"], uk["acd_z"]) == (3, 7, 0.0, None)

    voice = drops[("hour", D[8], 14, "SUPA", UK)]
    assert voice["acd_minutes"] == approx(0.5)
    assert voice["acd_baseline"] == approx(2.0)
    assert voice["acd_drop"] == approx(0.75)
    assert voice["mos_avg"] == approx(3.0)
    assert voice["mos_baseline"] == approx(4.2)
    assert voice["mos_drop"] == approx((4.2 - 3.0) / 4.2)
    assert voice["asr_drop"] == approx(0.0)
    assert voice["mos_periods"] == voice["acd_periods"] == 7
    # sigma: the baseline's per-call spread over sqrt(the period's 12 calls)
    call_sd = math.sqrt(12 * 10**2 / 11)  # 110 s and 130 s alternately
    assert voice["acd_z"] == approx((0.5 - 2.0) / (call_sd / 60 / math.sqrt(12)))
    mos_sd = math.sqrt(12 * 0.1**2 / 11)
    assert voice["mos_z"] == pytest.approx((3.0 - 4.2) / (mos_sd / math.sqrt(12)), rel=1e-9)


def test_the_day_grain_hides_what_the_hour_shows(qa):
    """D8's SUPA x India day (28 of 80 against 0.5) is within noise; its 10h is not."""
    rows = qa.query(drops_sql(D[8], D[8], "day"))
    assert ("day", D[8], None, "SUPA", INDIA) not in by_key(rows, *KEY)
    assert {(r["supplier"], r["destination"]) for r in rows} == {("SUPB", UK), ("SUPA", UK)}


def test_thresholds_are_parameters(qa):
    # Lower the minimum attempts: SUPB x India's 5 attempts a day are judged (ASR 0.6 -> 0).
    low = DropThresholds(min_attempts=5, min_answered=3)
    rows = by_key(qa.query(drops_sql(D[1], D[8], "hour", thresholds=low)), *KEY)
    assert rows[("hour", D[8], 16, "SUPB", INDIA)]["drops"] == "asr"
    assert rows[("hour", D[8], 16, "SUPB", INDIA)]["asr_drop"] == approx(1.0)
    assert rows[("hour", D[8], 9, "SUPB", UK)]["drops"] == "asr"  # 3 answered now judged...
    # ... and steady at 2 minutes: ACD is not flagged.
    # A looser z and drop limit: the day of SUPA x India is flagged too.
    loose = DropThresholds(z_limit=2.5, asr_drop_limit=0.25)
    rows = by_key(qa.query(drops_sql(D[8], D[8], "day", thresholds=loose)), *KEY)
    assert rows[("day", D[8], None, "SUPA", INDIA)]["drops"] == "asr"
    # A one-day baseline is enough when min_baseline is 1: SUPC x India's D8 against its D7.
    short = DropThresholds(min_baseline=1)
    rows = by_key(qa.query(drops_sql(D[8], D[8], "hour", thresholds=short)), *KEY)
    assert rows[("hour", D[8], 10, "SUPC", INDIA)]["drops"] == "asr"
    # Either test alone flags the known drops: z only (no relative drop reaches 100 %) ...
    z_only = DropThresholds(asr_drop_limit=1.0, acd_drop_limit=1.0, mos_drop_limit=1.0)
    rows = by_key(qa.query(drops_sql(D[1], D[8], "day", thresholds=z_only)), *KEY)
    rows |= by_key(qa.query(drops_sql(D[1], D[8], "hour", thresholds=z_only)), *KEY)
    assert {k: r["drops"] for k, r in rows.items()} == EXPECTED_DROPS
    # ... or the relative drop only (no z reaches -100).
    drop_only = DropThresholds(z_limit=100.0)
    rows = by_key(qa.query(drops_sql(D[1], D[8], "day", thresholds=drop_only)), *KEY)
    rows |= by_key(qa.query(drops_sql(D[1], D[8], "hour", thresholds=drop_only)), *KEY)
    assert {k: r["drops"] for k, r in rows.items()} == EXPECTED_DROPS
    # A shorter window reads fewer days: with 2 baseline days and 3 needed, nothing is flagged.
    assert qa.query(drops_sql(D[8], D[8], "hour", thresholds=DropThresholds(baseline_days=2))) == []


def test_drops_sql_reads_the_baseline_days_before_the_range():
    sql = drops_sql(D[8], D[8], "hour", thresholds=DropThresholds(baseline_days=7, z_limit=2.5))
    assert """WHERE "date" BETWEEN '2024-05-01' AND '2024-05-08'""" in sql
    assert "2.5E0 AS z_limit," in sql and "20 AS min_attempts," in sql
    assert "9999-12-31" not in sql


@pytest.mark.parametrize(
    "given, field",
    [
        ({"min_attempts": 0}, "min_attempts"),
        ({"baseline_days": 91}, "baseline_days"),
        ({"z_limit": -3.0}, "z_limit"),
        ({"asr_drop_limit": 1.5}, "asr_drop_limit"),
        ({"mos_drop_limit": float("nan")}, "mos_drop_limit"),
        ({"min_baseline": 2.5}, "min_baseline"),
    ],
)
def test_bad_thresholds_are_refused_naming_the_field(given, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        DropThresholds(**given)


def test_filters_quote_names_and_check_days(qa):
    rows = qa.query(quality_sql(D[1], D[8], "day", supplier="SUPA", destination=UK))
    assert [r["day"] for r in rows] == [D[n] for n in range(1, 9)]
    assert {(r["supplier"], r["destination"]) for r in rows} == {("SUPA", UK)}
    assert qa.query(quality_sql(D[1], D[8], supplier="x' OR '1'='1")) == []
    with pytest.raises(ValueError, match="after"):
        quality_sql(D[2], D[1])
    with pytest.raises(ValueError, match="invalid date"):
        drops_sql("2024-05-01' OR 1=1 --", D[1])
    with pytest.raises(ValueError, match="grain"):
        quality_sql(D[1], D[2], "week")


# --- tollgate report quality -----------------------------------------------------------


def run(capsys, lake_dir, *argv: str) -> tuple[int, str, str]:
    code = main(["report", *argv, "--lake-dir", str(lake_dir)])
    out, err = capsys.readouterr()
    return code, out, err


def test_report_quality_json_per_hour(lake_dir, capsys):
    code, out, _ = run(
        capsys, lake_dir, "quality", TENANT, "--from", D[8], "--to", D[8], "--by", "hour",
        "--supplier", "SUPA", "--destination", INDIA, "--json",
    )  # fmt: skip
    assert code == 0
    rows = json.loads(out)
    assert [list(r) for r in rows] == [list(QUALITY_KEYS["hour"])] * 2
    assert [(r["utc_hour"], r["attempts"], r["answered"], r["asr"]) for r in rows] == [
        (10, 40, 8, 0.2),
        (11, 40, 20, 0.5),
    ]
    assert rows[0]["ner"] == approx(22 / 40)
    assert rows[0]["pdd_ms_avg"] == approx((8 * 2000 + 6 * 2500) / 14)
    assert rows[1]["mos_avg"] is None


def test_report_quality_drops_json_and_csv(lake_dir, capsys):
    code, out, _ = run(
        capsys, lake_dir, "quality", TENANT, "--from", D[1], "--to", D[8], "--drops", "--json"
    )
    assert code == 0
    rows = json.loads(out)
    assert [list(r) for r in rows] == [list(DROPS_KEYS)] * 2
    assert {(r["supplier"], r["destination"], r["day"]): r["drops"] for r in rows} == {
        ("SUPB", UK, D[8]): "asr",
        ("SUPA", UK, D[8]): "acd,mos",
    }
    code, out, _ = run(
        capsys, lake_dir, "quality", TENANT, "--from", D[8], "--to", D[8], "--drops",
        "--by", "hour", "--min-attempts", "5", "--min-answered", "3", "--format", "csv",
    )  # fmt: skip
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == ",".join(DROPS_KEYS)
    assert [line.split(",")[2:5] for line in lines[1:]] == [
        ["9", "SUPB", UK],
        ["10", "SUPA", INDIA],
        ["14", "SUPA", UK],
        ["16", "SUPB", INDIA],
    ]


def test_report_quality_table(lake_dir, capsys):
    code, out, _ = run(capsys, lake_dir, "quality", TENANT, "--from", D[8], "--to", D[8])
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == list(QUALITY_KEYS["day"])
    supa_uk = next(line for line in lines if "SUPA" in line and UK in line)
    # asr and ner to 4 places, acd to 2, pdd (mean and median) to 0, mos to 2
    shown = ["20", "12", "0.6000", "0.50", "1.0000", "12", "1500", "1500", "12", "3.00"]
    assert supa_uk.split()[-10:] == shown
    assert lines[-1] == "(5 rows)"
    code, out, _ = run(capsys, lake_dir, "quality", TENANT, "--from", D[8], "--to", D[8], "--drops")
    assert code == 0
    assert "acd,mos" in out and out.splitlines()[-1] == "(2 rows)"


def test_report_without_a_view_is_still_the_traffic_report(lake_dir, capsys):
    code, out, _ = run(capsys, lake_dir, TENANT, "--from", D[1], "--to", D[1], "--json")
    assert code == 0
    [row] = [r for r in json.loads(out) if r["destination"] == UK]
    assert row["customer"] == "CUST1"


@pytest.mark.parametrize(
    "argv, message",
    [
        ((TENANT, "--by", "hour"), "--by: options of `tollgate report quality` only"),
        ((TENANT, "--drops"), "--drops: options of `tollgate report quality` only"),
        (("quality", TENANT, "--z-limit", "2"), "--z-limit: thresholds of --drops"),
        (("quality", TENANT, "--drops", "--min-attempts", "0"), "--min-attempts: a whole"),
        (("quality", TENANT, "--drops", "--asr-drop", "2"), "--asr-drop: a fraction"),
        (("quality", "a'b"), "tenant"),
    ],
)
def test_bad_report_quality_input_exits_2(lake_dir, capsys, argv, message):
    code, out, err = run(capsys, lake_dir, *argv, "--from", D[1], "--to", D[2])
    assert (code, out) == (2, "")
    assert message in err


def test_bad_grain_is_a_usage_error(lake_dir, capsys):
    with pytest.raises(SystemExit) as exit_:
        run(capsys, lake_dir, "quality", TENANT, "--from", D[1], "--to", D[2], "--by", "week")
    assert exit_.value.code == 2


def test_edges_of_the_calendar_and_of_doubles():
    sql = drops_sql("0001-01-03", "0001-01-04")
    assert """WHERE "date" BETWEEN '0001-01-01' AND '0001-01-04'""" in sql
    rows = [{"day": D[1], "asr": 1 / 3, "asr_z": -1e300, "acd_minutes": float("nan")}]
    table = format_quality(rows, "table", ("day", "asr", "asr_z", "acd_minutes"))
    assert table.splitlines()[2].split()[:2] == [D[1], "0.3333"]
    assert format_quality(rows, "csv", ("asr",)) == f"asr\n{1 / 3!r}"
