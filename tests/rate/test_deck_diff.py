"""Deck diff: categories against the OLD rate live at each NEW row's date, and notice warnings."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, date, datetime, timedelta

import pytest

from functions.cli import CliError
from functions.cli import deck as deck_cli
from functions.rate.deck import parse_deck
from functions.rate.deck_diff import (
    DeckCurrencyMismatchError,
    NoticeWarning,
    diff_decks,
)

MAY_1 = 1714521600  # 2024-05-01T00:00:00Z
DAY = 86400

OLD = """Country,Description,Code,Rate (USD/min),Effective Date,Billing Increment,Change
United Kingdom,United Kingdom - Fixed,44,0.0065,2024-04-01,1/1,Current
United Kingdom,United Kingdom - Mobile - Vodafone,447407,0.0110,2024-04-01,1/1,Current
Mexico,Mexico - Mobile,521,0.0095,2024-04-01,60/60,Current
Cuba,Cuba - Fixed,53,0.6200,2024-04-01,60/6,Current
Peru,Peru - Fixed,51,0.0120,2024-04-01,1/1,Current
"""
NEW = """Country,Description,Code,Rate (USD/min),Effective Date,Billing Increment,Change
United Kingdom,United Kingdom - Fixed,44,0.0065,2024-05-01,1/1,Unchanged
United Kingdom,United Kingdom - Mobile - Vodafone,447407,0.0124,2024-05-03,1/1,Increase
Mexico,Mexico - Mobile,521,0.0089,2024-05-01,60/60,Decrease
Cuba,Cuba - Fixed,53,,2024-05-08,60/6,Closed
India,India - Mobile,917;918,0.008,2024-05-01,1/1,New
"""


def parsed(text: str, currency: str = "USD"):
    return parse_deck(text.encode(), source="deck.csv", currency=currency)


def diff(old: str, new: str, notice=date(2024, 5, 1), days=7):
    return diff_decks(parsed(old), parsed(new), notice_date=notice, notice_days=days)


def categories(result) -> dict[str, str]:
    return {
        r["prefix"]: r["category"]
        for r in result.changes.select(["prefix", "category"]).to_pylist()
    }


def test_codes_are_new_increased_decreased_unchanged_or_closed():
    result = diff(OLD, NEW)
    assert categories(result) == {
        "44": "unchanged",
        "447407": "increased",
        "521": "decreased",
        "53": "closed",  # closed-status row
        "51": "closed",  # absent from a full-replace deck
        "917": "new",
        "918": "new",
    }
    assert result.counts == {"new": 2, "increased": 1, "decreased": 1, "unchanged": 1, "closed": 2}


def test_increase_and_closure_inside_the_notice_period_are_warned_with_exact_rates():
    result = diff(OLD, NEW)
    assert result.warnings == (
        # Dropping a code closes it at the notice time: no notice at all.
        # A closed code has no new terms; the old ones are the deck's defaults (0).
        NoticeWarning("51", "Peru - Fixed", "closed", 1_200_000, None, MAY_1, 0, 6, 0, None, 0),
        NoticeWarning(
            "447407",
            "United Kingdom - Mobile - Vodafone",
            "increased",
            1_100_000,
            1_240_000,
            MAY_1 + 2 * DAY,
            2 * DAY,
            3,
            0,
            0,
            0,
            0,
        ),
    )
    # Cuba closes exactly 7 days after notice: enough. The decrease is immediate: allowed.


def test_notice_days_and_notice_date_move_the_warning_threshold():
    assert {w.prefix for w in diff(OLD, NEW, days=8).warnings} == {"51", "447407", "53"}
    assert {w.prefix for w in diff(OLD, NEW, days=0).warnings} == set()
    late = diff(OLD, NEW, notice=datetime(2024, 4, 20, tzinfo=UTC))
    assert {w.prefix for w in late.warnings} == {"51"}
    retro = diff(OLD, NEW, notice=date(2024, 5, 5))
    warned = {w.prefix: w.notice_days for w in retro.warnings}
    assert warned == {"51": 0.0, "447407": -2.0, "53": 3.0}


def test_new_rate_is_compared_with_the_old_version_live_at_its_effective_date():
    old = (
        "Code,Rate,Effective Date,End Date\n"
        "44,0.0100,2024-04-01,\n"
        "44,0.0200,2024-06-01,\n"  # a scheduled rise already in OLD
        "45,0.0100,2024-04-01,2024-05-15\n"  # expires
        "46,0.0100,2024-01-01,\n"
        "46,0.0300,2024-04-01,2024-04-15\n"  # a promotion inside a running rate
    )
    new = (
        "Code,Rate,Effective Date\n"
        "44,0.0150,2024-05-20\n"  # vs 0.01 (live 20 May): increased
        "44,0.0150,2024-06-20\n"  # vs 0.02 (live 20 June): decreased
        "45,0.0100,2024-05-20\n"  # OLD expired on 15 May: new
        "46,0.0100,2024-05-20\n"  # promotion over, 0.01 live again: unchanged
    )
    rows = diff(old, new).changes.to_pylist()
    assert [(r["prefix"], r["category"], r["old_rate_e8"]) for r in rows] == [
        ("44", "increased", 1_000_000),
        ("44", "decreased", 2_000_000),
        ("45", "new", None),
        ("46", "unchanged", 1_000_000),
    ]


def test_undated_new_row_is_compared_at_the_notice_time():
    old = "Code,Rate,Effective Date\n44,0.01,2024-04-01\n44,0.03,2024-06-01\n"
    result = diff(old, "Code,Rate\n44,0.02\n")
    [row] = result.changes.to_pylist()
    assert (row["category"], row["old_rate_e8"], row["effective_at"]) == (
        "increased",
        1_000_000,
        MAY_1,
    )
    assert [w.notice_seconds for w in result.warnings] == [0]


def test_closing_an_already_closed_or_unknown_code_changes_nothing():
    old = "Code,Rate,Status,Effective Date\n53,,closed,2024-04-01\n"
    new = "Code,Rate,Status,Effective Date\n53,,closed,2024-05-01\n54,,closed,2024-05-01\n"
    result = diff(old, new)
    assert categories(result) == {"53": "unchanged", "54": "unchanged"}
    assert result.warnings == ()


def test_reopened_code_is_new_and_code_closed_in_old_is_not_closed_again_by_absence():
    old = "Code,Rate,Status,Effective Date\n53,,closed,2024-04-01\n55,,closed,2024-04-01\n"
    new = "Code,Rate,Effective Date\n53,0.5,2024-05-01\n"
    assert categories(diff(old, new)) == {"53": "new"}


def test_code_dropped_before_its_scheduled_start_is_closed():
    old = "Code,Rate,Effective Date\n44,0.01,2024-06-01\n"
    result = diff(old, "Code,Rate\n45,0.01\n")
    assert categories(result) == {"44": "closed", "45": "new"}
    closed = [r for r in result.changes.to_pylist() if r["prefix"] == "44"]
    assert [(r["old_rate_e8"], r["old_line"]) for r in closed] == [(1_000_000, 2)]


def test_decks_in_different_currencies_cannot_be_compared():
    with pytest.raises(DeckCurrencyMismatchError):
        diff_decks(
            parsed("Code,Rate\n44,0.01\n"),
            parsed("Code,Rate\n44,0.01\n", currency="EUR"),
            notice_date=date(2024, 5, 1),
        )


# --- the CLI ---------------------------------------------------------------------------------


def tollgate(argv: list[str]) -> int:
    """functions.cli.main, with only the deck command registered."""
    parser = argparse.ArgumentParser(prog="tollgate")
    deck_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except CliError as error:
        print(f"tollgate: error: {error}")
        return 2


@pytest.fixture
def decks(tmp_path, monkeypatch):
    monkeypatch.setenv("TOLLGATE_CACHE_DIR", str(tmp_path / "cache"))
    old, new = tmp_path / "old.csv", tmp_path / "new.csv"
    old.write_text(OLD)
    new.write_text(NEW)
    return str(old), str(new)


def test_cli_diff_prints_counts_then_warnings_and_exits_zero(decks, capsys):
    old, new = decks
    assert tollgate(["deck", "diff", old, new, "--notice-date", "2024-05-01"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split() for line in lines[1:6]] == [
        ["new", "2"],
        ["increased", "1"],
        ["decreased", "1"],
        ["unchanged", "1"],
        ["closed", "2"],
    ]
    assert lines[6:] == [
        "2 notice warnings:",
        "  WARNING closed 51 Peru - Fixed: 0.0120 → - effective 2024-05-01 (0 days of notice)",
        "  WARNING increased 447407 United Kingdom - Mobile - Vodafone: 0.0110 → 0.0124"
        " effective 2024-05-03 (2 days of notice)",
    ]


def test_cli_diff_json_is_machine_readable_with_exact_rates(decks, capsys):
    old, new = decks
    argv = ["deck", "diff", old, new, "--notice-date", "2024-05-01", "--notice-days", "8"]
    assert tollgate([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["counts"] == {"new": 2, "increased": 1, "decreased": 1, "unchanged": 1, "closed": 2}
    assert out["notice_days"] == 8 and out["currency"] == "USD"
    assert [(w["prefix"], w["notice_days"]) for w in out["warnings"]] == [
        ("447407", 2.0),
        ("51", 0.0),
        ("53", 7.0),
    ]
    increase = out["warnings"][0]
    assert (increase["old_rate"], increase["new_rate"], increase["effective_at"]) == (
        "0.01100000",
        "0.01240000",
        "2024-05-03T00:00:00Z",
    )
    assert "44" not in {c["prefix"] for c in out["changes"]}  # unchanged rows are left out


def test_cli_diff_defaults_the_notice_date_to_today_utc(decks, capsys):
    old, new = decks
    assert tollgate(["deck", "diff", old, new, "--json"]) == 0
    today = datetime.now(UTC).date()
    notice = json.loads(capsys.readouterr().out)["notice_at"]
    assert notice in {f"{day.isoformat()}T00:00:00Z" for day in (today, today - timedelta(1))}


def test_cli_diff_of_an_invalid_deck_fails_with_the_line_numbered_errors(decks, tmp_path, capsys):
    old, _ = decks
    bad = tmp_path / "bad.csv"
    bad.write_text("Code,Rate\n44,0.0.1\n")
    assert tollgate(["deck", "diff", old, str(bad)]) == 2
    out = capsys.readouterr().out
    assert f"invalid deck {bad}: 1 error:" in out
    assert "line 2: rate '0.0.1': not a plain decimal number" in out


def test_cli_diff_of_a_missing_file_is_a_clear_error(decks, capsys):
    old, _ = decks
    assert tollgate(["deck", "diff", old, "/nonexistent/new.csv"]) == 2
    assert "cannot read /nonexistent/new.csv" in capsys.readouterr().out


def test_cli_check_summarises_a_valid_deck(decks, capsys):
    _, new = decks
    assert tollgate(["deck", "check", new]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{new}: 6 codes, 6 versions, 1 closed, currency USD, compiled in ")


def test_cli_check_lists_errors_and_exits_two_unless_skipping(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("Code,Rate (EUR/min)\n44,0.01\n45,x\n")
    assert tollgate(["deck", "check", str(bad)]) == 2
    assert "deck is in EUR, not USD" in capsys.readouterr().err
    assert tollgate(["deck", "check", str(bad), "--currency", "EUR"]) == 2
    assert "line 3: rate 'x': not a plain decimal number" in capsys.readouterr().err
    assert tollgate(["deck", "check", str(bad), "--currency", "EUR", "--skip-invalid"]) == 0
    out = capsys.readouterr().out
    assert "1 codes, 1 versions, 0 closed, currency EUR" in out
    assert "skipped 1 invalid rows:\n  line 3: rate 'x'" in out


def test_against_an_empty_old_deck_everything_is_new_and_vice_versa():
    assert diff("Code,Rate\n", "Code,Rate\n44,0.01\n").counts["new"] == 1
    assert diff("Code,Rate\n44,0.01\n", "Code,Rate").counts["closed"] == 1


def test_cli_diff_says_which_term_rose_when_only_the_minimum_or_the_grace_did(
    tmp_path, monkeypatch, capsys
):
    """A minimum-only increase warned "0.0950 → 0.0950", naming nothing that changed."""
    monkeypatch.setenv("TOLLGATE_CACHE_DIR", str(tmp_path / "cache"))
    head = "prefix,destination,rate,minimum_charge,free_seconds,effective_from\n"
    old, new = tmp_path / "old.csv", tmp_path / "new.csv"
    old.write_text(head + "234803,Nigeria - Mobile,0.0950,0,6,2024-04-01\n")
    new.write_text(head + "234803,Nigeria - Mobile,0.0950,0.05,3,2024-05-03\n")
    assert tollgate(["deck", "diff", str(old), str(new), "--notice-date", "2024-05-01"]) == 0
    warning = capsys.readouterr().out.splitlines()[-1]
    assert warning == (
        "  WARNING increased 234803 Nigeria - Mobile: 0.0950 → 0.0950, minimum 0.0000 → 0.0500,"
        " free seconds 6 → 3 effective 2024-05-03 (2 days of notice)"
    )
    argv = ["deck", "diff", str(old), str(new), "--notice-date", "2024-05-01", "--json"]
    assert tollgate(argv) == 0
    [change] = json.loads(capsys.readouterr().out)["changes"]
    assert (
        change["old_minimum_charge"],
        change["new_minimum_charge"],
        change["old_free_seconds"],
        change["new_free_seconds"],
    ) == ("0.00000000", "0.05000000", 6, 3)
