"""Fuzzed CDR files of every format: no traceback, and every row is accounted for.

Damage that real switches and transfers cause (cut lines, stray bytes, a Latin-1 caller name,
bytes no code page defines, fields of megabytes, a column too many or too few) must cost at
most the rows it touches: the file is never refused for it, every row ends rated, unrated or
quarantined (naming its line and a known reason), and reading in parts changes nothing.
Arbitrary bytes may make a file unreadable as a whole, but only as a CdrFileError naming it.

On the code before issue 9 §1 a single non-UTF-8 byte refused the whole file.
"""

from __future__ import annotations

import gzip
import json
import re

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.ingest import samples
from functions.ingest.formats import CdrFileError, iter_cdr_chunks, parse_cdr_file
from functions.rate.deck import parse_deck
from functions.rate.rated import rate_cdrs, summarise
from functions.rate.rating import DeckIndex
from functions.shared.cdr import QUARANTINE_REASONS
from tests.ingest.test_formats_freeswitch_json import a_leg

SOURCE = "sw1/cdrs.dat"
DECK = DeckIndex.build(
    parse_deck(b"prefix,destination,rate\n44,UK,0.012\n1,US,0.004\n33,France,0.02\n").table,
    "USD",
)
REASONS = {*QUARANTINE_REASONS, "encoding", "field_too_long"}


def _fs_json_lines(n: int) -> bytes:
    docs = [a_leg(uuid=f"3da8bf84-c133-4959-9e24-{i:012d}") for i in range(n)]
    return "".join(json.dumps(doc) + "\n" for doc in docs).encode()


def _kamailio_cdrs(n: int) -> bytes:
    rows = [
        f"{i},2024-05-01 12:{i:02d}:07,2024-05-01 12:{i:02d}:50,{43 + i / 1000:.3f},"
        f"1555123{i:04d},4420712{i:05d},c{i}@10.0.0.5,200,198.51.100.7\n"
        for i in range(n)
    ]
    return ("id,start_time,end_time,duration,src_user,dst_user,callid,sip_code,src_ip\n"
            + "".join(rows)).encode()  # fmt: skip


def _kamailio_acc(n: int) -> bytes:
    rows = []
    for i in range(n):
        call = f"c{i}@10.0.0.5,200,OK"
        extras = f"1555123{i:04d},4420712{i:05d},198.51.100.7"
        rows.append(f"{2 * i},INVITE,a{i},b{i},{call},2024-05-01 12:{i:02d}:07,{extras}\n")
        rows.append(f"{2 * i + 1},BYE,b{i},a{i},{call},2024-05-01 12:{i:02d}:50,{extras}\n")
    header = "id,method,from_tag,to_tag,callid,sip_code,sip_reason,time,src_user,dst_user,src_ip"
    return (header + "\n" + "".join(rows)).encode()


FILES = {
    "generic": samples.generate_generic_csv(10, seed=3),
    "freeswitch-csv": samples.generate_freeswitch_csv(10, seed=4),
    "asterisk-csv": samples.generate_asterisk_csv(10, seed=5),
    "freeswitch-json": _fs_json_lines(10),
    "vos3000": samples.generate_vos3000_json(10, seed=6, layout="lines"),
    # The generic sample read through a column mapping, its header names as the columns.
    "mapped": samples.generate_generic_csv(10, seed=7),
    "kamailio-acc-cdrs": _kamailio_cdrs(10),
    "kamailio-acc": _kamailio_acc(10),
}
# The column mapping a format's files are read with.
MAPPINGS = {
    "mapped": {
        "columns": {
            "call_id": "call_id",
            "caller": "caller",
            "callee": "callee",
            "start": "start_time",
            "answer": "answer_time",
            "end": "end_time",
            "duration": "billsec",
            "disposition": "disposition",
            "customer": "customer",
            "supplier": "supplier",
        }
    },
}
# Formats with one CDR per line (kamailio-acc pairs two lines into a call).
CSV_FORMATS = ("generic", "freeswitch-csv", "asterisk-csv", "mapped", "kamailio-acc-cdrs")
HEADERS = {"generic": 1, "mapped": 1, "kamailio-acc-cdrs": 1, "kamailio-acc": 1}

LATIN1 = "José Müller".encode("latin-1")  # decodes as Windows-1252
UNDEFINED = (b"\x81", b"\x8d", b"\x8f", b"\x90", b"\x9d")  # in no Windows-1252 table
HUGE = (4_097, 40_000, 300_000)


@st.composite
def damaged_lines(draw, fmt: str) -> bytes:
    """The format's sample file with a few lines damaged, never its header."""
    lines = FILES[fmt].rstrip(b"\n").split(b"\n")
    first = HEADERS.get(fmt, 0)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(first, len(lines) - 1))
        line = lines[i]
        at = draw(st.integers(0, len(line)))
        kind = draw(
            st.sampled_from(
                [
                    *("cut", "bytes", "latin1", "undefined", "huge"),
                    *("extra", "fewer", "quote", "cr", "copy", "blank"),
                ]
            )
        )
        if kind == "cut":
            lines[i] = line[:at]
        elif kind == "bytes":
            noise = draw(st.binary(min_size=1, max_size=8)).replace(b"\n", b"")
            lines[i] = line[:at] + noise + line[at:]
        elif kind == "latin1":
            lines[i] = line[:at] + LATIN1 + line[at:]
        elif kind == "undefined":
            lines[i] = line[:at] + draw(st.sampled_from(UNDEFINED)) + line[at:]
        elif kind == "huge":
            lines[i] = line[:at] + b"9" * draw(st.sampled_from(HUGE)) + line[at:]
        elif kind == "extra":
            lines[i] = line + b',"x"'
        elif kind == "fewer":
            lines[i] = line.replace(b",", b"", 1)
        elif kind == "quote":
            lines[i] = line[:at] + b'"' + line[at:]
        elif kind == "cr":
            lines[i] = line[:at] + b"\r" + line[at:]
        elif kind == "copy":
            lines.insert(i, line)
        else:
            lines[i] = b""
    ending = draw(st.sampled_from([b"\n", b"\r\n"]))
    data = ending.join(lines) + draw(st.sampled_from([ending, b""]))
    return gzip.compress(data) if draw(st.booleans()) else data


# Whole JSON documents, where damage to the structure would be a broken file: arrays, VOS's
# wrapper object, and pretty-printed FreeSWITCH documents (a record over many lines).
DOCUMENTS = {
    "vos3000": [
        samples.generate_vos3000_json(8, seed=7, layout="array"),
        samples.generate_vos3000_json(8, seed=8, layout="object"),
    ],
    "freeswitch-json": [
        json.dumps([a_leg(uuid=f"u-{i}") for i in range(4)], indent=2).encode(),
        json.dumps(a_leg(), indent=1).encode(),
    ],
}


@st.composite
def damaged_values(draw, fmt: str) -> bytes:
    """A JSON document with a few string values damaged (so that it stays a document)."""
    data = draw(st.sampled_from(DOCUMENTS[fmt]))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.sampled_from([m.end() for m in re.finditer(rb'":\s*"', data)]))
        damage = draw(st.sampled_from([LATIN1, *UNDEFINED, b"9" * 5_000, b"\\u00e9", "€".encode()]))
        data = data[:at] + damage + data[at:]
    return data


@st.composite
def random_bytes(draw, fmt: str) -> bytes:
    """Anything: noise spliced into the sample, or noise alone."""
    noise = draw(st.binary(max_size=300))
    if draw(st.booleans()):
        return noise
    sample = FILES[fmt]
    at = draw(st.integers(0, len(sample)))
    return sample[:at] + noise + sample[at + draw(st.integers(0, 200)) :]


def physical_rows(data: bytes, fmt: str) -> int:
    """Lines with text after the header (blank ones are not rows): a CSV file's rows."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    lines = data.split(b"\n")
    return sum(1 for line in lines[HEADERS.get(fmt, 0) :] if line and not line.isspace())


def accounted(data: bytes, fmt: str, *, may_refuse: bool) -> None:
    try:
        whole = parse_cdr_file(data, fmt, source=SOURCE, mapping=MAPPINGS.get(fmt))
    except CdrFileError as error:
        assert may_refuse, f"file refused: {error}"
        assert SOURCE in str(error)
        return
    parts = list(
        iter_cdr_chunks(data, fmt, source=SOURCE, chunk_bytes=400, mapping=MAPPINGS.get(fmt))
    )
    assert sum(p.rows_in for p in parts) == whole.rows_in
    # Valid Arrow to the last byte: the CSV reader is told the text is UTF-8 already
    # (`readable_text`), so a byte that slipped through would show here.
    for table in (whole.cdrs, whole.quarantine, *(p.cdrs for p in parts)):
        table.validate(full=True)
    assert pa.concat_tables([p.cdrs for p in parts]).equals(whole.cdrs)
    assert pa.concat_tables([p.quarantine for p in parts]).equals(whole.quarantine)

    text = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    last = text.count(b"\n") + 1
    for row in whole.quarantine.to_pylist():
        assert row["reason"] in REASONS
        assert 1 <= row["line"] <= last
        assert len(row["raw"].encode()) <= 4096 or row["reason"] != "field_too_long"
    if fmt in CSV_FORMATS:
        assert whole.rows_in == physical_rows(data, fmt)
    rated = rate_cdrs(whole.cdrs, DECK, DECK)
    summary = summarise(rated, whole.quarantine, whole.rows_in, 6)
    assert summary.reconciles
    assert summary.rows_in == summary.rated + summary.unrated + summary.quarantined


FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.data())
def test_generic_damaged_lines_cost_only_their_rows(data):
    accounted(data.draw(damaged_lines("generic")), "generic", may_refuse=False)


@FUZZ
@given(st.data())
def test_freeswitch_csv_damaged_lines_cost_only_their_rows(data):
    accounted(data.draw(damaged_lines("freeswitch-csv")), "freeswitch-csv", may_refuse=False)


@FUZZ
@given(st.data())
def test_asterisk_csv_damaged_lines_cost_only_their_rows(data):
    accounted(data.draw(damaged_lines("asterisk-csv")), "asterisk-csv", may_refuse=False)


@FUZZ
@given(st.data())
def test_freeswitch_json_lines_damaged_lines_cost_only_their_rows(data):
    accounted(data.draw(damaged_lines("freeswitch-json")), "freeswitch-json", may_refuse=False)


@FUZZ
@given(st.data())
def test_vos3000_json_lines_damaged_lines_cost_only_their_rows(data):
    accounted(data.draw(damaged_lines("vos3000")), "vos3000", may_refuse=False)


@FUZZ
@given(st.data())
def test_mapped_damaged_lines_cost_only_their_rows(data):
    accounted(data.draw(damaged_lines("mapped")), "mapped", may_refuse=False)


@FUZZ
@given(st.data())
def test_kamailio_acc_cdrs_damaged_lines_cost_only_their_rows(data):
    accounted(data.draw(damaged_lines("kamailio-acc-cdrs")), "kamailio-acc-cdrs", may_refuse=False)


@FUZZ
@given(st.data())
def test_kamailio_acc_damaged_lines_cost_only_their_calls(data):
    accounted(data.draw(damaged_lines("kamailio-acc")), "kamailio-acc", may_refuse=False)


@settings(max_examples=30, deadline=None)
@given(fmt=st.sampled_from(sorted(DOCUMENTS)), data=st.data())
def test_json_documents_with_damaged_values_cost_only_their_records(fmt, data):
    accounted(data.draw(damaged_values(fmt)), fmt, may_refuse=False)


@settings(max_examples=40, deadline=None)
@given(fmt=st.sampled_from(sorted(FILES)), data=st.data())
def test_arbitrary_bytes_are_accounted_for_or_refused_by_name(fmt, data):
    accounted(data.draw(random_bytes(fmt)), fmt, may_refuse=True)
