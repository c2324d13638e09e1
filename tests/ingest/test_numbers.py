import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.ingest.numbers import NumberingPlan, normalise_number, normalise_numbers

CASES = [
    ("442071234567", "442071234567"),
    ("+44 20 7123-4567", "442071234567"),
    ("0091 98765-43210", "919876543210"),
    ("+0044123", "0044123"),  # only ONE prefix is removed
    ("000441", "0441"),
    ("44abc", None),
    ("+", None),
    ("00", None),
    ("", None),
    ("++44", None),
    ("(212) 555-0100", None),
    ("44\t20", None),
    ("٣٣", None),  # non-ASCII digits are not dialable
    ("4" * 32, "4" * 32),  # the most digits a number may have (issue 9 §1)
    ("+44 " + "1" * 30, "44" + "1" * 30),
    ("4" * 33, None),  # more is a corrupt field, not a number: it was rated before
    ("0044" + "1" * 31, None),
]


@pytest.mark.parametrize(("dialled", "expected"), CASES)
def test_scalar_rule_strips_separators_and_one_international_prefix(dialled, expected):
    assert normalise_number(dialled) == expected


def test_vectorised_rule_matches_the_scalar_rule_and_keeps_nulls():
    dialled = [d for d, _ in CASES] + [None]
    assert normalise_numbers(pa.array(dialled)).to_pylist() == [e for _, e in CASES] + [None]


def test_vectorised_rule_works_on_chunked_columns():
    column = pa.chunked_array([["+447911123456"], ["0033 6-12"]])
    assert normalise_numbers(column).to_pylist() == ["447911123456", "33612"]


@given(st.lists(st.text(alphabet="0123456789+- a", max_size=8), max_size=30))
def test_vectorised_and_scalar_rules_always_agree(dialled):
    assert normalise_numbers(pa.array(dialled, pa.string())).to_pylist() == [
        normalise_number(d) for d in dialled
    ]


def test_the_bare_digit_fast_path_agrees_with_the_rule_on_a_large_mixed_column():
    import numpy as np

    rng = np.random.default_rng(1)
    shapes = ["4477009", "+44 7700", "0044-77", "", None, "44abc", "+", "00", "007", "0", "0012"]
    shapes += ["4" * 32, "4" * 33, "+" + "4" * 33]
    dialled = [rng.choice(np.array(shapes, dtype=object)) for _ in range(5_000)]
    expected = [None if v is None else normalise_number(v) for v in dialled]
    assert normalise_numbers(pa.array(dialled, pa.string())).to_pylist() == expected


@given(
    st.lists(st.one_of(st.none(), st.text(alphabet="0129+- aé٣", max_size=10)), max_size=40),
    st.integers(0, 5),
    st.sampled_from([pa.string(), pa.large_string()]),
    st.sampled_from([None, NumberingPlan(national_prefix="0", country_code="44")]),
)
def test_the_byte_level_rule_agrees_on_slices_nulls_and_wide_offsets(dialled, cut, text_type, plan):
    """The vectorised rule drops bytes from the column's own buffers: a sliced column (its
    offsets do not start at 0), nulls, multi-byte characters and 64-bit offsets must give
    what the scalar rule gives, row for row, national numbers included."""
    column = pa.array(["+44 1", "020 7", *dialled], text_type).slice(min(cut, len(dialled)))
    expected = [None if v is None else normalise_number(v, plan) for v in column.to_pylist()]
    got = normalise_numbers(column, plan)
    got.validate(full=True)
    assert got.type == text_type
    assert got.to_pylist() == expected
