"""An account's rate history (issue 8 §1): uploads compose one effective-dated timeline.

Every test here fails on the code before rate history, which had no timeline at all: each
upload replaced the deck, so a notice erased the rates in force before it and an A-Z deck
rewrote the past. The engine's rating contract (functions.rate.rating) prices the timeline;
the property tests compare it with a per-prefix replay of the issue's rules.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.rate.deck import ALWAYS, NEVER, InvalidDeckError, parse_deck
from functions.rate.rating import DeckIndex, price
from functions.rate.timeline import (
    CHANGES,
    FULL,
    MODES,
    TIMELINE_SCHEMA,
    Composition,
    as_timeline,
    compose,
    effective_date,
    in_force,
    instant_text,
    prepare,
)
from functions.shared.money import Rounding
from tests.rate.reference import Entry, deck_table, live_entry

DAY = 86_400
UPLOADED = int(datetime(2024, 9, 1, 12, tzinfo=UTC).timestamp())  # when the tests "upload"


def at(text: str) -> int:
    """An ISO date or datetime (UTC) as epoch seconds."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


class Account:
    """One account's uploads, composed in order as the CLI does."""

    def __init__(self) -> None:
        self.versions: list[Composition] = []
        self.timelines: list[pa.Table] = []

    @property
    def timeline(self) -> pa.Table | None:
        return self.timelines[-1] if self.timelines else None

    def upload(self, csv: str, mode: str = FULL, effective: str | None = None) -> Composition:
        rows = parse_deck(csv.encode(), source="deck.csv").table
        given = None if effective is None else at(effective)
        when = effective_date(rows, given, UPLOADED)
        prepared = prepare(rows, effective=when, first=self.timeline is None, source="deck.csv")
        composed = compose(self.timeline, prepared, mode=mode, effective=when, source="deck.csv")
        self.versions.append(composed)
        self.timelines.append(composed.numbered(len(self.versions)))
        return composed

    def price(self, number: str, when: str) -> tuple[str, str]:
        """(matched prefix, rate per minute) of a 60 s call, or ("", reason) if unrated."""
        index = DeckIndex.build(self.timeline)
        pricing = price(
            index, pa.array([number]), np.array([at(when)]), np.array([60]), Rounding(8)
        )
        if not pricing.rated[0]:
            return "", str(pricing.reason[0])
        prefix = index.deck.column("prefix")[int(pricing.row[0])].as_py()
        return prefix, str(Decimal(int(pricing.amount[0])).scaleb(-8))

    def entries(self, prefix: str) -> list[tuple[str, str, str, int]]:
        """(effective_from, effective_to, rate, version) of a code's entries."""
        rows = self.timeline.filter(pc.equal(self.timeline.column("prefix"), prefix)).to_pylist()
        return [
            (
                instant_text(r["effective_from"]),
                instant_text(r["effective_to"]),
                str(Decimal(r["rate_e8"]).scaleb(-8).normalize()),
                r["version"],
            )
            for r in rows
        ]


FIRST = (
    "prefix,destination,rate,effective_from\n44,UK,0.010,2024-04-01\n4420,London,0.020,2024-04-01\n"
)
NOTICE = "prefix,destination,rate,effective_from\n4420,London,0.025,2024-05-10\n"


@pytest.fixture
def account() -> Account:
    acct = Account()
    acct.upload(FIRST)
    return acct


def test_a_notice_changes_only_its_rows_from_their_date(account):
    """Old code: the notice replaced the deck; 4420 before 05-10 fell to 44, 44 was lost."""
    done = account.upload(NOTICE, mode=CHANGES)
    assert (done.added, done.superseded, done.end_dated, done.closed) == (1, 0, 0, 0)
    assert account.price("442012345678", "2024-05-05") == ("4420", "0.02000000")
    assert account.price("442012345678", "2024-05-11") == ("4420", "0.02500000")
    assert account.price("441234567890", "2024-05-11") == ("44", "0.01000000")
    assert account.entries("4420") == [
        ("2024-04-01", "never", "0.02", 1),
        ("2024-05-10", "never", "0.025", 2),
    ]


def test_an_az_deck_ends_the_codes_it_leaves_out_at_its_date(account):
    """Old code: the A-Z deck replaced everything, so the past lost 4420 too."""
    account.upload(NOTICE, mode=CHANGES)
    done = account.upload("prefix,destination,rate\n44,UK,0.010\n", effective="2024-06-01")
    assert (done.closed, done.end_dated, done.superseded) == (1, 2, 0)
    assert account.price("442012345678", "2024-06-02") == ("44", "0.01000000")  # falls back
    assert account.price("442012345678", "2024-05-31T23:59:59") == ("4420", "0.02500000")
    assert account.price("442012345678", "2024-05-05") == ("4420", "0.02000000")
    assert [e[1] for e in account.entries("4420")] == ["2024-06-01", "2024-06-01"]


def test_a_left_out_code_does_not_resurface_after_a_promotion_ends(account):
    """Every entry of a left-out code ends at E, not only the one live at E."""
    account.upload(
        "prefix,rate,effective_from,effective_to\n4420,0.015,2024-05-01,2024-07-01\n",
        mode=CHANGES,
    )
    assert account.price("442012345678", "2024-05-02") == ("4420", "0.01500000")
    account.upload("prefix,rate\n44,0.010\n", effective="2024-06-01")
    assert account.price("442012345678", "2024-07-02") == ("44", "0.01000000")
    assert account.price("442012345678", "2024-05-31") == ("4420", "0.01500000")


def test_a_code_the_deck_keeps_keeps_its_old_rate_until_its_new_row(account):
    """An increase dated a week after E leaves the old rate in force for that week."""
    done = account.upload(
        "prefix,rate,effective_from,effective_to\n"
        "44,0.010,2024-06-01,\n"
        "4420,0.030,2024-06-08,2024-07-01\n"
    )
    assert account.price("442012345678", "2024-06-03") == ("4420", "0.02000000")
    assert account.price("442012345678", "2024-06-09") == ("4420", "0.03000000")
    # After the deck's own row for 4420 ends, the deck says nothing of it: no older rate
    # comes back.
    assert account.price("442012345678", "2024-07-02") == ("44", "0.01000000")
    assert done.closed == 0
    assert account.entries("4420") == [
        ("2024-04-01", "2024-06-08", "0.02", 1),
        ("2024-06-08", "2024-07-01", "0.03", 2),
    ]


def test_a_full_deck_supersedes_what_was_scheduled_from_its_date(account):
    """A notice's increase from 07-01, then an A-Z deck from 06-01 without it: it is gone."""
    account.upload("prefix,rate,effective_from\n4420,0.040,2024-07-01\n", mode=CHANGES)
    assert account.price("442012345678", "2024-07-02") == ("4420", "0.04000000")
    done = account.upload(
        "prefix,rate,effective_from\n44,0.010,2024-06-01\n4420,0.020,2024-06-01\n"
    )
    assert done.superseded == 1
    assert account.price("442012345678", "2024-07-02") == ("4420", "0.02000000")


def test_nothing_in_force_before_the_effective_date_changes(account):
    account.upload(NOTICE, mode=CHANGES)
    before = account.timeline
    account.upload("prefix,rate\n45,0.5\n", effective="2024-05-20")
    for moment in ("2024-04-01", "2024-05-05", "2024-05-19T23:59:59"):
        assert _in_force(before, at(moment)) == _in_force(account.timeline, at(moment))
    assert _in_force(before, at("2024-05-20")) != _in_force(account.timeline, at("2024-05-20"))


def test_a_row_for_an_existing_start_corrects_it(account):
    """Same prefix and effective_from: the new row replaces the entry (re-rating re-prices)."""
    account.upload(NOTICE, mode=CHANGES)
    done = account.upload(
        "prefix,destination,rate,effective_from\n4420,London,0.022,2024-05-10\n", mode=CHANGES
    )
    assert (done.added, done.superseded, done.unchanged) == (1, 1, 0)
    assert account.entries("4420") == [
        ("2024-04-01", "never", "0.02", 1),
        ("2024-05-10", "never", "0.022", 3),
    ]
    assert account.price("442012345678", "2024-05-11") == ("4420", "0.02200000")
    # The same row again changes nothing: the entry keeps the version that brought it.
    again = account.upload(
        "prefix,destination,rate,effective_from\n4420,London,0.022,2024-05-10\n", mode=CHANGES
    )
    assert (again.added, again.superseded, again.unchanged) == (0, 0, 1)
    assert account.entries("4420")[-1] == ("2024-05-10", "never", "0.022", 3)


def test_a_correction_back_to_the_rate_before_removes_the_change(account):
    account.upload(NOTICE, mode=CHANGES)
    done = account.upload(
        "prefix,destination,rate,effective_from\n4420,London,0.020,2024-05-10\n", mode=CHANGES
    )
    # The corrected row says what the entry before it says: no entry is needed at all.
    assert (done.added, done.superseded, done.unchanged) == (0, 1, 1)
    assert account.entries("4420") == [("2024-04-01", "never", "0.02", 1)]
    assert account.price("442012345678", "2024-05-11") == ("4420", "0.02000000")


def test_undated_rows_start_at_the_beginning_in_a_first_deck_and_at_e_later():
    account = Account()
    account.upload("prefix,rate\n44,0.010\n")
    assert account.entries("44") == [("always", "never", "0.01", 1)]
    assert account.price("441234567890", "1999-01-01") == ("44", "0.01000000")
    account.upload("prefix,rate\n44,0.012\n", mode=CHANGES, effective="2024-06-01")
    assert account.price("441234567890", "2024-05-31T23:59:59") == ("44", "0.01000000")
    assert account.price("441234567890", "2024-06-01") == ("44", "0.01200000")
    # No date anywhere: from the upload time.
    account.upload("prefix,rate\n44,0.015\n")
    assert account.entries("44")[-1] == (instant_text(UPLOADED), "never", "0.015", 3)
    assert account.price("441234567890", "2024-09-01T11:59:59") == ("44", "0.01200000")


def test_the_effective_date_is_given_or_the_earliest_dated_row_or_the_upload_time():
    dated = parse_deck(b"prefix,rate,effective_from\n44,1,2024-05-02\n45,1,\n46,1,2024-05-01\n")
    undated = parse_deck(b"prefix,rate\n44,1\n")
    assert effective_date(dated.table, at("2024-04-01"), UPLOADED) == at("2024-04-01")
    assert effective_date(dated.table, None, UPLOADED) == at("2024-05-01")
    assert effective_date(undated.table, None, UPLOADED) == UPLOADED


def test_an_az_deck_may_repeat_each_codes_original_date(account):
    """A-Z decks list each code with the date its rate started: that rewrites nothing.

    A rule superseding every entry from E would lose 4420's April rate here (the calls of
    05-05 would fall to 44 again), since the deck dates 4420 from its 05-10 change.
    """
    account.upload(NOTICE, mode=CHANGES)
    az = (
        "prefix,destination,rate,effective_from\n"
        "44,UK,0.010,2024-04-01\n"
        "4420,London,0.025,2024-05-10\n"
        "45,Denmark,0.5,2024-06-01\n"
    )
    done = account.upload(az, effective="2024-06-01")
    assert (done.added, done.unchanged, done.superseded, done.closed) == (1, 2, 0, 0)
    assert account.price("442012345678", "2024-05-05") == ("4420", "0.02000000")
    assert account.price("442012345678", "2024-05-11") == ("4420", "0.02500000")
    assert account.price("4512345678", "2024-06-02") == ("45", "0.50000000")
    # Without --effective, E is the deck's earliest date: the same history.
    again = Account()
    again.upload(FIRST)
    again.upload(NOTICE, mode=CHANGES)
    again.upload(az)
    for moment in ("2024-04-02", "2024-05-05", "2024-05-11", "2024-06-02", "2024-09-01"):
        assert again.price("442012345678", moment) == account.price("442012345678", moment)


def test_a_full_deck_cannot_change_the_past_and_says_which_line(account):
    rows = parse_deck(
        b"prefix,destination,rate,effective_from\n"
        b"44,UK,0.010,2024-04-01\n"
        b"4420,London,0.019,2024-04-01\n"
        b"45,Denmark,0.5,2024-06-01\n"
    ).table
    prepared = prepare(rows, effective=at("2024-06-01"), first=False)
    with pytest.raises(InvalidDeckError) as error:
        compose(account.timeline, prepared, mode=FULL, effective=at("2024-06-01"), source="az.csv")
    # Line 2 restates the history (44 at 0.010 since 04-01); line 3 would rewrite April.
    assert [(e.line, e.field, e.value) for e in error.value.errors] == [
        (3, "effective_from", "2024-04-01")
    ]
    assert "az.csv: 1 error" in str(error.value)
    assert "before the deck's effective date 2024-06-01" in str(error.value)
    # As changes, a past-dated row is a correction of the past, and allowed.
    compose(account.timeline, prepared, mode=CHANGES, effective=at("2024-06-01"))


def test_an_undated_row_must_fit_the_effective_date_it_takes(account):
    rows = parse_deck(
        b"prefix,rate,effective_from,effective_to\n"
        b"44,0.01,,\n"
        b"44,0.02,2024-06-01,\n"
        b"45,0.02,,2024-05-01\n"
    ).table
    with pytest.raises(InvalidDeckError) as error:
        prepare(rows, effective=at("2024-06-01"), first=False, source="n.csv")
    assert [(e.line, e.field) for e in error.value.errors] == [
        (2, "effective_from"),
        (4, "effective_to"),
    ]
    assert "as line 3 says it does" in str(error.value)
    # In a first deck the undated rows start at the beginning: no clash.
    prepare(rows, effective=at("2024-06-01"), first=True)


def test_a_weekly_az_deck_that_repeats_its_rates_adds_nothing(account):
    weekly = "prefix,destination,rate\n44,UK,0.010\n4420,London,0.020\n"
    done = account.upload(weekly, effective="2024-06-01")
    assert (done.added, done.unchanged, done.end_dated) == (0, 2, 0)
    assert account.timelines[-1].equals(account.timelines[0])
    # `deck show` still tells which upload brought each rate in force.
    shown = in_force(account.timeline, at("2024-06-02"))
    assert shown.column("version").to_pylist() == [1, 1]
    changed = account.upload(weekly.replace("0.020", "0.021"), effective="2024-06-08")
    assert (changed.added, changed.unchanged, changed.end_dated) == (1, 1, 1)
    assert account.timeline.num_rows == 3
    assert account.entries("4420") == [
        ("2024-04-01", "2024-06-08", "0.02", 1),
        ("2024-06-08", "never", "0.021", 3),
    ]


def test_a_correction_covers_the_decks_that_only_repeated_the_rate(account):
    """The timeline records changes, not repetitions: the documented consequence."""
    account.upload(
        "prefix,destination,rate\n44,UK,0.010\n4420,London,0.020\n", effective="2024-06-01"
    )
    account.upload(
        "prefix,destination,rate,effective_from\n4420,London,0.022,2024-04-01\n", mode=CHANGES
    )
    assert account.price("442012345678", "2024-07-01") == ("4420", "0.02200000")


def test_deck_show_lists_every_code_that_could_price_a_number():
    account = Account()
    account.upload("prefix,rate\n4,1\n44,1\n442,1\n4420,1\n44201,1\n45,1\n443,1\n")
    shown = in_force(account.timeline, UPLOADED, "4420")
    assert shown.column("prefix").to_pylist() == ["4", "44", "442", "4420", "44201"]
    assert in_force(account.timeline, UPLOADED, "9").num_rows == 0


def test_in_force_is_the_live_entry_of_each_code(account):
    account.upload(NOTICE, mode=CHANGES)
    account.upload("prefix,rate,effective_from\n4420,0,2024-06-01\n", mode=CHANGES)
    closed = account.upload(
        "prefix,rate,effective_from,status\n44,,2024-07-01,Closed\n", mode=CHANGES
    )
    assert closed.added == 1
    shown = in_force(account.timeline, at("2024-07-02")).to_pylist()
    assert [(r["prefix"], r["closed"], r["version"]) for r in shown] == [
        ("44", True, 4),
        ("4420", False, 3),
    ]
    assert in_force(account.timeline, at("2024-03-31")).num_rows == 0


def test_a_deck_stored_before_rate_history_is_a_timeline_of_its_version():
    legacy = parse_deck(b"prefix,rate\n44,0.01\n").table.replace_schema_metadata({b"x": b"y"})
    timeline = as_timeline(legacy, 7)
    assert timeline.schema == TIMELINE_SCHEMA
    assert timeline.column("version").to_pylist() == [7]


def test_an_unknown_mode_or_version_is_refused(account):
    rows = prepare(parse_deck(b"prefix,rate\n45,1\n").table, effective=UPLOADED, first=False)
    with pytest.raises(ValueError, match="invalid deck mode 'replace'"):
        compose(account.timeline, rows, mode="replace", effective=UPLOADED)
    composed = compose(account.timeline, rows, mode=CHANGES, effective=UPLOADED)
    with pytest.raises(ValueError, match="invalid deck version 0"):
        composed.numbered(0)


def _in_force(timeline: pa.Table, moment: int) -> list[dict]:
    """What is in force at a moment, by code; the end dates may move to E, nothing else."""
    return in_force(timeline, moment).drop_columns(["effective_to"]).to_pylist()


# --- the rules replayed per prefix, against the vectorised composition -----------------------

CODES = ("1", "4", "44", "442", "4420", "45")
BASE = at("2024-01-01")


def _day(n: int) -> int:
    return BASE + n * DAY


@st.composite
def uploads(draw, first: bool):
    mode = draw(st.sampled_from(MODES))
    effective_day = draw(st.integers(0, 20))
    effective = _day(effective_day)
    rows = []
    for _ in range(draw(st.integers(1, 8))):
        if draw(st.booleans()):
            # A full deck's rows start at E or later; a notice may date them anywhere.
            start = _day(draw(st.integers(effective_day if mode == FULL else 0, 24)))
        else:
            start = None
        begins = start if start is not None else (BASE - 10 * DAY if first else effective)
        end = draw(st.none() | st.integers(1, 10).map(lambda k, b=begins: b + k * DAY))
        rows.append(
            Entry(
                prefix=draw(st.sampled_from(CODES)),
                rate=draw(st.sampled_from([Decimal("0.01"), Decimal("0.02"), Decimal("0.03")])),
                effective_from=start,
                effective_to=end,
                closed=draw(st.integers(0, 5)) == 0,
                destination=draw(st.sampled_from(["", "X"])),
            )
        )
    # The importer refuses two rows of one code and start; so does prepare once undated
    # rows take E.
    unique = {}
    for row in rows:
        taken = None if first else effective
        unique.setdefault((row.prefix, row.effective_from or taken), row)
    return mode, effective, list(unique.values())


@st.composite
def histories(draw):
    count = draw(st.integers(1, 5))
    return [draw(uploads(first=i == 0)) for i in range(count)]


def _start(entry: Entry) -> int:
    return ALWAYS if entry.effective_from is None else entry.effective_from


def _end(entry: Entry) -> int:
    return NEVER if entry.effective_to is None else entry.effective_to


def _price_of(entry: Entry) -> tuple:
    return (entry.rate, entry.connect_fee, entry.first, entry.step, entry.closed, entry.destination)


def replay(
    entries: dict[str, list[Entry]],
    mode: str,
    effective: int,
    rows: list[Entry],
    first: bool,
    *,
    repeats_add_nothing: bool = True,
) -> None:
    """The module docstring's rules, literally: one code, one row at a time."""
    dated = sorted(
        (
            row
            if row.effective_from is not None or first
            else dataclasses.replace(row, effective_from=effective)
            for row in rows
        ),
        key=_start,
    )
    for prefix in {*entries, *(row.prefix for row in dated)}:
        arriving = [row for row in dated if row.prefix == prefix]
        held = [(e, False) for e in entries.get(prefix, [])]
        restated, fresh = set(), []
        for row in arriving:
            same = [e for e, _ in held if _start(e) == _start(row)]
            if same and _price_of(same[0]) == _price_of(row) and _end(same[0]) == _end(row):
                restated.add(_start(row))
                continue
            held = [(e, new) for e, new in held if _start(e) != _start(row)]
            fresh.append((row, True))
        if mode == FULL:
            cut = max(_start(arriving[0]), effective) if arriving else effective
            held = [(e, n) for e, n in held if _start(e) in restated or _start(e) < cut]
        result: list[tuple[Entry, bool]] = []
        carried = False
        for entry, new in sorted(held + fresh, key=lambda pair: _start(pair[0])):
            if (
                repeats_add_nothing
                and new
                and result
                and _end(result[-1][0]) == NEVER
                and _end(entry) == NEVER
                and _price_of(result[-1][0]) == _price_of(entry)
            ):
                carried |= entry is arriving[0]
                continue
            result.append((entry, new))
        if mode == FULL and not carried:
            result = [
                (dataclasses.replace(e, effective_to=cut), n)
                if not n and _start(e) not in restated and _end(e) > cut
                else (e, n)
                for e, n in result
            ]
        entries[prefix] = [e for e, _ in result]


MOMENTS = [_day(n) + offset for n in range(-2, 36) for offset in (0, DAY // 2)]
NUMBERS = ["1555", "4", "44", "4412", "442", "4420", "44209", "4430", "45", "459", "46", "9"]


def _priced(entries: dict[str, list[Entry]]) -> list[tuple]:
    everything = [e for held in entries.values() for e in held]
    found = [live_entry(everything, n, t) for n in NUMBERS for t in MOMENTS]
    return [None if e is None else (e.prefix, *_price_of(e)) for e in found]


def _compose_all(history) -> tuple[pa.Table, dict[str, list[Entry]]]:
    timeline, entries = None, {}
    for version, (mode, effective, rows) in enumerate(history, start=1):
        first = timeline is None
        prepared = prepare(deck_table(rows), effective=effective, first=first)
        timeline = compose(timeline, prepared, mode=mode, effective=effective).numbered(version)
        replay(entries, mode, effective, rows, first)
        keys = list(
            zip(timeline["prefix"].to_pylist(), timeline["effective_from"].to_pylist(), strict=True)
        )
        assert len(set(keys)) == len(keys)
    return timeline, entries


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories())
def test_the_composed_timeline_prices_every_call_as_the_rules_replayed(history):
    timeline, entries = _compose_all(history)
    index = DeckIndex.build(timeline)
    numbers = [n for n in NUMBERS for _ in MOMENTS]
    row = index.lookup(pa.array(numbers), np.array(MOMENTS * len(NUMBERS)))
    deck = index.deck.to_pylist()
    got = [
        None
        if r < 0
        else (
            deck[r]["prefix"],
            Decimal(deck[r]["rate_e8"]).scaleb(-8),
            Decimal(deck[r]["connect_fee_e8"]).scaleb(-8),
            deck[r]["increment_first"],
            deck[r]["increment_next"],
            deck[r]["closed"],
            deck[r]["destination"],
        )
        for r in row.tolist()
    ]
    assert got == _priced(entries)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), last=uploads(first=False))
def test_a_repeated_rate_adds_nothing_to_what_is_in_force(history, last):
    """Dropping repeats never changes a price: the rules without that one agree at every T."""
    _, entries = _compose_all(history)
    mode, effective, rows = last
    plain = {prefix: list(held) for prefix, held in entries.items()}
    replay(entries, mode, effective, rows, False)
    replay(plain, mode, effective, rows, False, repeats_add_nothing=False)
    assert _priced(entries) == _priced(plain)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), last=uploads(first=False))
def test_nothing_in_force_before_an_upload_changes(history, last):
    timeline, _ = _compose_all(history)
    mode, effective, rows = last
    prepared = prepare(deck_table(rows), effective=effective, first=False)
    after = compose(timeline, prepared, mode=mode, effective=effective).numbered(99)
    earliest = min([effective, *prepared.column("effective_from").to_pylist()])
    for moment in (m for m in MOMENTS if m < earliest):
        assert _in_force(timeline, moment) == _in_force(after, moment), instant_text(moment)
    # The past is never erased: every entry that started before stays, and an end date only
    # ever moves back to the upload's date or later.
    ends = {
        (r["prefix"], r["effective_from"]): r["effective_to"]
        for r in after.to_pylist()
        if r["effective_from"] < earliest
    }
    for r in timeline.filter(pc.less(timeline.column("effective_from"), earliest)).to_pylist():
        end = ends[(r["prefix"], r["effective_from"])]
        assert end == r["effective_to"] or earliest <= end < r["effective_to"]
