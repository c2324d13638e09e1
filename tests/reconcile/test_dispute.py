"""The dispute pack (functions.reconcile.dispute): the CSVs and summary.json to the last digit,
the threshold at its edges, and the letter (read back with pypdf), built from small
Reconciliation objects written out by hand (no matcher needed).

New in issue 15.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import re
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pypdf
import pytest

from functions.reconcile.dispute import (
    DAY_CSV,
    DISPUTED_CSV,
    LETTER_PDF,
    SUMMARY_JSON,
    Party,
    amount_print,
    amount_text,
    by_day,
    dispute_letter_pdf,
    minutes_text,
    threshold,
    write_dispute_pack,
)
from functions.reconcile.result import CLASSES, ROW_SCHEMA, ClassTotal, Reconciliation

D = Decimal
TODAY = dt.date(2026, 4, 3)
SENDER = Party(
    "Acme Telecom GmbH", ("Hauptstraße 1", "10115 Berlin", "Germany"), "noc@acme.example"
)
RECIPIENT = Party("Carrier X Ltd", ("1 Wharf Road", "London N1 7GR"), "billing@carrierx.example")


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def row(klass: str, callee: str, ours=None, theirs=None) -> dict:
    """A ROW_SCHEMA row: `ours`/`theirs` are (line, call_id, start, billsec, amount)."""
    out = {"class": klass, "callee": callee}
    for side, values in (("our", ours), ("their", theirs)):
        line, call_id, start, billsec, amount = values or (None,) * 5
        out |= {
            f"{side}_line": line,
            f"{side}_call_id": call_id,
            f"{side}_start": at(start) if start else None,
            f"{side}_billsec": billsec,
            f"{side}_amount": D(amount) if amount is not None else None,
        }
    both = ours and theirs and ours[4] is not None and theirs[4] is not None
    out["difference"] = D(theirs[4]) - D(ours[4]) if both else None
    return out


def reconciliation(rows: list[dict], role: str = "supplier", **changes) -> Reconciliation:
    """The Reconciliation of `rows` with the totals as result.py defines them."""
    totals = {}
    for name in CLASSES:
        mine = [r for r in rows if r["class"] == name]
        seconds = sum(max(r["our_billsec"] or 0, r["their_billsec"] or 0) for r in mine)
        money = sum(((r["their_amount"] or 0) - (r["our_amount"] or 0) for r in mine), start=D("0"))
        totals[name] = ClassTotal(len(mine), seconds, money)
    fields = dict(
        partner="CARRIER_X",
        role=role,
        currency="EUR",
        date_from=dt.date(2026, 3, 1),
        date_to=dt.date(2026, 3, 2),
        clock_offset_seconds=D("2.5"),
        start_tolerance_seconds=3,
        duration_tolerance_seconds=2,
        rows=pa.Table.from_pylist(rows, schema=ROW_SCHEMA),
        totals=totals,
        our_amount=sum((r["our_amount"] or 0 for r in rows), start=D("0")),
        their_amount=sum((r["their_amount"] or 0 for r in rows), start=D("0")),
    )
    return Reconciliation(**(fields | changes))


ROWS = [
    row("matched", "4930111",
        (1, "o1", "2026-03-01T10:00:00", 60, "0.600000"),
        (1, "t1", "2026-03-01T10:00:02.500000", 60, "0.600000")),
    row("duration_mismatch", "4930222",
        (2, "o2", "2026-03-01T11:00:00", 120, "1.200000"),
        (2, "t2", "2026-03-01T11:00:03", 125, "1.250000")),
    # 23:59:59.5 ours is 00:00:02 the next day on their clock: the day is ours.
    row("rate_mismatch", "4930333",
        (3, "o3", "2026-03-01T23:59:59.500000", 30, "0.300000"),
        (3, "t3", "2026-03-02T00:00:02", 30, "0.450000")),
    row("missing_ours", "4930444", None, (4, "t4", "2026-03-02T08:00:00", 90, "0.900001")),
    row("missing_theirs", "4930555", (5, "o5", "2026-03-02T07:00:00", 45, "0.450000"), None),
    row("matched", "4930666",
        (6, "o6", "2026-03-02T09:00:00", 600, "6.000000"),
        (6, "t6", "2026-03-02T09:00:02", 600, "6.000000")),
]  # fmt: skip


@pytest.fixture(scope="module")
def result() -> Reconciliation:
    return reconciliation(ROWS)


def pack(result: Reconciliation, out: Path, **options) -> list[Path]:
    return write_dispute_pack(
        result, out, sender=SENDER, recipient=RECIPIENT, today=TODAY, **options
    )


def text(pdf: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return " ".join(re.sub(r"\s+", " ", page.extract_text()) for page in reader.pages)


# --- formatting ----------------------------------------------------------------------------


def test_amounts_are_written_exactly_with_six_places_and_never_rounded():
    assert amount_text(D("1234.5")) == "1234.500000"
    assert amount_text(D("-0.000001")) == "-0.000001"
    assert amount_text(D("-0.000000")) == "0.000000"
    assert amount_print(D("1234567.000001")) == "1,234,567.000001"
    assert amount_print(D("-1500.25")) == "-1,500.250000"
    assert minutes_text(125) == "2.0833"
    assert minutes_text(7) == "0.1167"
    with pytest.raises(ValueError, match="more than 6 decimal places"):
        amount_text(D("0.0000001"))


# --- the files, to the last digit ----------------------------------------------------------


def test_disputed_cdrs_are_every_call_not_matched_sorted_by_start(result, tmp_path):
    pack(result, tmp_path)
    assert (tmp_path / DISPUTED_CSV).read_bytes() == (
        b"class,callee,our_start,their_start,our_billsec,their_billsec,our_amount,"
        b"their_amount,difference,our_call_id,their_call_id,our_line,their_line\r\n"
        b"duration_mismatch,4930222,2026-03-01T11:00:00Z,2026-03-01T11:00:03Z,120,125,"
        b"1.200000,1.250000,0.050000,o2,t2,2,2\r\n"
        b"rate_mismatch,4930333,2026-03-01T23:59:59.500000Z,2026-03-02T00:00:02Z,30,30,"
        b"0.300000,0.450000,0.150000,o3,t3,3,3\r\n"
        b"missing_theirs,4930555,2026-03-02T07:00:00Z,,45,,0.450000,,-0.450000,o5,,5,\r\n"
        b"missing_ours,4930444,,2026-03-02T08:00:00Z,,90,,0.900001,0.900001,,t4,,4\r\n"
    )


def test_summary_by_day_is_per_utc_day_and_class_to_the_last_digit(result, tmp_path):
    pack(result, tmp_path)
    data = (tmp_path / DAY_CSV).read_text()
    assert data.splitlines() == [
        "day,class,our_calls,our_seconds,our_minutes,our_amount,their_calls,their_seconds,"
        "their_minutes,their_amount,difference,difference_percent",
        "2026-03-01,matched,1,60,1.0000,0.600000,1,60,1.0000,0.600000,0.000000,0.00",
        "2026-03-01,duration_mismatch,1,120,2.0000,1.200000,1,125,2.0833,1.250000,0.050000,4.00",
        "2026-03-01,rate_mismatch,1,30,0.5000,0.300000,1,30,0.5000,0.450000,0.150000,33.33",
        "2026-03-02,matched,1,600,10.0000,6.000000,1,600,10.0000,6.000000,0.000000,0.00",
        "2026-03-02,missing_ours,0,0,0.0000,0.000000,1,90,1.5000,0.900001,0.900001,100.00",
        "2026-03-02,missing_theirs,1,45,0.7500,0.450000,0,0,0.0000,0.000000,-0.450000,",
    ]
    rows = list(csv.DictReader(io.StringIO(data)))
    assert sum(D(r["our_amount"]) for r in rows) == result.our_amount == D("8.550000")
    assert sum(D(r["their_amount"]) for r in rows) == result.their_amount == D("9.200001")
    assert sum(D(r["difference"]) for r in rows) == result.difference == D("0.650001")
    for name in CLASSES:
        assert sum(D(r["difference"]) for r in rows if r["class"] == name) == (
            result.totals[name].difference
        )


def test_summary_json_has_the_issues_members_then_tolerances_period_and_threshold(result, tmp_path):
    pack(result, tmp_path, threshold_amount=D("0.5"))
    document = json.loads((tmp_path / SUMMARY_JSON).read_text())
    assert document == {
        "clock_offset_seconds": "2.5",
        "matched": 2,
        "duration_mismatch": 1,
        "rate_mismatch": 1,
        "missing_ours": 1,
        "missing_theirs": 1,
        "our_amount": "8.550000",
        "their_amount": "9.200001",
        "difference": "0.650001",
        "partner": "CARRIER_X",
        "role": "supplier",
        "reference": "REC-CARRIER_X-20260301-20260302",
        "currency": "EUR",
        "period": {"from": "2026-03-01", "to": "2026-03-02"},
        "tolerances": {"start_seconds": 3, "duration_seconds": 2},
        "classes": {
            "matched": {"count": 2, "seconds": 660, "minutes": "11.0000", "difference": "0.000000"},
            "duration_mismatch": {
                "count": 1,
                "seconds": 125,
                "minutes": "2.0833",
                "difference": "0.050000",
            },
            "rate_mismatch": {
                "count": 1,
                "seconds": 30,
                "minutes": "0.5000",
                "difference": "0.150000",
            },
            "missing_ours": {
                "count": 1,
                "seconds": 90,
                "minutes": "1.5000",
                "difference": "0.900001",
            },
            "missing_theirs": {
                "count": 1,
                "seconds": 45,
                "minutes": "0.7500",
                "difference": "-0.450000",
            },
        },
        "threshold": {
            "percent": "1",
            "amount": "0.5",
            "passed": True,
            "passed_by": ["percent", "amount"],
        },
        "letter": "dispute_letter.pdf",
    }


def test_a_side_without_prices_leaves_its_amounts_empty_and_its_differences_zero(tmp_path):
    unpriced = [
        row("matched", "441", (1, "o1", "2026-03-01T10:00:00", 60, "0.600000"),
            (1, "t1", "2026-03-01T10:00:01", 60, None)),
        row("missing_ours", "442", None, (2, "t2", "2026-03-01T12:00:00", 30, None)),
    ]  # fmt: skip
    result = reconciliation(unpriced)
    written = pack(result, tmp_path)
    assert [p.name for p in written] == [DISPUTED_CSV, DAY_CSV, SUMMARY_JSON]
    assert (tmp_path / DISPUTED_CSV).read_text().splitlines()[1] == (
        "missing_ours,442,,2026-03-01T12:00:00Z,,30,,,,,t2,,2"
    )
    assert (tmp_path / DAY_CSV).read_text().splitlines()[1:] == [
        "2026-03-01,matched,1,60,1.0000,0.600000,1,60,1.0000,0.000000,0.000000,",
        "2026-03-01,missing_ours,0,0,0.0000,0.000000,1,30,0.5000,0.000000,0.000000,",
    ]


def test_no_calls_make_header_only_files(tmp_path):
    result = reconciliation([])
    assert by_day(result) == []
    pack(result, tmp_path)
    assert (tmp_path / DISPUTED_CSV).read_text().count("\n") == 1
    assert (tmp_path / DAY_CSV).read_text().count("\n") == 1
    assert json.loads((tmp_path / SUMMARY_JSON).read_text())["threshold"]["passed"] is False


# --- the threshold, at its edges -----------------------------------------------------------


def amounts(result: Reconciliation, theirs: str, difference: str) -> Reconciliation:
    """`result` with its totals set so that they billed `theirs` and theirs - ours is
    `difference`."""
    return dataclasses.replace(result, their_amount=D(theirs), our_amount=D(theirs) - D(difference))


@pytest.mark.parametrize(
    ("theirs", "difference", "by_percent", "by_amount"),
    [
        # 1 % of 50,000 is 500, under the fixed 1,000: the percentage decides.
        ("50000.000000", "499.999999", False, False),
        ("50000.000000", "500.000000", True, False),
        ("50000.000000", "-500.000000", True, False),  # under-billed counts the same
        ("50000.000000", "500.000001", True, False),
        # 1 % of 200,000 is 2,000, over the fixed 1,000: the fixed amount decides.
        ("200000.000000", "999.999999", False, False),
        ("200000.000000", "1000.000000", False, True),
        ("200000.000000", "-1000.000000", False, True),
        ("200000.000000", "2000.000000", True, True),
        # They billed nothing: a percentage of zero is not tested, the fixed amount is.
        ("0.000000", "-999.999999", False, False),
        ("0.000000", "-1000.000000", False, True),
        ("1000.000000", "0.000000", False, False),
    ],
)
def test_threshold_is_one_percent_of_their_amount_or_a_fixed_amount(
    result, theirs, difference, by_percent, by_amount
):
    test = threshold(amounts(result, theirs, difference))
    assert (test.by_percent, test.by_amount) == (by_percent, by_amount)
    assert test.passed == (by_percent or by_amount)


def test_a_zero_difference_passes_no_threshold_even_at_zero():
    empty = reconciliation([])
    test = threshold(empty, percent=D("0"), amount=D("0"))
    assert not test.passed
    with pytest.raises(ValueError, match="negative"):
        threshold(empty, percent=D("-1"))


@pytest.mark.parametrize(
    ("difference", "options", "letter", "passed_by"),
    [
        ("4.999999", {"threshold_percent": D("0.5")}, False, []),
        ("5.000000", {"threshold_percent": D("0.5")}, True, ["percent"]),
        ("4.999999", {"threshold_amount": D("4.999999")}, True, ["amount"]),
        ("-5.000001", {"threshold_percent": D("0.5"), "threshold_amount": D("5")}, True,
         ["percent", "amount"]),
    ],
)  # fmt: skip
def test_the_letter_is_written_only_over_the_threshold(
    result, tmp_path, difference, options, letter, passed_by
):
    """Their 1,000.000000 at 0.5 % is 5.000000."""
    stale = tmp_path / LETTER_PDF
    stale.write_bytes(b"an earlier run's letter")
    written = pack(amounts(result, "1000.000000", difference), tmp_path, **options)
    names = [DISPUTED_CSV, DAY_CSV, SUMMARY_JSON] + ([LETTER_PDF] if letter else [])
    assert written == [tmp_path / name for name in names]
    assert stale.exists() == letter
    if letter:
        assert stale.read_bytes().startswith(b"%PDF-")
    document = json.loads((tmp_path / SUMMARY_JSON).read_text())
    assert document["threshold"]["passed"] is letter
    assert document["threshold"]["passed_by"] == passed_by
    assert document["letter"] == (LETTER_PDF if letter else None)
    assert document["difference"] == difference


# --- the letter ----------------------------------------------------------------------------


def letter(result: Reconciliation, **options) -> bytes:
    test = threshold(result, **options)
    return dispute_letter_pdf(
        result,
        test,
        by_day(result),
        sender=SENDER,
        recipient=RECIPIENT,
        reference="DSP-2026-0042",
        today=TODAY,
    )


def test_the_letter_is_the_same_bytes_on_every_render(result):
    first = letter(result, amount=D("0.5"))
    assert first.startswith(b"%PDF-")
    assert first == letter(result, amount=D("0.5"))


def test_the_letter_states_the_claim_classes_days_method_and_deadline(result):
    printed = text(letter(result, amount=D("0.5")))
    for expected in (
        "Acme Telecom GmbH",
        "Hauptstraße 1 10115 Berlin Germany noc@acme.example",
        "Carrier X Ltd 1 Wharf Road London N1 7GR billing@carrierx.example",
        "Reference DSP-2026-0042",
        "Date 2026-04-03",
        "Period 2026-03-01 to 2026-03-02 (inclusive, UTC)",
        "Currency EUR",
        "your records of this traffic total 9.200001 EUR and ours total 8.550000 EUR",
        "You have over-billed us by 0.650001 EUR. We dispute 0.650001 EUR",
        "is 7.0652 % of your billed amount, at or above the threshold of 1 %",
        "at or above the fixed threshold of 0.500000 EUR",
        "passes the dispute threshold (percentage and fixed amount)",
        "Matched 2 11.0000 0.000000",
        "Duration mismatch 1 2.0833 0.050000",
        "Rate mismatch (same call, different amount) 1 0.5000 0.150000",
        "On your records only 1 1.5000 0.900001",
        "On our records only 1 0.7500 -0.450000",
        "Total (your records - ours) 6 0.650001",
        # Per day: both sides' calls, minutes and amounts, the difference and its share.
        "2026-03-01 3 3 3.5000 3.5833 2.100000 2.300000 0.200000 8.70",
        "2026-03-02 2 2 10.7500 11.5000 6.450000 6.900001 0.450001 6.52",
        "Your clock was found 2.5 s ahead of ours (clock offset 2.5 s",
        "start within 3 s after the offset, answered duration within 2 s",
        "summed without further rounding, to 6 decimal places",
        "disputed_cdrs.csv: the 4 calls that differ",
        "summary_by_day.csv",
        "Please respond within 30 days of this letter, by 2026-05-03",
    ):
        assert expected in printed, expected


def test_the_letter_states_the_fixed_threshold_alone_when_the_percentage_is_not_reached(result):
    printed = text(letter(amounts(result, "200000.000000", "1500.250000")))
    assert "You have over-billed us by 1,500.250000 EUR" in printed
    assert "is 0.7501 % of your billed amount, below the threshold of 1 %" in printed
    assert "at or above the fixed threshold of 1,000.000000 EUR" in printed
    assert "passes the dispute threshold (fixed amount)" in printed


@pytest.mark.parametrize(
    ("role", "difference", "claim"),
    [
        ("supplier", "-1500.000000", "You have under-billed us by 1,500.000000 EUR"),
        ("customer", "-1500.000000",
         "Your records fall 1,500.000000 EUR short of what we billed you. Our charge stands: "
         "we claim 1,500.000000 EUR"),
        ("customer", "1500.000000", "Your records exceed what we billed you by 1,500.000000 EUR"),
    ],
)  # fmt: skip
def test_the_claims_direction_follows_the_partners_role(result, role, difference, claim):
    changed = dataclasses.replace(amounts(result, "100000.000000", difference), role=role)
    assert claim in text(letter(changed))


def test_a_long_day_table_runs_over_pages_repeating_its_header(tmp_path):
    days = [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(90)]
    rows = [
        row("missing_ours", f"49301{i:03d}", None,
            (i, f"t{i}", f"{day}T12:00:00", 60 + i, f"{10 + i}.000001"))
        for i, day in enumerate(days)
    ]  # fmt: skip
    result = reconciliation(rows, date_from=days[0], date_to=days[-1])
    written = pack(result, tmp_path, reference="DSP-LONG")
    assert written[-1] == tmp_path / LETTER_PDF
    reader = pypdf.PdfReader(tmp_path / LETTER_PDF)
    pages = [re.sub(r"\s+", " ", page.extract_text()) for page in reader.pages]
    assert len(pages) >= 3
    header = "Day (UTC) Calls ours Calls yours Minutes ours Minutes yours"
    with_table = [p for p in pages if re.search(r"2026-\d\d-\d\d 0 1 0\.0000", p)]
    assert len(with_table) >= 2
    assert all(header in p for p in with_table)
    printed = " ".join(pages)
    for i, day in enumerate(days):
        amount = f"{10 + i}.000001"
        minutes = (D(60 + i) / 60).quantize(D("0.0001"))
        assert f"{day} 0 1 0.0000 {minutes} 0.000000 {amount} {amount} 100.00" in printed
    total = sum(D(f"{10 + i}.000001") for i in range(90))
    assert total == D("4905.000090")
    assert "over-billed us by 4,905.000090 EUR" in printed


def test_the_letter_prints_letters_its_font_lacks_as_their_base_letter(result):
    sender = Party("Kővári Telekom Kft", ("Budapest",), None)
    pdf = dispute_letter_pdf(
        result, threshold(result, amount=D("0.5")), by_day(result), sender=sender,
        recipient=RECIPIENT, reference="DSP-1", today=TODAY,
    )  # fmt: skip
    printed = text(pdf)
    assert "Kovári Telekom Kft" in printed  # ő is not in Vera, á is
    assert "quoting reference DSP-1." in printed


def test_rows_that_carry_the_a_number_put_it_beside_the_b_number(result, tmp_path):
    callers = ["4989100", "4989200", "4989300", None, "4989500", "4989600"]
    with_caller = dataclasses.replace(
        result, rows=result.rows.append_column("caller", pa.array(callers, pa.string()))
    )
    pack(with_caller, tmp_path)
    lines = (tmp_path / DISPUTED_CSV).read_text().splitlines()
    assert lines[0].startswith("class,caller,callee,our_start,")
    assert [line.split(",")[:3] for line in lines[1:]] == [
        ["duration_mismatch", "4989200", "4930222"],
        ["rate_mismatch", "4989300", "4930333"],
        ["missing_theirs", "4989500", "4930555"],
        ["missing_ours", "", "4930444"],
    ]
