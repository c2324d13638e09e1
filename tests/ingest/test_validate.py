from datetime import UTC, datetime

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.ingest.validate import (
    MappedRows,
    blank_to_null,
    cast_or_null,
    empty_quarantine,
    parse_iso_times,
    parse_local_times,
    validate,
)

UTC_US = pa.timestamp("us", tz="UTC")


def mapped(**columns):
    n = len(columns["call_id"])
    base = {
        "line": list(range(1, n + 1)),
        "caller": ["1555"] * n,
        "callee": ["447911123456"] * n,
        "billsec": ["0"] * n,
        "disposition": [""] * n,
        "customer": ["acct42"] * n,
        "supplier": ["VEND_BT"] * n,
        "start_time_text": ["2024-05-01T12:00:00Z"] * n,
        "answer_time_text": [""] * n,
        "end_time_text": ["2024-05-01T12:00:30Z"] * n,
    }
    base.update(columns)
    table = {k: pa.array(v, pa.int64() if k == "line" else pa.string()) for k, v in base.items()}
    for name in ("start_time", "answer_time", "end_time"):
        table[name] = parse_iso_times(table[f"{name}_text"])
    texts = pa.array([f"row {i}" for i in range(1, n + 1)])
    return MappedRows(
        fields=pa.table(table),
        raw=lambda positions: texts.take(pa.array(positions)),
        rejected=empty_quarantine(),
    )


def test_positive_billsec_without_answer_is_bad_duration():
    parsed = validate(mapped(call_id=["a"], billsec=["30"]))
    assert parsed.quarantine.to_pylist() == [
        {
            "line": 1,
            "reason": "bad_duration",
            "field": "billsec",
            "detail": "billsec: '30' seconds billed but the call has no answer_time",
            "raw": "row 1",
        }
    ]


def test_billed_seconds_make_a_call_answered_whatever_the_cause():
    parsed = validate(
        mapped(
            call_id=["a", "b"],
            billsec=["30", "0"],
            disposition=["FAILED", ""],
            answer_time_text=["2024-05-01T12:00:00Z", ""],
        )
    )
    assert parsed.cdrs["disposition"].to_pylist() == ["ANSWERED", "NO_ANSWER"]


def test_first_failing_check_decides_the_reason():
    parsed = validate(mapped(call_id=["a"], callee=["44abc"], billsec=["-1"]))
    assert parsed.quarantine["reason"].to_pylist() == ["bad_number"]


def test_duplicate_of_a_quarantined_first_row_is_still_a_duplicate():
    parsed = validate(mapped(call_id=["a", "a", "b"], callee=["", "4477", "4478"]))
    assert parsed.cdrs["call_id"].to_pylist() == ["b"]
    assert parsed.quarantine["reason"].to_pylist() == ["missing_field", "duplicate_call_id"]


def test_duplicates_are_found_among_ids_of_different_lengths():
    ids = ["x", "yy", "x", "zzz", "yy", "x\x00"]
    parsed = validate(mapped(call_id=ids))
    assert parsed.cdrs["line"].to_pylist() == [1, 2, 4, 6]


def test_cast_or_null_nulls_only_the_bad_values():
    values = pa.array(["1", "x", None, "-4", "2.5"] * 10)
    assert cast_or_null(values, pa.int64()).to_pylist() == [1, None, None, -4, None] * 10


def test_cast_or_null_finds_sparse_bad_values_at_block_edges_of_a_long_column():
    from functions.ingest.validate import _CAST_BLOCK

    n = 3 * _CAST_BLOCK + 5
    values = [str(i) for i in range(n)]
    bad = [0, _CAST_BLOCK - 1, _CAST_BLOCK, 2 * _CAST_BLOCK + 17, n - 1]
    for at in bad:
        values[at] = f"{at}x"
    expected = [None if i in bad else i for i in range(n)]
    assert cast_or_null(pa.array(values), pa.int64()).to_pylist() == expected


def test_a_value_holding_the_error_text_nulls_only_itself():
    """Arrow's error quotes the bad value; one that contains the text after the quote must not
    be read as its own valid prefix (every "5" of the column was nulled once)."""
    values = ["5"] * 9_000 + ["5' as a scalar of type int64x"]
    assert cast_or_null(pa.array(values), pa.int64()).to_pylist() == [5] * 9_000 + [None]


TIME_SHAPES = [
    "2024-05-01T12:00:07Z",
    "2024-05-01T14:00:07+02:00",
    "2024-05-01T12:00:07.5Z",
    "2024-13-01T12:00:07Z",
    "2024-05-01 12:00:07",
    "x' as a scalar of type timestamp[us, tz=UTC]",
    "it's",
    "",
]


@settings(max_examples=25, deadline=None)
@given(
    picks=st.lists(st.integers(0, len(TIME_SHAPES) - 1), min_size=1, max_size=3 * 4096),
    named=st.booleans(),
)
def test_cast_or_null_accepts_exactly_what_a_per_value_cast_accepts(picks, named):
    """Whether Arrow's error names the bad value (fast path) or not (bisection)."""
    from functions.ingest import validate as module

    values = [TIME_SHAPES[i] for i in picks]
    expected = [module._cast_one(pa.scalar(v), UTC_US) for v in values]
    with pytest.MonkeyPatch.context() as patch:
        if not named:
            patch.setattr(module, "_unparsed_value", lambda message, target: None)
        assert cast_or_null(pa.array(values), UTC_US).to_pylist() == expected


def test_iso_times_need_a_zone_and_accept_fractions():
    text = pa.array(["2024-05-01T14:00:07+02:00", "2024-05-01T12:00:07.250Z", "2024-05-01 12:00"])
    assert parse_iso_times(text).to_pylist() == [
        datetime(2024, 5, 1, 12, 0, 7, tzinfo=UTC),
        datetime(2024, 5, 1, 12, 0, 7, 250000, tzinfo=UTC),
        None,
    ]


def test_local_times_in_spring_gap_are_reported_not_guessed():
    times = parse_local_times(
        {
            "start_time": pa.array(["2024-03-31 01:30:00", "2024-03-31 00:30:00"]),
            "answer_time": pa.array(["", ""]),
            "end_time": pa.array(["2024-03-31 03:00:00", "2024-03-31 00:31:00"]),
        },
        "Europe/London",
    )
    instants, problems = times["start_time"]
    assert instants.to_pylist() == [None, datetime(2024, 3, 31, 0, 30, tzinfo=UTC)]
    assert problems.to_pylist() == ["does not exist in Europe/London (clocks went forward)", None]
    assert times["end_time"][0].to_pylist() == [
        datetime(2024, 3, 31, 2, 0, tzinfo=UTC),  # 03:00 BST
        datetime(2024, 3, 31, 0, 31, tzinfo=UTC),  # 00:31 GMT
    ]


def test_whole_numbers_fast_path_accepts_exactly_what_the_exact_cast_accepts():
    import numpy as np

    from functions.ingest.validate import blank_to_null, cast_or_null, parse_whole_numbers

    rng = np.random.default_rng(2)
    shapes = ["12", "-5", "+7", "", None, "12s", "99999999999999999999", "0", "007", " 3"]
    text = pa.array([rng.choice(np.array(shapes, dtype=object)) for _ in range(5_000)], pa.string())
    exact = cast_or_null(blank_to_null(text), pa.int64())
    assert parse_whole_numbers(text).to_pylist() == exact.to_pylist()


@given(
    st.lists(st.one_of(st.none(), st.sampled_from(["", "a", "José", "1242"])), max_size=40),
    st.integers(0, 5),
)
def test_blank_to_null_nulls_exactly_the_empty_strings(values, cut):
    """The bitmap-only rewrite gives what if_else gives, on whole arrays, slices and chunks."""
    whole = pa.array(values, pa.string())
    expected = [None if v == "" else v for v in values]
    for text, want in (
        (whole, expected),
        (whole.slice(cut), expected[cut:]),
        (pa.chunked_array([whole, whole.slice(cut)]), expected + expected[cut:]),
    ):
        nulled = blank_to_null(text)
        assert nulled.to_pylist() == want
        assert nulled.null_count == want.count(None)
        (nulled if isinstance(nulled, pa.Array) else nulled.combine_chunks()).validate(full=True)


def test_columns_worked_on_in_turn_give_the_same_part_as_columns_in_parallel():
    """`tollgate rate` parses a part's columns on its parse thread alone (its other stages
    keep the cores busy): the same rows, reasons and details as with the column threads."""
    import threading

    from functions.ingest.formats import parse_cdr_file
    from functions.ingest.samples import generate_generic_csv
    from functions.ingest.validate import column_pool, columns_one_at_a_time

    data = generate_generic_csv(3_000, seed=5, bad_fraction=0.05, duplicate_fraction=0.02)
    in_parallel = parse_cdr_file(data, "generic")
    with columns_one_at_a_time():
        in_turn = parse_cdr_file(data, "generic")
        with column_pool() as pool:
            assert pool.submit(threading.get_ident).result() == threading.get_ident()
            with pytest.raises(ZeroDivisionError):  # a job's error reaches whoever waits
                pool.submit(lambda: 1 // 0).result()

            def interrupted():
                raise KeyboardInterrupt

            with pytest.raises(KeyboardInterrupt):  # Ctrl-C stops the parse there and then
                pool.submit(interrupted)
    with column_pool() as pool:  # outside the block: threads again
        assert pool.submit(threading.get_ident).result() != threading.get_ident()
    assert in_turn.cdrs.equals(in_parallel.cdrs)
    assert in_turn.quarantine.equals(in_parallel.quarantine)
    assert in_parallel.quarantine.num_rows > 100
