"""Destination groups (issue 12): every E.164 country code, the NANP and +7 splits, column-wise.

New in issue 12: functions.fraud.destinations did not exist. The property test checks `codes`
against a per-number longest-prefix search written here, sharing no code with the module.
"""

from __future__ import annotations

import csv

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.fraud.destinations import (
    COUNTRIES,
    UNKNOWN,
    DestinationGroups,
    default_groups,
    read_rows,
)

EXAMPLES = {
    "919812345678": "India",  # mobile
    "447911123456": "United Kingdom",
    "12125551234": "United States",
    "14165551234": "Canada",  # Toronto
    "16045551234": "Canada",  # Vancouver
    "18765551234": "Jamaica",
    "16585551234": "Jamaica",  # 658 overlays 876
    "18095551234": "Dominican Republic",
    "18295551234": "Dominican Republic",
    "17875551234": "Puerto Rico",
    "13405551234": "US Virgin Islands",
    "16715551234": "Guam",
    "252612345678": "Somalia",
    "79161234567": "Russia",
    "77011234567": "Kazakhstan",
    "76212345678": "Kazakhstan",
    "881612345678": "Iridium",
    "881712345678": "Iridium",
    "881812345678": "Globalstar",
    "8821612345678": "Thuraya",
    "8821312345678": "International Networks",
    "883140000000": "International Networks",
    "870772123456": "Satellite (Inmarsat)",
    "262269601234": "Mayotte",
    "262262123456": "Reunion",
    "390669812345": "Vatican City",
    "390612345678": "Italy",
    "59995123456": "Curacao",
    "5997123456": "Caribbean Netherlands",
    "2011234567": "Egypt",
    "998901234567": "Uzbekistan",
    "99999": UNKNOWN,  # 999 is a spare code
    "21012345": UNKNOWN,  # so is 210
    "": UNKNOWN,
}

# The 1- to 3-digit codes ITU-T E.164 assigns to a country or network (zone by zone).
ASSIGNED = (
    "1 7 20 211 212 213 216 218 220 221 222 223 224 225 226 227 228 229 230 231 232 233 234 "
    "235 236 237 238 239 240 241 242 243 244 245 246 247 248 249 250 251 252 253 254 255 256 "
    "257 258 260 261 262 263 264 265 266 267 268 269 27 290 291 297 298 299 30 31 32 33 34 "
    "350 351 352 353 354 355 356 357 358 359 36 370 371 372 373 374 375 376 377 378 379 380 "
    "381 382 383 385 386 387 389 39 40 41 420 421 423 43 44 45 46 47 48 49 500 501 502 503 "
    "504 505 506 507 508 509 51 52 53 54 55 56 57 58 590 591 592 593 594 595 596 597 598 599 "
    "60 61 62 63 64 65 66 670 672 673 674 675 676 677 678 679 680 681 682 683 685 686 687 688 "
    "689 690 691 692 800 808 81 82 84 850 852 853 855 856 86 870 880 881 882 883 886 888 90 "
    "91 92 93 94 95 960 961 962 963 964 965 966 967 968 970 971 972 973 974 975 976 977 979 "
    "98 992 993 994 995 996 998"
)


def group_names(callees):
    groups = default_groups()
    return [groups.names[code] for code in groups.codes(pa.array(callees, pa.string()))]


def test_each_example_number_gets_its_group():
    assert dict(zip(EXAMPLES, group_names(list(EXAMPLES)), strict=True)) == EXAMPLES


def test_codes_are_int32_indexes_and_unknown_has_its_own():
    groups = default_groups()
    callees = pa.chunked_array([["252612345678", None], ["99999", "1"]])
    codes = groups.codes(callees)
    assert codes.dtype == np.int32
    assert groups.names[groups.unknown] == UNKNOWN == groups.names[-1]
    assert groups.names.count(UNKNOWN) == 1
    assert codes.tolist() == [
        groups.names.index("Somalia"),
        groups.unknown,  # a null callee
        groups.unknown,
        groups.names.index("United States"),
    ]
    assert default_groups() is groups  # built once per process


def test_the_csv_rows_are_well_formed_and_unique():
    text = COUNTRIES.read_text()
    assert text.startswith("# ")
    assert "ITU-T E.164" in text.split("prefix,group")[0]  # the header says where it comes from
    rows = read_rows()
    raw = list(csv.reader(line for line in text.splitlines() if not line.startswith("#")))
    assert raw[0] == ["prefix", "group"]
    assert len(raw) - 1 == len(rows) == 315
    for prefix, group in rows:
        assert prefix.isascii() and prefix.isdigit() and 1 <= len(prefix) <= 7, prefix
        assert group and group == group.strip() and group != UNKNOWN, prefix
    assert len(set(rows)) == len(rows)
    prefixes = [prefix for prefix, _ in rows]
    assert len(set(prefixes)) == len(prefixes)  # so no prefix is in two groups


def test_every_assigned_country_code_and_nanp_member_is_covered():
    owner = dict(read_rows())
    assert [code for code in ASSIGNED.split() if code not in owner] == []
    nanp = {
        "Bahamas": "242", "Barbados": "246", "Anguilla": "264", "Antigua and Barbuda": "268",
        "British Virgin Islands": "284", "US Virgin Islands": "340", "Cayman Islands": "345",
        "Bermuda": "441", "Grenada": "473", "Turks and Caicos": "649", "Jamaica": "658 876",
        "Montserrat": "664", "Northern Mariana Islands": "670", "Guam": "671",
        "American Samoa": "684", "Sint Maarten": "721", "Saint Lucia": "758", "Dominica": "767",
        "Saint Vincent and the Grenadines": "784", "Puerto Rico": "787 939",
        "Dominican Republic": "809 829 849", "Trinidad and Tobago": "868",
        "Saint Kitts and Nevis": "869",
    }  # fmt: skip
    for group, areas in nanp.items():
        assert {p for p, g in owner.items() if g == group} == {f"1{a}" for a in areas.split()}
    canada = {p for p, g in owner.items() if g == "Canada"}
    assert len(canada) == 57 and all(len(p) == 4 and p[0] == "1" for p in canada)
    assert {p for p, g in owner.items() if g == "Kazakhstan"} == {"76", "77"}
    assert (owner["1"], owner["7"]) == ("United States", "Russia")


@pytest.mark.parametrize(
    ("rows", "error"),
    [
        ([("1", "United States"), ("1", "Canada")], "prefix 1 is in United States and Canada"),
        ([("1a", "Somewhere")], "prefix '1a' is not 1-15 digits"),
        ([("", "Somewhere")], "prefix '' is not 1-15 digits"),
        ([("1" * 16, "Somewhere")], "is not 1-15 digits"),
        ([("9", UNKNOWN)], "group 'Unknown' is not a group name"),
        ([("9", " Padded")], "group ' Padded' is not a group name"),
    ],
)
def test_a_bad_table_is_refused(rows, error):
    with pytest.raises(ValueError, match=error):
        DestinationGroups(rows)


def test_a_csv_with_another_header_is_refused(tmp_path):
    path = tmp_path / "groups.csv"
    path.write_text("# note\nprefix,country\n1,United States\n")
    with pytest.raises(ValueError, match="header must be prefix,group"):
        read_rows(path)
    path.write_text("prefix,group\n1,United States,extra\n")
    with pytest.raises(ValueError, match="row 2: expected prefix,group"):
        read_rows(path)


ROWS = read_rows()
PREFIXES = [prefix for prefix, _ in ROWS]


def reference_group(number: str) -> str:
    """The group of the longest prefix `number` starts with, one number at a time."""
    owner = dict(ROWS)
    for length in range(len(number), 0, -1):
        if number[:length] in owner:
            return owner[number[:length]]
    return UNKNOWN


DIGITS = st.text("0123456789", max_size=16)
# Numbers that start with a listed prefix, so the long prefixes (1876, 88216, 3906698) are hit.
LISTED = st.builds(lambda p, rest: p + rest, st.sampled_from(PREFIXES), DIGITS)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(DIGITS, LISTED), max_size=40))
def test_codes_match_a_per_number_longest_prefix(numbers):
    expected = [reference_group(n) for n in numbers]
    assert group_names(numbers) == expected
    assert [default_groups().name_of(n) for n in numbers] == expected  # the import-time path
