"""Duplicate call ids across parts: exactly the rows and reasons of reading the file whole."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.ingest import formats, validate
from functions.ingest.formats import iter_cdr_chunks, parse_cdr_file

HEADER = (
    "call_id,caller,callee,start_time,answer_time,end_time,billsec,disposition,customer,supplier"
)
GOOD = (
    "{id},1555,447700900123,2024-05-01T10:00:00Z,2024-05-01T10:00:05Z,"
    "2024-05-01T10:01:05Z,60,ANSWERED,c,s"
)
BAD_TIME = "{id},1555,447700900123,not-a-time,,2024-05-01T10:01:05Z,0,NO_ANSWER,c,s"
LONG = "sip-" + "x" * 70  # call ids over 64 bytes


def csv(lines: list[str], ending: str = "\n") -> bytes:
    return (ending.join([HEADER, *lines]) + ending).encode()


def assert_parts_match_whole(data: bytes, chunk_bytes: int, min_parts: int = 2) -> list:
    whole = parse_cdr_file(data, "generic")
    parts = list(iter_cdr_chunks(data, "generic", chunk_bytes=chunk_bytes))
    assert len(parts) >= min_parts
    assert sum(p.rows_in for p in parts) == whole.rows_in
    assert pa.concat_tables([p.cdrs for p in parts]).equals(whole.cdrs)
    quarantine = pa.concat_tables([p.quarantine for p in parts])
    assert quarantine.to_pylist() == whole.quarantine.to_pylist()
    return parts


def duplicate_lines(parts) -> list[int]:
    return [
        row["line"]
        for p in parts
        for row in p.quarantine.to_pylist()
        if row["reason"] == "duplicate_call_id"
    ]


def mixed_file(seed: int, rows: int = 400) -> bytes:
    """Ids of many widths (short, uuid-long, over 64 bytes), repeats of earlier ids (some
    first seen on a quarantined row), and lines the parser drops or rejects: empty, blank
    fields, too few fields, CRLF endings."""
    rng = random.Random(seed)
    seen: list[str] = []
    lines = []
    for i in range(rows):
        roll = rng.random()
        if roll < 0.04:
            lines.append("")
            continue
        if roll < 0.05:
            lines.append(",,,,,,,,,")
            continue
        if roll < 0.06:
            lines.append("too,few,fields")
            continue
        if seen and roll < 0.25:
            call_id = rng.choice(seen)
        else:
            call_id = rng.choice([f"a{i}", f"{i:036d}", f"{LONG}{i}", f"id-{i}-{'z' * (i % 20)}"])
            seen.append(call_id)
        line = (BAD_TIME if rng.random() < 0.1 else GOOD).format(id=call_id)
        lines.append(line + ("\r" if rng.random() < 0.1 else ""))
    return csv(lines)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 3), chunk_bytes=st.integers(1_000, 12_000))
def test_repeats_across_parts_of_ids_of_any_width_match_the_whole_file(seed, chunk_bytes):
    parts = assert_parts_match_whole(mixed_file(seed), chunk_bytes)
    assert duplicate_lines(parts)


def test_repeats_across_parts_are_quarantined_on_exactly_their_lines():
    lines = [BAD_TIME.format(id="q1"), GOOD.format(id=LONG), GOOD.format(id="s1")]
    lines += [GOOD.format(id=f"a{i:04d}") for i in range(300)]
    lines += [
        GOOD.format(id="q1"),  # its first row was quarantined (bad_time): still the first
        GOOD.format(id=LONG),  # over 64 bytes
        GOOD.format(id="s1"),
        GOOD.format(id=LONG + "y"),  # new: shares the long prefix only
        GOOD.format(id="a0005"),
    ]
    data = csv(lines)
    parts = assert_parts_match_whole(data, 3_000, min_parts=4)
    first_repeat = 2 + 3 + 300  # header, three first rows, the a-ids
    assert duplicate_lines(parts) == [first_repeat, first_repeat + 1, first_repeat + 2, 309]
    accepted = pa.concat_tables([p.cdrs for p in parts]).column("call_id").to_pylist()
    assert accepted.count(LONG) == 1 and LONG + "y" in accepted and "q1" not in accepted


def test_a_repeat_is_found_whatever_the_widths_of_the_other_ids_in_its_part():
    # A hash of an id padded to its array's widest id would differ between the parts.
    lines = [GOOD.format(id=f"a{i}") for i in range(100)]
    lines += [GOOD.format(id=f"b{i}") for i in range(100)]
    lines += [GOOD.format(id="x" * 20), GOOD.format(id="a5")]
    parts = assert_parts_match_whole(csv(lines), 8_000)
    assert duplicate_lines(parts) == [len(lines) + 1]


@pytest.fixture(params=[1, 3], ids=["one key", "three keys"])
def colliding_keys(request, monkeypatch):
    """Call id keys that collide (one or three distinct values, never 0), wherever they are
    computed (validation hands its keys on to the check across parts): the hash of each
    group of ids of one width is what collides."""
    real = validate._hash_width
    distinct_keys = np.uint64(request.param)
    monkeypatch.setattr(
        validate, "_hash_width", lambda *args: real(*args) % distinct_keys + np.uint64(1)
    )


def test_call_ids_with_colliding_keys_are_told_apart_by_their_text(colliding_keys):
    for seed in range(3):
        parts = assert_parts_match_whole(mixed_file(seed, rows=300), 2_500)
        assert duplicate_lines(parts)


def test_call_ids_beyond_the_estimate_from_the_first_part_grow_the_table(monkeypatch):
    sizes = []
    reserve = formats._EarlierCallIds._reserve

    def spy(self, target):
        reserve(self, target)
        sizes.append(len(self.table))

    monkeypatch.setattr(formats._EarlierCallIds, "_reserve", spy)
    # Long rows first (few ids a part), then short ones: the first part underestimates.
    lines = [GOOD.format(id=f"w{i}-" + "p" * 3_000) for i in range(20)]
    lines += [GOOD.format(id=f"n{i}") for i in range(30_000)]
    lines += [GOOD.format(id=f"w{i}-" + "p" * 3_000) for i in (3, 7)]
    lines += [GOOD.format(id=f"n{i}") for i in (0, 29_999)]
    parts = assert_parts_match_whole(csv(lines), 60_000)
    assert len(set(sizes)) > 1
    assert len(duplicate_lines(parts)) == 4


@pytest.mark.parametrize("ending", ["\n", "\r\n"])
def test_parts_ending_on_an_empty_line_number_the_next_part_right(ending):
    lines = []
    for i in range(600):
        lines.append(GOOD.format(id=f"a{i}") if i % 50 else "")
    lines.append(GOOD.format(id="a1"))
    data = csv(lines, ending)
    end = ending.encode()
    empty_line_ends = [at for at in range(len(data)) if data.startswith(2 * end, at)]
    start = len(HEADER) + len(end)
    for at in empty_line_ends[1:4]:
        # The first part ends with the empty line whose line ending is at `at + len(end)`.
        parts = assert_parts_match_whole(data, at + len(end) - start)
        assert duplicate_lines(parts) == [len(lines) + 1]


def test_non_ascii_call_ids_of_mixed_widths_read_in_parts_like_whole():
    lines = [GOOD.format(id=f"a{i}") for i in range(100)]
    lines += [GOOD.format(id="é1"), GOOD.format(id="abcd")]
    lines += [GOOD.format(id=f"b{i}") for i in range(100)]
    assert_parts_match_whole(csv(lines), 3_000)


def test_non_ascii_call_ids_repeated_in_a_later_part_are_duplicates():
    lines = [GOOD.format(id="é1"), GOOD.format(id="ünïcode-id")]
    lines += [GOOD.format(id=f"a{i}") for i in range(200)]
    lines += [GOOD.format(id="abcd"), GOOD.format(id="ünïcode-id"), GOOD.format(id="é1")]
    parts = list(iter_cdr_chunks(csv(lines), "generic", chunk_bytes=3_000))
    assert len(parts) > 2
    n = len(lines) + 1
    assert duplicate_lines(parts) == [n - 1, n]
    assert sum(p.cdrs.num_rows for p in parts) == len(lines) - 2


def test_a_line_longer_than_a_mebibyte_is_cut_and_the_duplicate_after_it_keeps_its_text():
    row = GOOD.format(id="a{:06d}")
    rows = [row.format(i) for i in range(14_000)]
    huge = row.format(5).replace(",c,s", "," + "c" * 1_200_000 + ",s")
    lines = [*rows, huge, row.format(7), *(row.format(i) for i in range(20_000, 100_000))]
    # The first part (a quarter chunk) is exactly the 14,000 fixed-width rows; the second
    # starts with the long line (a repeat of a000005, but too long to be read: issue 9 §1),
    # and then repeats a000007.
    chunk_bytes = 4 * len(rows) * (len(rows[0]) + 1) - 4
    parts = assert_parts_match_whole(csv(lines), chunk_bytes)
    assert parts[0].rows_in == len(rows)
    assert duplicate_lines(parts) == [len(rows) + 3]
    long, repeat = parts[1].quarantine.to_pylist()
    assert (long["line"], long["reason"], long["raw"]) == (
        len(rows) + 2,
        "field_too_long",
        huge[:4096],
    )
    assert long["detail"].endswith(f"(raw text cut to its first 4,096 of {len(huge):,} bytes)")
    assert repeat["raw"] == row.format(7)


ROUTED_HEADER = f"{HEADER},egress_trunk"
ROUTED = (
    "{id},1555,447700900123,2024-05-01T10:00:0{second}Z,2024-05-01T10:00:0{second}Z,"
    "2024-05-01T10:01:05Z,60,ANSWERED,c,s,{trunk}"
)
ROUTED_BAD_TIME = "{id},1555,447700900123,not-a-time,,2024-05-01T10:01:05Z,0,NO_ANSWER,c,s,{trunk}"


def routed_file(seed: int, rows: int = 400) -> bytes:
    """Call ids repeated with a different egress trunk (route advance), the same trunk at
    another start (a retry), or exactly again (a resend); some first rows unreadable."""
    rng = random.Random(seed)
    seen: list[str] = []
    lines = []
    for i in range(rows):
        if seen and rng.random() < 0.4:
            call_id = rng.choice(seen)
        else:
            call_id = rng.choice([f"a{i}", f"{LONG}{i}"])
            seen.append(call_id)
        template = ROUTED_BAD_TIME if rng.random() < 0.05 else ROUTED
        fields = {"id": call_id, "second": rng.choice("05"), "trunk": rng.choice(["A", "B", ""])}
        lines.append(template.format(**fields))
    return ("\n".join([ROUTED_HEADER, *lines]) + "\n").encode()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 5), chunk_bytes=st.integers(1_000, 12_000))
def test_repeated_ids_on_other_legs_across_parts_match_the_whole_file(seed, chunk_bytes):
    """Route advance spread over parts: attempts kept, resent attempts quarantined, exactly
    as when the file is read whole (issue 8; before, every repeated id was a duplicate)."""
    data = routed_file(seed)
    parts = assert_parts_match_whole(data, chunk_bytes)
    whole = parse_cdr_file(data, "generic")
    accepted = whole.cdrs.column("call_id").to_pylist()
    assert len(accepted) > len(set(accepted))  # some call ids kept on more than one attempt
    assert duplicate_lines(parts)


def test_attempts_of_ids_with_colliding_keys_are_found_in_whichever_part_had_them(
    colliding_keys,
):
    for seed in range(3):
        parts = assert_parts_match_whole(routed_file(seed, rows=300), 2_500)
        assert duplicate_lines(parts)


def test_the_keys_validation_hands_on_are_the_keys_of_the_call_ids_it_hands_on():
    lines = [GOOD.format(id=f"a{i}") for i in range(50)] + [BAD_TIME.format(id="x" * 70)]
    for body in (lines, [*lines, GOOD.format(id="a3")]):  # distinct ids; one repeated
        part = parse_cdr_file(csv(body), "generic")
        if part.call_id_keys is not None:
            assert np.array_equal(part.call_id_keys, validate.call_id_keys(part.call_ids))
    assert parse_cdr_file(csv(lines), "generic").call_id_keys is not None


def test_keys_handed_on_when_keys_collide_but_ids_do_not_are_still_the_ids_keys(
    colliding_keys,
):
    lines = [GOOD.format(id=f"a{i}") for i in range(50)]
    part = parse_cdr_file(csv(lines), "generic")
    assert part.call_id_keys is not None
    assert part.call_ids.to_pylist() == [f"a{i}" for i in range(50)]
    assert np.array_equal(part.call_id_keys, validate.call_id_keys(part.call_ids))
