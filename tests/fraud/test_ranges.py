"""The IRSF ranges (issue 12): the seed from public lists, operator edits, longest-prefix match.

New in issue 12: functions.fraud.ranges did not exist. The seed is checked against the lists as
published (ccnq3 six_minutes alert0/alert10, the Cox and Integra default block lists), typed
out again here.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.fraud.ranges import EDITED, KINDS, SEEDED, Range, RangeList, check_edit

ALERT0 = "ccnq3 six_minutes alert0"
ALERT10 = "ccnq3 six_minutes alert10"
COX = "Cox default block list (TransNexus 2014)"
INTEGRA = "Integra default block list (Electric Lightwave)"


def seeded(prefix: str) -> Range:
    return next(entry for entry in SEEDED if entry.prefix == prefix)


# The lists as published, each prefix once per list.
LISTED = {
    "test": "670 1340555 681 246 290 53 535 5321 239",
    "satellite": "870 871 872 873 874 878 87810 881 8813 88213 88216",
    "premium": (
        "1787555 1939555 1264555 1242555 1441555 1284555 1345555 1767555 1809555 1473555 "
        "1876555 1664555 1869555 1758555 1868555 1649555 1671555 1670555 "
        "672 674 675 677 678 682 683 686 688 690 692"
    ),
    # Cox, then Integra; 239 (test), 53 (test) and 688 (premium) are on a stronger list too.
    "high_risk": (
        "220 224 232 236 248 252 960 994 377 371 242 243 253 291 225 218 389 850 221 386 263"
    ),
}


def test_the_seed_has_each_listed_prefix_once_with_its_kind():
    by_kind = {kind: sorted(e.prefix for e in SEEDED if e.kind == kind) for kind in KINDS}
    assert by_kind == {kind: sorted(listed.split()) for kind, listed in LISTED.items()}
    assert len({e.prefix for e in SEEDED}) == len(SEEDED) == 70


def test_a_prefix_on_two_lists_keeps_the_stronger_kind_and_both_sources():
    assert seeded("239") == Range("239", "test", "Sao Tome and Principe", f"{ALERT0}; {COX}")
    assert seeded("53") == Range("53", "test", "Cuba", f"{ALERT0}; {INTEGRA}")
    assert seeded("688") == Range("688", "premium", "Tuvalu", f"{ALERT10}; {INTEGRA}")
    assert seeded("252") == Range("252", "high_risk", "Somalia", COX)
    assert seeded("263") == Range("263", "high_risk", "Zimbabwe", INTEGRA)
    assert seeded("88216") == Range("88216", "satellite", "Thuraya", ALERT0)
    assert seeded("1876555") == Range("1876555", "premium", "Jamaica 555", ALERT10)
    assert seeded("1340555") == Range("1340555", "test", "US Virgin Islands 555", ALERT0)


def test_each_callee_gets_its_longest_range_and_its_kind():
    ranges = RangeList.of()
    callees = pa.chunked_array(
        [
            ["8821612345678", "8821712345678", "18765551234", "18761234567"],
            ["5321234567", "5351234567", "5371234567", "252612345678", None, "447911123456"],
        ]
    )
    index, kind = ranges.match(callees)
    assert index.dtype == np.int32 and kind.dtype == np.int8
    prefixes = [ranges.ranges[i].prefix if i >= 0 else None for i in index]
    assert prefixes == ["88216", None, "1876555", None, "5321", "535", "53", "252", None, None]
    assert [KINDS[k] if k >= 0 else None for k in kind] == [
        "satellite", None, "premium", None, "test", "test", "test", "high_risk", None, None,
    ]  # fmt: skip
    assert (index == -1).tolist() == (kind == -1).tolist()


def test_edits_add_replace_and_remove_by_exact_prefix():
    ranges = RangeList.of(
        [
            {"prefix": "25261", "kind": "test", "label": "Somalia IPRN test range"},
            {"prefix": "252", "kind": "premium", "label": "Somalia"},
            {"prefix": "252", "removed": True},
            {"prefix": "1876555", "kind": "high_risk", "label": "Jamaica 555"},
            {"prefix": "870", "removed": True},
            {"prefix": "4470", "kind": "premium"},
            {"prefix": "999", "removed": True},  # not listed: nothing to remove
        ]
    )
    replaced = Range("1876555", "high_risk", "Jamaica 555", EDITED)
    dropped = {"252", "870"}
    kept = [replaced if e.prefix == "1876555" else e for e in SEEDED if e.prefix not in dropped]
    # A replaced range keeps its place; added ones come last, in the order of the edits.
    assert ranges.ranges == (
        *kept,
        Range("25261", "test", "Somalia IPRN test range", EDITED),
        Range("4470", "premium", "", EDITED),
    )
    assert len(ranges.ranges) == len(SEEDED) == 70
    index, kind = ranges.match(pa.array(["252612345678", "252712345678", "870772123456"]))
    assert index.tolist() == [len(ranges.ranges) - 2, -1, -1]
    assert kind.tolist() == [KINDS.index("test"), -1, -1]
    assert RangeList.of().ranges == SEEDED  # the seed itself is not changed


@pytest.mark.parametrize(
    ("edit", "field", "detail"),
    [
        ({"kind": "test"}, "prefix", "missing"),
        ({"prefix": "", "kind": "test"}, "prefix", "not a string of digits"),
        ({"prefix": "+252", "kind": "test"}, "prefix", "not a string of digits"),
        ({"prefix": 252, "kind": "test"}, "prefix", "not a string of digits"),
        ({"prefix": "٢٥٢", "kind": "test"}, "prefix", "not a string of digits"),  # Arabic digits
        ({"prefix": "1" * 16, "kind": "test"}, "prefix", "16 digits, at most 15"),
        ({"prefix": "252"}, "kind", "missing"),
        ({"prefix": "252", "kind": "irsf"}, "kind", "'irsf' is not one of test, satellite"),
        ({"prefix": "252", "kind": "test", "label": "x" * 81}, "label", "81 characters"),
        ({"prefix": "252", "kind": "test", "label": "a\nb"}, "label", "not one line"),
        ({"prefix": "252", "kind": "test", "label": None}, "label", "not one line"),
        ({"prefix": "252", "removed": False}, "removed", "must be true"),
        ({"prefix": "252", "removed": True, "kind": "test"}, "kind", "takes only the prefix"),
        ({"prefix": "252", "kind": "test", "note": "x"}, "note", "not a field of a range edit"),
    ],
)
def test_an_invalid_edit_names_the_field_at_fault(edit, field, detail):
    with pytest.raises(ValueError, match=f"^{field}: .*{detail}"):
        check_edit(edit)
    with pytest.raises(ValueError, match=f"^edit 2: {field}: "):
        RangeList.of([{"prefix": "4470", "kind": "premium"}, edit])


def test_a_valid_edit_comes_back_in_its_full_form():
    assert check_edit({"prefix": "25261", "kind": "test", "label": "x" * 80}) == {
        "prefix": "25261",
        "kind": "test",
        "label": "x" * 80,
    }
    assert check_edit({"prefix": "4470", "kind": "premium"}) == {
        "prefix": "4470",
        "kind": "premium",
        "label": "",
    }
    assert check_edit({"prefix": "1" * 15, "removed": True}) == {
        "prefix": "1" * 15,
        "removed": True,
    }


def test_a_range_list_refuses_a_prefix_twice():
    with pytest.raises(ValueError, match="prefix 252 is listed twice"):
        RangeList((seeded("252"), Range("252", "test", "", EDITED)))


def reference_match(ranges: RangeList, number: str | None) -> int:
    """The index of the longest range `number` starts with, one range at a time."""
    found = [
        (len(e.prefix), i)
        for i, e in enumerate(ranges.ranges)
        if number and number.startswith(e.prefix)
    ]
    return max(found)[1] if found else -1


PREFIXES = [e.prefix for e in SEEDED]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {"prefix": st.sampled_from(PREFIXES) | st.text("0123456789", min_size=1, max_size=6)},
            optional={"kind": st.sampled_from(KINDS)},
        ).map(lambda e: e if "kind" in e else {**e, "removed": True}),
        max_size=8,
    ),
    st.lists(
        st.none()
        | st.text("0123456789", max_size=14)
        | st.builds(str.__add__, st.sampled_from(PREFIXES), st.text("0123456789", max_size=8)),
        max_size=30,
    ),
)
def test_match_equals_a_per_number_longest_prefix_after_any_edits(edits, numbers):
    ranges = RangeList.of(edits)
    index, kind = ranges.match(pa.array(numbers, pa.string()))
    expected = [reference_match(ranges, n) for n in numbers]
    assert index.tolist() == expected
    assert kind.tolist() == [KINDS.index(ranges.ranges[i].kind) if i >= 0 else -1 for i in expected]
