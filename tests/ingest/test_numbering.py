"""Per-switch number translation before rating: tech prefixes, the national form, `dialled`.

Every test that passes a NumberingPlan fails on the code before issue 8 §4, which had no plan:
a `#123`-prefixed number was quarantined bad_number, and a national number was rated as
dialled (`02071234567` matched no UK code).
"""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.ingest.formats import iter_cdr_chunks, parse_cdr_file
from functions.ingest.numbers import NumberingPlan, normalise_number, normalise_numbers

UK = NumberingPlan(strip=("#123", "9999", "*77", "99"), national_prefix="0", country_code="44")
US = NumberingPlan(international_prefix="011", national_prefix="1", country_code="1")

CASES = [
    (UK, "#12302071234567", "442071234567"),  # tech prefix, then national
    (UK, "9999 020 7123-4567", "442071234567"),  # the longest tech prefix, not "99"
    (UK, "9912345", "12345"),
    (UK, "99990044123", "44123"),  # tech prefix, then 00
    (UK, "*77+33612345678", "33612345678"),  # tech prefix, then +
    (UK, "+0207", "0207"),  # an international prefix: never national as well
    (UK, "00442071234567", "442071234567"),  # 00 is international, not national 0 + 0
    (UK, "0", "0"),  # the trunk prefix alone is no national number
    (UK, "#123", None),  # nothing left to dial
    (UK, "#1234abc", None),
    (UK, "12#123", None),  # a prefix is stripped only where it starts the number
    (US, "011442071234567", "442071234567"),
    (US, "0044207", "0044207"),  # 00 is not this switch's international prefix
    (US, "12125550100", "12125550100"),
    (US, "+12125550100", "12125550100"),
]


@pytest.mark.parametrize(("plan", "dialled", "expected"), CASES)
def test_scalar_rule(plan, dialled, expected):
    assert normalise_number(dialled, plan) == expected


def test_vectorised_rule_matches_the_cases_on_short_and_long_columns():
    for plan in (UK, US):
        cases = [(d, e) for p, d, e in CASES if p is plan]
        for repeat in (1, 300):  # under and over the 1,024-row fast path
            dialled = [d for d, _ in cases] * repeat + [None]
            got = normalise_numbers(pa.array(dialled, pa.string()), plan).to_pylist()
            assert got == [e for _, e in cases] * repeat + [None]


@st.composite
def consistent_plans(draw):
    national = draw(st.sampled_from([None, "0", "1"]))
    return NumberingPlan(
        strip=tuple(draw(st.lists(st.sampled_from(["#1", "#12", "9", "99", "*7"]), unique=True))),
        international_prefix=draw(st.sampled_from(["00", "011", "0011"])),
        national_prefix=national,
        country_code=None if national is None else draw(st.sampled_from(["1", "44", "353"])),
    )


@given(consistent_plans(), st.lists(st.text(alphabet="0129+-#* a", max_size=9), max_size=40))
def test_vectorised_and_scalar_rules_agree_under_any_plan(plan, dialled):
    assert normalise_numbers(pa.array(dialled, pa.string()), plan).to_pylist() == [
        normalise_number(d, plan) for d in dialled
    ]


def test_without_a_plan_numbers_are_normalised_as_before():
    for dialled in ("+44 20 7123-4567", "0044207", "02071234567", "#123447"):
        assert normalise_number(dialled, NumberingPlan()) == normalise_number(dialled)
    assert normalise_number("02071234567") == "02071234567"
    assert normalise_number("#12302071234567") is None


HEADER = (
    "call_id,caller,callee,start_time,answer_time,end_time,billsec,disposition,customer,supplier"
)


def row(call_id: str, callee: str) -> str:
    return (
        f"{call_id},1555,{callee},2024-05-01T12:00:00Z,2024-05-01T12:00:07Z,"
        "2024-05-01T12:01:12Z,65,ANSWERED,acct42,VEND_BT"
    )


def test_a_tech_prefixed_number_is_accepted_and_translated_and_dialled_keeps_what_was_sent():
    """Before: `#12302071234567` was quarantined bad_number; with the switch's plan it is
    the UK number 442071234567, and the lake keeps the text the switch sent."""
    data = "\n".join([HEADER, row("c1", "#12302071234567"), row("c2", "+44 20 7123 4567")])
    data = (data + "\n").encode()
    before = parse_cdr_file(data, "generic")
    assert before.quarantine.select(["line", "reason"]).to_pylist() == [
        {"line": 2, "reason": "bad_number"}
    ]
    parsed = parse_cdr_file(data, "generic", numbering=UK)
    assert parsed.quarantine.num_rows == 0
    assert parsed.cdrs.select(["callee", "dialled"]).to_pylist() == [
        {"callee": "442071234567", "dialled": "#12302071234567"},
        {"callee": "442071234567", "dialled": "+44 20 7123 4567"},
    ]


def test_a_number_nothing_translates_is_still_quarantined_with_what_was_sent():
    data = f"{HEADER}\n{row('c1', '#999')}\n".encode()
    [bad] = parse_cdr_file(data, "generic", numbering=UK).quarantine.to_pylist()
    assert (bad["reason"], bad["detail"]) == (
        "bad_number",
        "callee: '#999' is not a dialable number",
    )


def test_the_plan_applies_to_every_part_of_a_file_read_in_parts():
    lines = [row(f"c{i}", ("#1230" if i % 3 else "0") + f"207123{i:04d}") for i in range(400)]
    data = ("\n".join([HEADER, *lines]) + "\n").encode()
    whole = parse_cdr_file(data, "generic", numbering=UK)
    parts = list(iter_cdr_chunks(data, "generic", numbering=UK, chunk_bytes=6_000))
    assert len(parts) > 2
    assert pa.concat_tables([p.cdrs for p in parts]).equals(whole.cdrs)
    assert whole.quarantine.num_rows == 0
    assert set(pa.concat_tables([p.cdrs for p in parts])["callee"].to_pylist()) == {
        f"44207123{i:04d}" for i in range(400)
    }


@pytest.mark.parametrize(
    ("rules", "field"),
    [
        ({"strip": ("#12 3",)}, "strip"),
        ({"strip": ("9", "9")}, "strip"),
        ({"international_prefix": "+00"}, "international_prefix"),
        ({"national_prefix": "0"}, "national_prefix and country_code"),
        ({"national_prefix": "0", "country_code": "044"}, "country_code"),
        ({"national_prefix": "00", "country_code": "44"}, "national_prefix"),
        ({"national_prefix": "0", "country_code": "4444"}, "country_code"),
    ],
)
def test_a_plan_that_cannot_be_a_rule_is_refused_naming_the_field(rules, field):
    with pytest.raises(ValueError, match=f"^{field}"):
        NumberingPlan(**rules)
