"""Real-life files never stop a file (issue 9 §1): damage costs the rows it touches.

Every test here fails on the code before issue 9: one byte that was not UTF-8 refused the whole
file, a callee of any length was rated, a huge JSON number raised a ValueError, a line cut
inside a quote swallowed the CDR after it, and a stray carriage return shifted the line number
of every later row.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json

import pyarrow as pa
import pytest

from functions.cli import main
from functions.ingest.formats import iter_cdr_chunks, parse_cdr_file
from functions.ingest.service import DroppedFile, ingest
from functions.store import accounts, files, lake, queues
from tests.ingest.test_formats_asterisk_csv import ANSWERED as ASTERISK_ANSWERED
from tests.ingest.test_formats_asterisk_csv import UNANSWERED as ASTERISK_UNANSWERED
from tests.ingest.test_formats_freeswitch_csv import EXAMPLE, UNANSWERED
from tests.ingest.test_formats_generic import ANSWERED as GENERIC_ANSWERED
from tests.ingest.test_formats_generic import HEADER
from tests.ingest.test_formats_vos3000 import ANSWERED as VOS_ANSWERED

# A FreeSWITCH caller name as a Latin-1 (Windows-1252) system writes it: é is 0xE9, ü 0xFC.
LATIN1_NAMED = EXAMPLE.replace('"Alice"', '"José Müller"').encode("cp1252")
# 0x81 is a byte Windows-1252 leaves undefined: the line cannot be read in any code page here.
UNDEFINED_NAMED = EXAMPLE.replace('"Alice"', '"Jos?"').encode().replace(b"?", b"\x81")


def fs(data: bytes):
    return parse_cdr_file(data, "freeswitch-csv", source="fs1/Master.csv")


def generic(*rows: str | bytes):
    lines = [HEADER.encode(), *(r if isinstance(r, bytes) else r.encode() for r in rows)]
    return parse_cdr_file(b"\n".join(lines) + b"\n", "generic", source="gen/cdrs.csv")


def reasons(parsed) -> list[tuple[int, str, str]]:
    return [(q["line"], q["reason"], q["field"]) for q in parsed.quarantine.to_pylist()]


def test_a_latin1_caller_name_is_read_as_windows_1252_and_every_call_is_kept():
    parsed = fs(LATIN1_NAMED + b"\n" + UNANSWERED.encode() + b"\n")
    assert (parsed.rows_in, parsed.quarantine.num_rows) == (2, 0)
    assert parsed.cdrs.select(["line", "call_id", "billsec"]).to_pylist() == [
        {"line": 1, "call_id": "3da8bf84-c133-4959-9e24-e72875cb33a1", "billsec": 65},
        {"line": 2, "call_id": "5b0c1d2e-0000-4000-8000-000000000002", "billsec": 0},
    ]


def test_a_windows_1252_row_quarantined_later_keeps_the_bytes_the_file_holds():
    late = LATIN1_NAMED.replace(b'"2024-05-01 12:00:00"', b'"2024-05-01 25:00:00"')
    parsed = fs(late + b"\n")
    [row] = parsed.quarantine.to_pylist()
    assert (row["line"], row["reason"], row["field"]) == (1, "bad_time", "start_time")
    assert row["raw"] == late.decode("utf-8", "backslashreplace")
    assert row["raw"].startswith('"Jos\\xe9 M\\xfcller","15551230000"')


def test_a_row_no_code_page_reads_is_quarantined_as_encoding_and_the_rest_is_kept():
    parsed = fs(UNANSWERED.encode() + b"\n" + UNDEFINED_NAMED + b"\n" + LATIN1_NAMED + b"\n")
    assert parsed.cdrs["line"].to_pylist() == [1, 3]
    [row] = parsed.quarantine.to_pylist()
    assert row == {
        "line": 2,
        "reason": "encoding",
        "field": "",
        "detail": "not UTF-8, and byte 0x81 (at byte 5) is not Windows-1252 either",
        "raw": UNDEFINED_NAMED.decode("utf-8", "backslashreplace"),
    }
    assert row["raw"].startswith('"Jos\\x81"')


def test_a_gzipped_latin1_file_and_one_read_in_parts_give_the_same_rows():
    data = b"".join(
        line.replace(b"3da8bf84", b"%08d" % i) + b"\n"
        for i in range(40)
        for line in (LATIN1_NAMED, UNDEFINED_NAMED)
    )
    whole = fs(data)
    assert (whole.cdrs.num_rows, whole.quarantine.num_rows) == (40, 40)
    assert fs(gzip.compress(data)).cdrs.equals(whole.cdrs)
    parts = list(iter_cdr_chunks(data, "freeswitch-csv", chunk_bytes=2_000))
    assert len(parts) > 2
    assert pa.concat_tables([p.cdrs for p in parts]).equals(whole.cdrs)
    assert pa.concat_tables([p.quarantine for p in parts]).equals(whole.quarantine)


def test_other_formats_read_latin1_rows_and_quarantine_unreadable_ones():
    asterisk = ASTERISK_ANSWERED.replace('""Alice""', '""José""').encode("cp1252")
    parsed = parse_cdr_file(asterisk + b"\n" + ASTERISK_UNANSWERED.encode() + b"\n", "asterisk-csv")
    assert (parsed.cdrs.num_rows, parsed.quarantine.num_rows) == (2, 0)

    records = [
        {**VOS_ANSWERED, "account": "Café Telecom"},
        {**VOS_ANSWERED, "flowNo": 2, "account": "Caf?"},
        {**VOS_ANSWERED, "flowNo": 3},
    ]
    text = "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n"
    data = text.encode("cp1252").replace(b"Caf?", b"Caf\x90")
    parsed = parse_cdr_file(data, "vos3000")
    assert parsed.cdrs.select(["line", "customer"]).to_pylist() == [
        {"line": 1, "customer": "Café Telecom"},
        {"line": 3, "customer": "CUST_A"},
    ]
    [row] = parsed.quarantine.to_pylist()
    assert (row["line"], row["reason"]) == (2, "encoding")
    assert '"account": "Caf\\x90"' in row["raw"]


def test_a_number_of_more_than_32_digits_is_a_bad_number():
    def with_callee(call_id: str, callee: str) -> str:
        return GENERIC_ANSWERED.replace("c-1", call_id).replace("+44 20 7123-4567", callee)

    parsed = generic(
        with_callee("c-32", "4" * 32),
        with_callee("c-33", "4" * 33),
        with_callee("c-plus", "+" + "4" * 32),
        with_callee("c-spaced", "+44 " + "1" * 31),
    )
    assert parsed.cdrs["call_id"].to_pylist() == ["c-32", "c-plus"]
    assert reasons(parsed) == [(3, "bad_number", "callee"), (5, "bad_number", "callee")]
    detail = parsed.quarantine["detail"][0].as_py()
    assert detail == f"callee: {'4' * 33!r} is not a dialable number"


def test_a_callee_of_a_million_digits_is_field_too_long_and_its_raw_text_is_cut():
    huge = GENERIC_ANSWERED.replace("+44 20 7123-4567", "4" * 1_000_000)
    parsed = generic(huge, GENERIC_ANSWERED.replace("c-1", "c-2"))
    assert parsed.cdrs["call_id"].to_pylist() == ["c-2"]
    [row] = parsed.quarantine.to_pylist()
    assert (row["line"], row["reason"], row["field"]) == (2, "field_too_long", "callee")
    assert row["raw"] == huge[:4096]
    assert row["detail"] == (
        "callee: 1,000,000 bytes, over the 4,096 a field may have "
        f"(raw text cut to its first 4,096 of {len(huge):,} bytes)"
    )


def test_a_long_field_the_format_does_not_even_map_is_field_too_long():
    long_name = EXAMPLE.replace('"Alice"', '"' + "A" * 5_000 + '"')
    parsed = fs(f"{long_name}\n{UNANSWERED}\n".encode())
    assert reasons(parsed) == [(1, "field_too_long", "caller_id_name")]
    assert (
        parsed.quarantine["detail"][0]
        .as_py()
        .startswith("caller_id_name: 5,000 bytes, over the 4,096 a field may have (raw text cut")
    )
    assert len(parsed.quarantine["raw"][0].as_py()) == 4096


def test_a_line_too_long_to_parse_is_field_too_long_not_a_refused_file():
    """pyarrow refuses a row straddling its 4 MiB blocks: this file was refused whole."""
    huge = GENERIC_ANSWERED.replace("c-1", "c-2").replace("acct42", "a" * (9 << 20))
    parsed = generic(GENERIC_ANSWERED, huge, GENERIC_ANSWERED.replace("c-1", "c-3"))
    assert parsed.cdrs["line"].to_pylist() == [2, 4]
    assert reasons(parsed) == [(3, "field_too_long", "")]
    assert parsed.quarantine["raw"][0].as_py() == huge[:4096]


def test_json_values_too_long_or_too_big_for_an_int_are_quarantined_not_a_traceback():
    records = [
        {**VOS_ANSWERED, "flowNo": 1, "holdTime": 1},
        {**VOS_ANSWERED, "flowNo": 2, "calleeE164": "4" * 5_000},
        {**VOS_ANSWERED, "flowNo": 3},
    ]
    text = "\n".join(json.dumps(r) for r in records) + "\n"
    text = text.replace('"holdTime": 1,', f'"holdTime": {"9" * 5_000},')  # no int prints it
    parsed = parse_cdr_file(text.encode(), "vos3000", source="vos.json")
    assert parsed.cdrs["line"].to_pylist() == [3]
    assert reasons(parsed) == [(1, "field_too_long", "billsec"), (2, "field_too_long", "callee")]


def test_a_line_cut_inside_a_quote_does_not_swallow_the_next_call():
    cut = ASTERISK_ANSWERED[:60]  # ends inside the quoted clid
    data = f"{cut}\n{ASTERISK_UNANSWERED}\n{ASTERISK_ANSWERED}\n".encode()
    parsed = parse_cdr_file(data, "asterisk-csv")
    assert parsed.rows_in == 3
    assert parsed.cdrs["line"].to_pylist() == [2, 3]
    assert [(q["line"], q["reason"], q["detail"]) for q in parsed.quarantine.to_pylist()] == [
        (1, "malformed", "a quote opened on this line is never closed")
    ]


@pytest.mark.parametrize("ending", ["\n", "\r\n"])
def test_a_stray_carriage_return_costs_its_line_and_later_lines_keep_their_numbers(ending):
    broken = GENERIC_ANSWERED.replace("c-1", "c-2").replace("acct42", "acct\r42")
    rows = [GENERIC_ANSWERED, broken, GENERIC_ANSWERED.replace("c-1", "c-3")]
    data = ending.join([HEADER, *rows, ""]).encode()
    parsed = parse_cdr_file(data, "generic")
    assert parsed.cdrs.select(["line", "call_id"]).to_pylist() == [
        {"line": 2, "call_id": "c-1"},
        {"line": 4, "call_id": "c-3"},
    ]
    assert reasons(parsed) == [(3, "malformed", "")]


TENANT = "acme"
DAY = dt.date(2024, 5, 1)


def test_the_ingest_lambda_keeps_the_valid_calls_of_a_file_with_bad_bytes(aws):
    """The same rules hold in the ingest Lambda: this file was `rejected` whole."""
    assert main(["tenant", "create", TENANT]) == 0
    assert main(["switch", "create", TENANT, "fs1", "--format", "freeswitch-csv"]) == 0
    long_callee = EXAMPLE.replace("442071234567", "4" * 40).replace("3da8bf84", "0000aaaa")
    data = b"\n".join([LATIN1_NAMED, UNDEFINED_NAMED, long_callee.encode(), b""])
    obj = lake.put_cdr(TENANT, "fs1", "Master.csv", data)
    _, etag = lake.get_cdr(TENANT, "fs1", "Master.csv")
    drop = DroppedFile("tollgate-cdr", obj.key, etag, TENANT, "fs1", "Master.csv", DAY)
    outcome = ingest(drop, lake=lake, switches=accounts, files=files, rate_requests=queues)
    assert (outcome.status, outcome.rows, outcome.accepted, outcome.quarantined) == (
        "ingested",
        3,
        1,
        2,
    )
    quarantine = lake.get_table("quarantine", TENANT, DAY, outcome.file_id)
    assert quarantine.select(["file", "line", "reason", "field"]).to_pylist() == [
        {"file": "Master.csv", "line": 2, "reason": "encoding", "field": ""},
        {"file": "Master.csv", "line": 3, "reason": "bad_number", "field": "callee"},
    ]
    cdrs = lake.get_table("normalized", TENANT, DAY, outcome.file_id)
    assert cdrs["line"].to_pylist() == [1]
