"""Deck import: every column rule, exactly (rates in 10^-8 units, epoch seconds, line numbers)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from functions.rate.deck import (
    ALWAYS,
    DECK_SCHEMA,
    NEVER,
    DeckRowError,
    InvalidDeckError,
    RateDeck,
    parse_deck,
)
from functions.rate.samples import generate_deck_csv

MAY_1 = 1714521600  # 2024-05-01T00:00:00Z
MAY_8 = MAY_1 + 7 * 86400


def deck(text: str, **options) -> RateDeck:
    return parse_deck(text.encode(), **options)


def rows(text: str, **options) -> list[dict]:
    return deck(text, **options).table.to_pylist()


def errors(text: str, **options) -> list[DeckRowError]:
    with pytest.raises(InvalidDeckError) as caught:
        deck(text, **options)
    return list(caught.value.errors)


def column(text: str, name: str, **options) -> list:
    return [row[name] for row in rows(text, **options)]


# --- canonical columns -----------------------------------------------------------------------


def test_canonical_header_compiles_every_field_exactly():
    text = (
        "prefix,destination,rate,connect_fee,increment,effective_from,effective_to,status\n"
        "447407,UK - Mobile - Vodafone,0.0124,0.015,60/6,2024-05-01,2024-05-08,increase\n"
    )
    assert rows(text) == [
        {
            "prefix": "447407",
            "origin": "",
            "destination": "UK - Mobile - Vodafone",
            "rate_e8": 1_240_000,
            "connect_fee_e8": 1_500_000,
            "increment_first": 60,
            "increment_next": 6,
            "minimum_charge_e8": 0,
            "free_seconds": 0,
            "surcharge_e8": 0,
            "effective_from": MAY_1,
            "effective_to": MAY_8,
            "closed": False,
            "line": 2,
        }
    ]


def test_only_prefix_and_rate_are_required_and_the_rest_default():
    assert rows("Prefix,Rate\n44,0.0065\n") == [
        {
            "prefix": "44",
            "origin": "",
            "destination": "",
            "rate_e8": 650_000,
            "connect_fee_e8": 0,
            "increment_first": 1,
            "increment_next": 1,
            "minimum_charge_e8": 0,
            "free_seconds": 0,
            "surcharge_e8": 0,
            "effective_from": ALWAYS,
            "effective_to": NEVER,
            "closed": False,
            "line": 2,
        }
    ]


def test_compiled_table_has_the_engine_schema_and_is_sorted_by_prefix_then_start():
    text = "prefix,rate,effective_from\n45,1,2024-05-08\n44,1,2024-05-08\n45,2,2024-05-01\n"
    table = deck(text).table
    assert table.schema.equals(DECK_SCHEMA)
    assert [(r["prefix"], r["effective_from"], r["line"]) for r in table.to_pylist()] == [
        ("44", MAY_8, 3),
        ("45", MAY_1, 4),
        ("45", MAY_8, 2),
    ]


def test_missing_prefix_or_rate_column_is_a_header_error():
    found = errors("destination,price_x\nUK,1\n")
    assert [(e.line, e.field, e.message) for e in found] == [
        (1, "header", "no prefix column"),
        (1, "header", "no rate column"),
    ]


def test_empty_deck_is_an_error():
    assert errors("")[0].message == "the deck is empty"


# --- rates and fees --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("0.12345678", 12_345_678),
        ("1", 100_000_000),
        ("0.0065", 650_000),
        (".5", 50_000_000),
        ("12.", 1_200_000_000),
        ("0", 0),
        ("9999999999.99999999", 999_999_999_999_999_999),
    ],
)
def test_rate_is_parsed_exactly_to_units_of_1e_minus_8(text, units):
    assert column(f"prefix,rate\n44,{text}\n", "rate_e8") == [units]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0.123456789", "more than 8 decimal places"),
        ("-0.01", "must not be negative"),
        ("1e-3", "not a plain decimal number"),
        ("0,01", "not a plain decimal number"),
        ("abc", "not a plain decimal number"),
        ("12345678901", "too large"),
    ],
)
def test_invalid_rate_is_rejected_not_rounded(value, message):
    assert errors(f'prefix,rate\n44,"{value}"\n') == [DeckRowError(2, "rate", value, message)]


def test_connect_fee_is_exact_and_invalid_fee_is_reported():
    assert column("code,rate,setup fee\n44,0.01,0.00000001\n", "connect_fee_e8") == [1]
    assert errors("code,rate,connect fee\n44,0.01,x\n") == [
        DeckRowError(2, "connect_fee", "x", "not a plain decimal number")
    ]


def test_open_row_without_rate_is_invalid():
    assert errors("prefix,rate\n44,\n") == [DeckRowError(2, "rate", "", "rate is required")]


# --- header aliases --------------------------------------------------------------------------


def test_carrier_deck_with_country_description_and_rate_usd_per_min_header():
    # The example deck of formats.md §6.
    text = (
        "Country,Description,Code,Rate (USD/min),Effective Date,Billing Increment,Change\n"
        "United Kingdom,United Kingdom - Fixed,44,0.0065,2024-05-01,1/1,Unchanged\n"
        "United Kingdom,United Kingdom - Mobile - Vodafone,447407,0.0124,2024-05-08,1/1,Increase\n"
        "Mexico,Mexico - Mobile,521,0.0089,2024-05-01,60/60,Decrease\n"
        "Cuba,Cuba - Fixed,53,0.6200,2024-05-08,60/6,Closed\n"
    )
    fields = ("prefix", "destination", "rate_e8", "increment_first", "increment_next")
    fields += ("effective_from", "closed", "line")
    got = [tuple(r[f] for f in fields) for r in rows(text)]
    assert got == [
        ("44", "United Kingdom - Fixed", 650_000, 1, 1, MAY_1, False, 2),
        ("447407", "United Kingdom - Mobile - Vodafone", 1_240_000, 1, 1, MAY_8, False, 3),
        ("521", "Mexico - Mobile", 890_000, 60, 60, MAY_1, False, 4),
        ("53", "Cuba - Fixed", 62_000_000, 60, 6, MAY_8, True, 5),
    ]


@pytest.mark.parametrize(
    "header",
    [
        "Code,Description,Price,Setup Fee,Billing Increment,Effective Date,End Date,Status",
        "Dial Code,Destination,Rate (USD/min),Connect Fee,Increment,Effective Date,End Date,Change",
        "PREFIX,Country,rate_per_minute,connection_fee,increment,valid from,valid to,action",
        " Prefix , Description , Rate [USD] , SF , Billing , Effective , End , Flag ",
    ],
)
def test_common_header_aliases_map_to_the_canonical_fields(header):
    text = f"{header}\n44,UK,0.01,0.02,60/6,2024-05-01,2024-05-08,new\n"
    assert rows(text)[0] == {
        "prefix": "44",
        "origin": "",
        "destination": "UK",
        "rate_e8": 1_000_000,
        "connect_fee_e8": 2_000_000,
        "increment_first": 60,
        "increment_next": 6,
        "minimum_charge_e8": 0,
        "free_seconds": 0,
        "surcharge_e8": 0,
        "effective_from": MAY_1,
        "effective_to": MAY_8,
        "closed": False,
        "line": 2,
    }


def test_description_wins_over_country_whatever_the_column_order():
    text = "Description,Code,Country,Rate\nUK - Mobile,447,United Kingdom,0.01\n"
    assert column(text, "destination") == ["UK - Mobile"]


def test_country_is_the_destination_when_nothing_more_specific_exists():
    assert column("Country,Code,Rate\nUnited Kingdom,44,0.01\n", "destination") == [
        "United Kingdom"
    ]


def test_two_columns_with_the_same_alias_are_ambiguous():
    found = errors("Code,Code,Rate\n44,45,0.01\n")
    assert [(e.line, e.field, e.value) for e in found] == [(1, "header", "Code")]


# --- several codes in one cell ---------------------------------------------------------------


def test_codes_separated_by_comma_and_semicolon_become_one_row_each():
    text = 'Code,Description,Rate\n"447407, 447408;447409 ; 447410",UK - Vodafone,0.0124\n'
    table = rows(text)
    assert [r["prefix"] for r in table] == ["447407", "447408", "447409", "447410"]
    assert {(r["destination"], r["rate_e8"], r["line"]) for r in table} == {
        ("UK - Vodafone", 1_240_000, 2)
    }


def test_plus_double_zero_and_spaces_are_stripped_from_codes():
    text = 'Code,Rate\n"+44 7407",0.01\n0049,0.01\n"1 201; +1 202,",0.01\n'
    assert column(text, "prefix") == ["1201", "1202", "447407", "49"]


@pytest.mark.parametrize(
    ("cell", "value", "message"),
    [
        ("44x", "44x", "prefix must be digits (E.164)"),
        ("44-45", "44-45", "prefix must be digits (E.164)"),
        ('"44,4a"', "4a", "prefix must be digits (E.164)"),
        ("", "", "prefix is empty"),
        ("+", "+", "prefix must be digits (E.164)"),
    ],
)
def test_bad_prefixes_are_reported_with_the_offending_code(cell, value, message):
    assert errors(f"Code,Rate\n{cell},0.01\n") == [DeckRowError(2, "prefix", value, message)]


# --- increments ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "cells", "expected"),
    [
        ("Increment", "60/6", (60, 6)),
        ("Increment", "30 / 6", (30, 6)),
        ("Increment", "6", (6, 6)),
        ("Increment", "", (1, 1)),
        ("Min,Interval", "60,6", (60, 6)),
        ("Minimum,Int", "30,6", (30, 6)),
        ("Interval", "6", (6, 6)),
        ("Min", "60", (60, 1)),
        ("Duration (initial),Increment", "60,6", (60, 6)),  # US jurisdictional decks
        ("Min/Int", "30/6", (30, 6)),
        ("Billing Increment,Min,Interval", "1/1,60,6", (60, 6)),  # columns override A/B
        ("Min,Interval", ",", (1, 1)),
    ],
)
def test_increment_from_a_b_cell_or_separate_min_and_interval_columns(header, cells, expected):
    text = f"Code,Rate,{header}\n44,0.01,{cells}\n"
    got = rows(text)[0]
    assert (got["increment_first"], got["increment_next"]) == expected


@pytest.mark.parametrize(
    ("header", "cell", "field", "message"),
    [
        ("Increment", "0/6", "increment", "increment parts must be positive"),
        ("Increment", "60/0", "increment", "increment parts must be positive"),
        ("Increment", "1.5/1", "increment", "increment must be A/B seconds"),
        ("Increment", "-1/1", "increment", "increment must be A/B seconds"),
        ("Increment", "per second", "increment", "increment must be A/B seconds"),
        ("Min", "0", "min", "min must be positive seconds"),
        ("Interval", "x", "interval", "interval must be positive seconds"),
    ],
)
def test_invalid_increments_are_reported(header, cell, field, message):
    assert errors(f"Code,Rate,{header}\n44,0.01,{cell}\n") == [
        DeckRowError(2, field, cell, message)
    ]


# --- effective dates -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "epoch"),
    [
        ("2024-05-01", MAY_1),
        ("2024-05-01T10:30:15Z", MAY_1 + 37815),
        ("2024-05-01T10:30:15", MAY_1 + 37815),  # naive = UTC
        ("2024-05-01 10:30", MAY_1 + 37800),
        ("2024-05-01T10:30:15+02:00", MAY_1 + 37815 - 7200),
        ("2024-05-01T00:00:00-0530", MAY_1 + 19800),
        ("2024-05-01T10:30:15.000Z", MAY_1 + 37815),  # a zero fraction is still whole
        ("1969-12-31", -86400),
    ],
)
def test_effective_from_accepts_iso_dates_and_datetimes_as_utc_epoch_seconds(cell, epoch):
    assert column(f"Code,Rate,Effective Date\n44,0.01,{cell}\n", "effective_from") == [epoch]


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("2024-05-01T10:30:15.5Z", "effective times are whole seconds"),
        ("2024-02-30", "no such calendar date"),
        ("01/05/2024", "not an ISO date (YYYY-MM-DD) or datetime"),
        ("2024-5-1", "not an ISO date (YYYY-MM-DD) or datetime"),
        ("2024-05-01T24:00:00", "not an ISO date (YYYY-MM-DD) or datetime"),
        ("tomorrow", "not an ISO date (YYYY-MM-DD) or datetime"),
    ],
)
def test_invalid_effective_dates_are_reported(cell, message):
    assert errors(f"Code,Rate,Effective Date\n44,0.01,{cell}\n") == [
        DeckRowError(2, "effective_from", cell, message)
    ]


def test_effective_to_is_stored_exclusive_and_must_follow_effective_from():
    ok = "Code,Rate,Effective Date,End Date\n44,0.01,2024-05-01,2024-05-08\n"
    assert column(ok, "effective_to") == [MAY_8]
    only_end = "Code,Rate,End Date\n44,0.01,2024-05-08\n"
    assert column(only_end, "effective_from") == [ALWAYS]
    bad = (
        "Code,Rate,Effective Date,End Date\n"
        "44,0.01,2024-05-08,2024-05-08\n"
        "45,0.01,2024-05-08,2024-05-01\n"
    )
    message = "effective_to must be later than effective_from"
    assert errors(bad) == [
        DeckRowError(2, "effective_to", "2024-05-08", message),
        DeckRowError(3, "effective_to", "2024-05-01", message),
    ]


# --- status ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["Closed", "deleted", "BLOCKED", "Removed", " closed "])
def test_closing_statuses_close_the_code_from_its_effective_date_even_without_rate(status):
    text = f"Code,Rate,Effective Date,Status\n53,,2024-05-08,{status}\n"
    assert [(r["closed"], r["rate_e8"], r["effective_from"]) for r in rows(text)] == [
        (True, 0, MAY_8)
    ]


def test_closed_row_with_a_rate_keeps_it():
    assert column("Code,Rate,Status\n53,0.62,closed\n", "rate_e8") == [62_000_000]


@pytest.mark.parametrize(
    "status", ["Increase", "decrease", "New", "Unchanged", "Current", "", "INCREASED"]
)
def test_informational_statuses_leave_the_code_open(status):
    assert column(f"Code,Rate,Change\n44,0.01,{status}\n", "closed") == [False]


def test_unknown_status_is_invalid_rather_than_silently_open():
    assert errors("Code,Rate,Status\n44,0.01,Suspended\n") == [
        DeckRowError(
            2,
            "status",
            "Suspended",
            "unknown status (closed/deleted/blocked/removed close a code)",
        )
    ]


# --- line numbers, duplicates, skipping -----------------------------------------------------


def test_errors_carry_physical_line_numbers_across_blank_lines_and_quoted_newlines():
    text = (
        "Code,Description,Rate\n"  # 1
        "\n"  # 2
        '44,"United Kingdom\n'  # 3
        'Fixed",0.01\n'  # 4
        "45,Denmark,bad\n"  # 5
        ",,\n"  # 6: an empty spreadsheet row, ignored
        "46,Norway,0.01,extra\n"  # 7
        "47,Sweden,0.01\n"  # 8
        "4x,Finland,0.01\n"  # 9
    )
    assert [(e.line, e.field) for e in errors(text)] == [(5, "rate"), (7, "row"), (9, "prefix")]
    kept = rows(text, skip_invalid=True)
    assert [(r["prefix"], r["line"]) for r in kept] == [("44", 3), ("47", 8)]
    assert kept[0]["destination"] == "United Kingdom\nFixed"


def test_crlf_and_bom_and_cp1252_decks_are_read():
    text = "\ufeffCode,Description,Rate\r\n33,Côte d'Azur,0.01\r\n\r\n34,x,bad\r\n"
    with pytest.raises(InvalidDeckError) as caught:
        parse_deck(text.encode("utf-8"))
    assert [(e.line, e.value) for e in caught.value.errors] == [(4, "bad")]
    latin = parse_deck("Code,Description,Rate\n33,Côte,0.01\n".encode("cp1252"))
    assert latin.table.column("destination").to_pylist() == ["Côte"]


def test_duplicate_prefix_and_effective_from_is_reported_against_the_first_line():
    text = (
        "Code,Rate,Effective Date\n"
        "44,0.01,2024-05-01\n"
        "44,0.02,2024-05-08\n"  # another version: fine
        '"45,44",0.03,2024-05-01\n'  # 44 repeats line 2
        "44,0.04,2024-05-01\n"  # and again
    )
    message = "duplicate prefix and effective_from (first on line 2)"
    assert errors(text) == [
        DeckRowError(4, "prefix", "44", message),
        DeckRowError(5, "prefix", "44", message),
    ]


def test_skip_invalid_drops_whole_rows_and_keeps_their_errors():
    text = 'Code,Rate\n44,0.01\n"45,4x",0.02\n46,0.123456789\n47,0.03\n'
    result = deck(text, skip_invalid=True)
    assert result.table.column("prefix").to_pylist() == ["44", "47"]
    assert result.skipped == (
        DeckRowError(3, "prefix", "4x", "prefix must be digits (E.164)"),
        DeckRowError(4, "rate", "0.123456789", "more than 8 decimal places"),
    )


def test_invalid_deck_error_lists_the_first_twenty_then_counts_the_rest():
    body = "".join(f"{n},bad\n" for n in range(100, 125))
    with pytest.raises(InvalidDeckError) as caught:
        parse_deck(("Code,Rate\n" + body).encode(), source="sell.csv")
    message = str(caught.value)
    assert message.startswith("sell.csv: 25 errors:\n  line 2: rate 'bad': not a plain")
    assert "line 21: rate" in message and "line 22: rate" not in message
    assert message.endswith("  and 5 more")
    assert len(caught.value.errors) == 25


# --- currency --------------------------------------------------------------------------------


def test_currency_is_given_on_import_and_defaults_to_usd():
    assert deck("Code,Rate\n44,0.01\n").currency == "USD"
    assert deck("Code,Rate (EUR/min)\n44,0.01\n", currency="eur").currency == "EUR"


def test_header_naming_another_currency_is_an_error():
    assert errors("Code,Rate (EUR/min)\n44,0.01\n") == [
        DeckRowError(1, "header", "Rate (EUR/min)", "deck is in EUR, not USD")
    ]


def test_currency_must_be_an_iso_code():
    assert errors("Code,Rate\n44,0.01\n", currency="dollars")[0].field == "currency"


# --- the sample generator --------------------------------------------------------------------


def test_sample_deck_is_deterministic_and_has_the_requested_distinct_prefixes():
    data = generate_deck_csv(2_000, seed=3)
    assert data == generate_deck_csv(2_000, seed=3)
    assert data != generate_deck_csv(2_000, seed=4)
    table = parse_deck(data).table
    prefixes = table.column("prefix").to_pylist()
    assert len(set(prefixes)) == 2_000
    assert max(map(len, prefixes)) <= 12
    # every country code is its own catch-all route, as in carriers' A-Z decks
    assert {"1", "44", "91", "234", "977"} <= set(prefixes)
    assert table.num_rows > 2_000  # some codes have later versions or closures
    assert any(table.column("closed").to_pylist())
    first, following = table["increment_first"].to_pylist(), table["increment_next"].to_pylist()
    pairs = set(zip(first, following, strict=True))
    assert pairs <= {(1, 1), (60, 60), (60, 6), (30, 6)}


@pytest.mark.parametrize(("rate", "units"), [("0.008", 800_000), ("0.0065", 650_000)])
def test_sample_deck_prices_india_mobile_as_asked(rate, units):
    table = parse_deck(generate_deck_csv(500, seed=1, india_mobile_rate=rate)).table
    india = table.filter(pa.compute.is_in(table["prefix"], pa.array(["917", "918", "919"])))
    assert india.num_rows == 3
    assert set(india["destination"].to_pylist()) == {"India - Mobile"}
    assert set(india["rate_e8"].to_pylist()) == {units}
    # Nothing longer may shadow them in longest-prefix matching.
    longer = [p for p in table["prefix"].to_pylist() if p[:3] in {"917", "918", "919"}]
    assert sorted(longer) == ["917", "918", "919"]


def test_header_only_deck_without_final_newline_is_an_empty_deck():
    table = parse_deck(b"prefix,rate").table
    assert table.num_rows == 0 and table.schema.equals(DECK_SCHEMA)


def test_an_unclosed_quote_is_reported_not_crashed_on():
    found = errors('prefix,rate\n44,"0.01\n45,0.02\n')
    assert [(e.line, e.field) for e in found] == [(2, "rate")]
