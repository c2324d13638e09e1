"""MOS and PDD where a switch writes them: FreeSWITCH's `rtp_audio_in_mos` and its progress
times, in the CSV (a switch's own template) and JSON formats; the lake's `mos` column."""

from __future__ import annotations

import json
from decimal import Decimal

import pyarrow as pa

from functions.ingest.formats import parse_cdr_file
from functions.ingest.validate import parse_mos
from functions.shared.cdr import CDR_SCHEMA, MOS_TYPE
from tests.ingest.test_formats_freeswitch_json import a_leg

TEMPLATE = (
    "uuid", "caller_id_number", "destination_number", "start_stamp", "answer_stamp",
    "end_stamp", "billsec", "hangup_cause", "progressmsec", "progress_mediamsec",
    "rtp_audio_in_mos",
)  # fmt: skip


def _csv_row(uuid: str, progress: str, media: str, mos: str) -> str:
    values = [
        uuid, "15551230000", "442071234567", "2024-05-01 12:00:00", "2024-05-01 12:00:07",
        "2024-05-01 12:01:12", "65", "NORMAL_CLEARING", progress, media, mos,
    ]  # fmt: skip
    return ",".join(f'"{v}"' for v in values)


def test_the_lake_keeps_mos_as_a_two_place_decimal():
    assert CDR_SCHEMA.field("mos").type == MOS_TYPE == pa.decimal128(3, 2)
    assert CDR_SCHEMA.field("mos").nullable


def test_mos_is_rounded_half_up_and_a_bad_one_is_dropped_not_the_call():
    text = pa.array(["4.505", "4.504", "3", " 4.41 ", "", None, "0", "5.01", "x", "1.00"])
    assert parse_mos(text, len(text)).to_pylist() == [
        Decimal("4.51"), Decimal("4.50"), Decimal("3.00"), Decimal("4.41"),
        None, None, None, None, None, Decimal("1.00"),
    ]  # fmt: skip


def test_freeswitch_csv_template_reads_mos_and_the_first_progress_as_pdd():
    rows = [
        _csv_row("a1", "219", "239", "4.41"),  # ringing first: PDD is the 180's
        _csv_row("a2", "0", "1540", "4.5"),  # early media only
        _csv_row("a3", "0", "0", ""),  # answered without progress, no MOS written
        _csv_row("a4", "7", "0", "not-a-score"),
    ]
    parsed = parse_cdr_file(
        ("\n".join(rows) + "\n").encode(), "freeswitch-csv", template=TEMPLATE, source="m.csv"
    )
    assert parsed.quarantine.num_rows == 0
    cdrs = parsed.cdrs.select(["call_id", "pdd_ms", "mos", "billsec"]).to_pylist()
    assert cdrs == [
        {"call_id": "a1", "pdd_ms": 219, "mos": Decimal("4.41"), "billsec": 65},
        {"call_id": "a2", "pdd_ms": 1540, "mos": Decimal("4.50"), "billsec": 65},
        {"call_id": "a3", "pdd_ms": None, "mos": None, "billsec": 65},
        {"call_id": "a4", "pdd_ms": 7, "mos": None, "billsec": 65},
    ]


def test_freeswitch_stock_templates_have_neither():
    row = _csv_row("a1", "219", "239", "4.41").rsplit(",", 3)[0]  # the 8 stock-like fields
    template = TEMPLATE[:8]
    parsed = parse_cdr_file((row + "\n").encode(), "freeswitch-csv", template=template)
    [cdr] = parsed.cdrs.to_pylist()
    assert (cdr["pdd_ms"], cdr["mos"]) == (None, None)


def test_freeswitch_json_reads_mos_and_pdd_from_its_variables():
    with_quality = a_leg()
    with_quality["variables"] |= {
        "rtp_audio_in_mos": "4.12",
        "progressmsec": "120",
        "progress_mediamsec": "1900",
    }
    without = a_leg(uuid="5b0c1d2e-0000-4000-8000-000000000002")
    data = "\n".join(json.dumps(d) for d in (with_quality, without)).encode()
    parsed = parse_cdr_file(data, "freeswitch-json")
    assert parsed.quarantine.num_rows == 0
    assert parsed.cdrs.select(["pdd_ms", "mos"]).to_pylist() == [
        {"pdd_ms": 120, "mos": Decimal("4.12")},
        {"pdd_ms": None, "mos": None},
    ]


def test_generic_csv_takes_an_optional_mos_column():
    header = "call_id,caller,callee,start_time,answer_time,end_time,billsec,disposition,"
    header += "customer,supplier,pdd_ms,mos\n"
    row = "c1,1555,442071234567,2024-05-01T12:00:00Z,2024-05-01T12:00:07Z,"
    row += "2024-05-01T12:01:12Z,65,ANSWERED,C,S,2500,3.996\n"
    [cdr] = parse_cdr_file((header + row).encode(), "generic").cdrs.to_pylist()
    assert (cdr["pdd_ms"], cdr["mos"]) == (2500, Decimal("4.00"))
