"""`mapped`: any switch's CSV through its column mapping (a Sansay-like export, a Cisco-like
one, a partner's spreadsheet), the mapping's JSON form, the partner's amounts, and
`tollgate rate --format mapped --mapping`."""

from __future__ import annotations

import csv
import json
from decimal import Decimal

import pyarrow as pa
import pytest

from functions.cli import main
from functions.ingest.formats import CdrFileError, iter_cdr_chunks, parse_cdr_file
from functions.ingest.formats.mapped import (
    ColumnMapping,
    MappingError,
    read_amounts,
    sip_disposition,
)
from tests.ingest.sample_call import ANSWERED_CALL, utc

# docs/formats.md's Sansay-like export: `;`-separated, Paris wall-clock times, its own words.
SANSAY_MAPPING = {
    "columns": {
        "call_id": "SessionId",
        "caller": "SRC",
        "callee": "DST",
        "start": "Start",
        "answer": "Answer",
        "end": "End",
        "disposition": "Status",
        "ingress_trunk": "InTrunk",
        "egress_trunk": "OutTrunk",
        "pdd_ms": "PDD",
        "mos": "MOS",
    },
    "time_format": "%Y-%m-%d %H:%M:%S",
    "timezone": "Europe/Paris",
    "dispositions": {"Normal": "ANSWERED", "Busy": "BUSY", "NoAnswer": "NO_ANSWER"},
    "delimiter": ";",
}
SANSAY = (
    "SessionId;SRC;DST;Start;Answer;End;Status;InTrunk;OutTrunk;PDD;MOS\n"
    "s1;15551230000;442071234567;2024-05-01 14:00:00;2024-05-01 14:00:07;"
    "2024-05-01 14:01:12;Normal;cust-7;bt-1;2300;4.36\n"
    "s2;15551230000;442071234568;2024-05-01 14:02:00;;2024-05-01 14:02:30;Busy;cust-7;bt-1;;\n"
    "s3;15551230000;442071234569;2024-05-01 14:03:00;;2024-05-01 14:03:30;487;cust-7;bt-1;;\n"
    "s4;15551230000;442071234560;2024-05-01 14:04:00;;2024-05-01 14:04:30;Weird;cust-7;bt-1;;\n"
    "s5;15551230000;442071234561;2024-05-01 02:30:00;;2024-05-01 02:30:30;Busy;cust-7;bt-1;;\n"
    "s6;15551230000;442071234562;2024-05-01 14:05:00;2024-05-01 14:04:00;"
    "2024-05-01 14:06:00;Normal;cust-7;bt-1;;\n"
)
# docs/formats.md's Cisco-like export: epoch seconds, a duration, SIP codes, no call id column.
CISCO_MAPPING = {
    "columns": {
        "caller": "callingPartyNumber",
        "callee": "finalCalledPartyNumber",
        "start": "dateTimeOrigination",
        "answer": "dateTimeConnect",
        "end": "dateTimeDisconnect",
        "duration": "duration",
        "disposition": "sipCode",
    },
    "time_format": "EPOCH",
}
CISCO = (
    "callingPartyNumber,finalCalledPartyNumber,dateTimeOrigination,dateTimeConnect,"
    "dateTimeDisconnect,duration,sipCode\n"
    "15551230000,442071234567,1714564800,1714564807,1714564872,65,200\n"
    "15551230000,442071234567,1714564900,0,1714564931,0,486\n"
    "15551230000,442071234567,1714564800,1714564807,1714564872,65,200\n"
    "15551230000,442071234567,1714565000,1714565001,1714565010,nine,200\n"
)
# A partner's spreadsheet: one time (the answered call's start), billed seconds, a price.
SPREADSHEET_MAPPING = {
    "columns": {
        "callee": "Number",
        "start": "Date",
        "duration": "Seconds",
        "amount": "Price",
    },
}
SPREADSHEET = (
    "Date,Number,Seconds,Price\n"
    "2024-05-01T12:00:07Z,+44 20 7123 4567,64.512,0.0143\n"
    "2024-05-01T14:00:00+02:00,442071234568,0,0\n"
    "2024-05-01T12:30:00Z,442071234569,12.0,0.00123456789\n"
    "2024-05-01T12:40:00Z,,12,n/a\n"
)


def parse(text: str, mapping: dict, **options):
    return parse_cdr_file(text.encode(), "mapped", mapping=mapping, source="x.csv", **options)


def test_a_sansay_like_export_maps_its_columns_zone_and_words():
    parsed = parse(SANSAY, SANSAY_MAPPING)
    cdrs = parsed.cdrs.to_pylist()
    assert cdrs[0] == {
        "line": 2,
        "call_id": "s1",
        **ANSWERED_CALL,  # 14:00 in Paris is 12:00 UTC
        "customer": None,
        "supplier": None,
        "pdd_ms": 2300,
        "dialled": "442071234567",
        "ingress_trunk": "cust-7",
        "ingress_ip": None,
        "egress_trunk": "bt-1",
        "egress_ip": None,
        "egress_leg": None,
        "mos": Decimal("4.36"),
    }
    assert [(c["call_id"], c["disposition"], c["billsec"]) for c in cdrs] == [
        ("s1", "ANSWERED", 65),
        ("s2", "BUSY", 0),
        ("s3", "CANCEL", 0),  # a SIP code needs no mapping
        ("s5", "BUSY", 0),
    ]
    assert cdrs[3]["start_time"] == utc(2024, 5, 1, 0, 30)
    assert parsed.rows_in == 6
    assert parsed.quarantine.select(["line", "reason", "field"]).to_pylist() == [
        {"line": 5, "reason": "bad_disposition", "field": "disposition"},
        {"line": 7, "reason": "bad_time", "field": "answer_time"},
    ]
    assert parsed.quarantine.column("raw")[0].as_py().startswith("s4;15551230000;")


def test_a_wall_clock_time_in_the_dst_gap_is_a_bad_time_not_a_guess():
    row = "s9;1555;442071234567;2024-03-31 02:30:00;;2024-03-31 03:01:00;Busy;c;b;;\n"
    parsed = parse(SANSAY.splitlines(keepends=True)[0] + row, SANSAY_MAPPING)
    [bad] = parsed.quarantine.to_pylist()
    assert (bad["line"], bad["reason"], bad["field"]) == (2, "bad_time", "start_time")
    assert "does not exist in Europe/Paris" in bad["detail"]


def test_a_cisco_like_export_with_epochs_a_duration_and_no_call_id():
    parsed = parse(CISCO, CISCO_MAPPING)
    cdrs = parsed.cdrs.to_pylist()
    assert [(c["line"], c["call_id"], c["billsec"], c["disposition"]) for c in cdrs] == [
        (2, "15551230000;442071234567;1714564800", 65, "ANSWERED"),
        (3, "15551230000;442071234567;1714564900", 0, "BUSY"),
    ]
    assert cdrs[0]["answer_time"] == utc(2024, 5, 1, 12, 0, 7)
    assert cdrs[1]["answer_time"] is None  # epoch 0: never connected
    assert parsed.quarantine.select(["line", "reason", "field"]).to_pylist() == [
        {"line": 4, "reason": "duplicate_call_id", "field": "call_id"},
        {"line": 5, "reason": "bad_duration", "field": "billsec"},
    ]


def test_a_partners_spreadsheet_start_is_the_answer_and_seconds_round_up():
    parsed = parse(SPREADSHEET, SPREADSHEET_MAPPING)
    cdrs = parsed.cdrs.to_pylist()
    assert [(c["line"], c["callee"], c["billsec"], c["disposition"]) for c in cdrs] == [
        (2, "442071234567", 65, "ANSWERED"),  # 64.512 s: a started second is billed
        (3, "442071234568", 0, "NO_ANSWER"),
        (4, "442071234569", 12, "ANSWERED"),
    ]
    first = cdrs[0]
    assert first["answer_time"] == first["start_time"] == utc(2024, 5, 1, 12, 0, 7)
    assert first["end_time"] == utc(2024, 5, 1, 12, 1, 11, 512000)
    assert (cdrs[1]["answer_time"], cdrs[1]["end_time"]) == (None, utc(2024, 5, 1, 12, 0))
    assert parsed.quarantine.select(["line", "reason", "field"]).to_pylist() == [
        {"line": 5, "reason": "missing_field", "field": "callee"}
    ]


def test_read_amounts_gives_each_lines_price_rounded_half_up_to_6_places():
    mapping = ColumnMapping.from_dict(SPREADSHEET_MAPPING)
    priced = SPREADSHEET.replace(",n/a\n", ",\n")  # an empty price: a call without one
    amounts = read_amounts(priced.encode(), mapping)
    assert amounts.schema == pa.schema([("line", pa.int64()), ("amount", pa.decimal128(18, 6))])
    assert amounts.to_pylist() == [
        {"line": 2, "amount": Decimal("0.014300")},
        {"line": 3, "amount": Decimal("0.000000")},
        {"line": 4, "amount": Decimal("0.001235")},
        {"line": 5, "amount": None},
    ]
    # A price that is no number is the partner's claim misread: refused, naming line and column.
    with pytest.raises(CdrFileError, match=r"line 5: field Price \(amount\): 'n/a'"):
        read_amounts(SPREADSHEET.encode(), mapping)
    with pytest.raises(MappingError, match=r"columns\.amount: required"):
        read_amounts(CISCO.encode(), ColumnMapping.from_dict(CISCO_MAPPING))


def test_with_answer_and_end_but_no_duration_the_seconds_between_round_up():
    mapping = {"columns": {"callee": "B", "start": "S", "answer": "A", "end": "E"}}
    text = (
        "B,S,A,E\n"
        "442071234567,2024-05-01T12:00:00Z,2024-05-01T12:00:07Z,2024-05-01T12:01:11.2Z\n"
        "442071234567,2024-05-01T12:05:00Z,,2024-05-01T12:05:09Z\n"
    )
    cdrs = parse(text, mapping).cdrs.to_pylist()
    assert [(c["billsec"], c["disposition"]) for c in cdrs] == [(65, "ANSWERED"), (0, "NO_ANSWER")]


def test_the_mapping_round_trips_through_json_and_errors_name_the_member():
    mapping = ColumnMapping.from_dict(SANSAY_MAPPING)
    assert ColumnMapping.from_dict(json.loads(json.dumps(mapping.to_dict()))) == mapping
    assert mapping.to_dict() == SANSAY_MAPPING
    cases = [
        ([], "mapping"),
        ({"columns": {}, "colour": "red"}, "colour"),
        ({"columns": {"callee": "B", "start": ""}}, "columns.start"),
        ({"columns": {"callee": "B", "start": "S", "duration": "D"}, "dispositions": {"x": "Y"}},
         "dispositions.x"),
        ({"columns": {"callee": "B", "start": "S", "answer": "A"}}, "columns.end"),
        ({"columns": {"callee": "B", "start": "S", "duration": "D"}, "delimiter": ""},
         "delimiter"),
    ]  # fmt: skip
    for data, member in cases:
        with pytest.raises(MappingError) as error:
            ColumnMapping.from_dict(data)
        assert error.value.member == member
        assert str(error.value).startswith(f"{member}: ")
    # A Kamailio switch's mapping only renames: it need not be complete.
    assert ColumnMapping.from_dict({"columns": {"caller": "src"}}, complete=False).columns == {
        "caller": "src"
    }


def test_a_header_without_a_mapped_column_fails_the_file_naming_it():
    with pytest.raises(CdrFileError, match=r"header lacks mapped column\(s\) MOS \(mos\)"):
        parse(SANSAY.replace(";MOS\n", "\n", 1), SANSAY_MAPPING)
    with pytest.raises(CdrFileError, match="needs its column mapping"):
        parse_cdr_file(SANSAY.encode(), "mapped")
    with pytest.raises(ValueError, match="takes no column mapping"):
        parse_cdr_file(SANSAY.encode(), "generic", mapping=SANSAY_MAPPING)


def test_sip_codes_map_by_the_formats_table():
    codes = pa.array(["200", "486", "600", "480", "408", "487", "503", "404", "180", "x", ""])
    assert sip_disposition(codes).to_pylist() == [
        "ANSWERED", "BUSY", "BUSY", "NO_ANSWER", "NO_ANSWER", "CANCEL", "FAILED", "FAILED",
        None, None, None,
    ]  # fmt: skip


def test_read_in_parts_it_gives_the_same_rows():
    body = "".join(
        f"15551230000,4420712{i:05d},{1714564800 + i},{1714564805 + i},{1714564865 + i},60,200\n"
        for i in range(3000)
    )
    text = (CISCO.splitlines(keepends=True)[0] + body).encode()
    whole = parse_cdr_file(text, "mapped", mapping=CISCO_MAPPING)
    parts = list(iter_cdr_chunks(text, "mapped", mapping=CISCO_MAPPING, chunk_bytes=20_000))
    assert len(parts) > 3
    assert pa.concat_tables([p.cdrs for p in parts]).equals(whole.cdrs)


def test_offline_rate_reads_a_mapped_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TOLLGATE_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cdrs.csv").write_text(SPREADSHEET)
    (tmp_path / "mapping.json").write_text(json.dumps(SPREADSHEET_MAPPING))
    (tmp_path / "sell.csv").write_text("prefix,destination,rate\n44,UK,0.012\n")
    argv = [
        "rate", str(tmp_path / "cdrs.csv"), "--format", "mapped",
        "--customer-deck", str(tmp_path / "sell.csv"), "--out", str(tmp_path / "r.csv"),
    ]  # fmt: skip
    assert main([*argv, "--mapping", str(tmp_path / "mapping.json")]) == 0
    with (tmp_path / "r.csv").open() as handle:
        rated = list(csv.DictReader(handle))
    # 65 s and 12 s at 0.012 a minute, per second: 0.013000 and 0.002400.
    assert [(r["line"], r["billed_seconds"], r["customer_amount"]) for r in rated] == [
        ("2", "65", "0.013000"),
        ("3", "0", "0.000000"),
        ("4", "12", "0.002400"),
    ]
    assert main(argv) == 2  # no mapping
    (tmp_path / "bad.json").write_text(json.dumps({"columns": {"callee": "Number"}}))
    assert main([*argv, "--mapping", str(tmp_path / "bad.json")]) == 2


def test_a_mapped_column_named_twice_in_the_header_fails_the_file():
    text = "B,S,S\n442071234567,2024-05-01T12:00:00Z,2024-05-01T12:00:01Z\n"
    mapping = {"columns": {"callee": "B", "start": "S", "duration": "B"}}
    with pytest.raises(CdrFileError, match="header names S more than once"):
        parse(text, mapping)


def test_an_answer_derived_from_the_end_and_duration_is_quoted_as_an_iso_time():
    # No answer column: the answer is the end less the duration, here before the start.
    mapping = {"columns": {"callee": "Number", "start": "Start", "end": "End", "duration": "Secs"}}
    text = "Start,End,Number,Secs\n2024-05-01T12:00:00Z,2024-05-01T12:00:30Z,442071234567,100\n"
    [row] = parse(text, mapping).quarantine.to_pylist()
    assert (row["reason"], row["field"]) == ("bad_time", "answer_time")
    assert row["detail"] == "answer_time: '2024-05-01T11:58:50.000000Z' is before start_time"
