"""Reading a file in parts gives exactly the rows, lines and reasons of reading it whole."""

from __future__ import annotations

import gzip

import pyarrow as pa
from hypothesis import example, given, settings
from hypothesis import strategies as st

from functions.ingest import samples
from functions.ingest.formats import iter_cdr_chunks, parse_cdr_file

FILES = {
    "generic": samples.generate_generic_csv(
        600, seed=5, bad_fraction=0.05, duplicate_fraction=0.08
    ),
    "freeswitch-csv": samples.generate_freeswitch_csv(500, seed=6, bad_fraction=0.05),
    "asterisk-csv": samples.generate_asterisk_csv(500, seed=7, columns=16, bad_fraction=0.05),
}


def whole_and_parts(data: bytes, fmt: str, chunk_bytes: int):
    whole = parse_cdr_file(data, fmt)
    parts = list(iter_cdr_chunks(data, fmt, chunk_bytes=chunk_bytes))
    return whole, parts


@settings(max_examples=40, deadline=None)
@given(fmt=st.sampled_from(sorted(FILES)), chunk_bytes=st.integers(1_000, 40_000))
# Parts of a line or two (a 200-byte chunk: ~500 parts, 2.4 s a file) once per format; the
# drawn sizes cover every other cut, at a fraction of the cost.
@example(fmt="generic", chunk_bytes=200)
@example(fmt="freeswitch-csv", chunk_bytes=200)
@example(fmt="asterisk-csv", chunk_bytes=200)
def test_parts_hold_exactly_the_rows_lines_and_reasons_of_the_whole_file(fmt, chunk_bytes):
    whole, parts = whole_and_parts(FILES[fmt], fmt, chunk_bytes)
    assert sum(p.rows_in for p in parts) == whole.rows_in
    assert pa.concat_tables([p.cdrs for p in parts]).equals(whole.cdrs)
    quarantine = pa.concat_tables([p.quarantine for p in parts])
    assert quarantine.to_pylist() == whole.quarantine.to_pylist()


def test_a_call_id_first_seen_on_a_quarantined_row_makes_a_later_part_a_duplicate():
    header = (
        "call_id,caller,callee,start_time,answer_time,end_time,billsec,disposition,"
        "customer,supplier"
    )
    good = (
        "{id},1555,447700900123,2024-05-01T10:00:00Z,2024-05-01T10:00:05Z,"
        "2024-05-01T10:01:05Z,60,ANSWERED,c,s"
    )
    bad = "{id},1555,447700900123,not-a-time,,2024-05-01T10:01:05Z,0,NO_ANSWER,c,s"
    lines = [header, bad.format(id="x1")] + [good.format(id=f"a{i}") for i in range(200)]
    lines.append(good.format(id="x1"))
    data = ("\n".join(lines) + "\n").encode()
    whole, parts = whole_and_parts(data, "generic", 2_000)
    assert len(parts) > 2
    reasons = {row["line"]: row["reason"] for p in parts for row in p.quarantine.to_pylist()}
    assert reasons == {2: "bad_time", len(lines): "duplicate_call_id"}
    assert whole.quarantine.column("reason").to_pylist() == ["bad_time", "duplicate_call_id"]


def test_gzipped_files_are_split_after_decompression():
    data = FILES["generic"]
    parts = list(iter_cdr_chunks(gzip.compress(data), "generic", chunk_bytes=5_000))
    assert len(parts) > 1
    assert sum(p.rows_in for p in parts) == parse_cdr_file(data, "generic").rows_in


def test_json_formats_and_small_files_come_as_one_part():
    vos = samples.generate_vos3000_json(50, seed=1)
    assert len(list(iter_cdr_chunks(vos, "vos3000", chunk_bytes=100))) == 1
    assert len(list(iter_cdr_chunks(FILES["generic"], "generic"))) == 1


@given(chunk=st.integers(64, 10**8), chunks=st.integers(0, 100), extra=st.integers(1, 10**8))
def test_parts_ramp_up_and_down_and_cover_the_file_exactly(chunk, chunks, extra):
    from functions.ingest.formats import _part_size

    total = chunk * chunks + extra % chunk + 1
    sizes, remaining = [], total
    while remaining > 0:
        sizes.append(_part_size(len(sizes), remaining, chunk))
        remaining -= sizes[-1]
    assert sum(sizes) == total
    assert sizes[0] <= chunk // 4 or len(sizes) == 1
    # No part over a chunk and a half, and none (but a lone one) under an eighth of a chunk.
    assert max(sizes) <= chunk + chunk // 2
    assert len(sizes) == 1 or min(sizes) >= chunk // 8
