"""`tollgate deck upload|list|show|rollback` on moto, through `functions.cli.main`.

Issue 8 §1: an account's rates are one effective-dated timeline that every upload adds to.
Calls are priced as the rate service prices them: `DeckIndex.build(lake.get_deck(tenant,
account, head))` and the rating contract. Before rate history each upload replaced the deck
(and `--mode`, `deck list|show|rollback` did not exist), so every test of §1 here fails on
that code; the docstrings say what it got wrong.
"""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from functions.cli import main
from functions.rate.deck import parse_deck
from functions.rate.rating import DeckIndex, price
from functions.rate.timeline import FULL, as_timeline, compose, prepare
from functions.shared.money import Rounding, units_to_str
from functions.store import accounts, lake
from tests.cli.conftest import json_document

FIRST = (
    "prefix,destination,rate,effective_from\n44,UK,0.010,2024-04-01\n4420,London,0.020,2024-04-01\n"
)
NOTICE = "prefix,destination,rate,effective_from\n4420,London,0.025,2024-05-10\n"
AZ_WITHOUT_4420 = "prefix,destination,rate\n44,UK,0.010\n"
LONDON = "442012345678"


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def tollgate(*argv: str) -> int:
    return main(list(argv))


def cost(number: str, when: str) -> tuple[str, str]:
    """(prefix, amount) of a 60 s call at `when`, as the rate service prices it now."""
    head = accounts.get_account("acme", "cust").deck_version
    index = DeckIndex.build(lake.get_deck("acme", "cust", head), "USD")
    pricing = price(index, pa.array([number]), np.array([at(when)]), np.array([60]), Rounding())
    if not pricing.rated[0]:
        return "", str(pricing.reason[0])
    prefix = index.deck.column("prefix")[int(pricing.row[0])].as_py()
    return prefix, units_to_str(int(pricing.amount[0]), 6)


def timeline_of(version: int) -> pa.Table:
    return lake.get_deck("acme", "cust", version).replace_schema_metadata(None)


@pytest.fixture
def acme(aws, tmp_path):
    """A tenant and a customer; `deck(name, text)` writes a deck file and returns its path."""
    assert tollgate("tenant", "create", "acme") == 0
    assert tollgate("account", "create", "acme", "cust", "--kind", "customer") == 0

    def deck(name: str, text: str) -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return deck


@pytest.fixture
def history(acme, capsys):
    """v1 the first deck, v2 a notice moving 4420 to 0.025 from 05-10."""
    assert tollgate("deck", "upload", "acme", "cust", acme("first.csv", FIRST)) == 0
    notice = acme("notice.csv", NOTICE)
    assert tollgate("deck", "upload", "acme", "cust", notice, "--mode", "changes") == 0
    capsys.readouterr()
    return acme


# --- the bug, and each rule of §1 ------------------------------------------------------------


def test_a_notice_keeps_the_rate_in_force_before_it(history, capsys):
    """Old code: the notice replaced the deck, so a 05-05 call to 4420 cost 44's 0.010."""
    assert cost(LONDON, "2024-05-05T12:00:00") == ("4420", "0.020000")
    assert cost(LONDON, "2024-05-11T12:00:00") == ("4420", "0.025000")
    assert cost("441234567890", "2024-05-11") == ("44", "0.010000")  # not in the notice


def test_an_az_deck_from_a_date_closes_what_it_leaves_out_from_then_only(history, capsys):
    """Old code: the A-Z deck without 4420 also priced last month's 4420 calls at 44."""
    az = history("az-june.csv", AZ_WITHOUT_4420)
    done = json_document(capsys, "deck", "upload", "acme", "cust", az, "--effective", "2024-06-01")
    assert (done["version"], done["mode"], done["effective"], done["closed"]) == (
        3,
        "full",
        "2024-06-01",
        1,
    )
    assert cost(LONDON, "2024-06-02") == ("44", "0.010000")
    assert cost(LONDON, "2024-05-05T12:00:00") == ("4420", "0.020000")
    assert cost(LONDON, "2024-05-31T23:59:59") == ("4420", "0.025000")


def test_a_row_with_the_same_start_corrects_the_rate(history, capsys):
    """Old code: the correction replaced the whole deck (44 and April's 4420 were lost)."""
    fixed = history("fixed.csv", NOTICE.replace("0.025", "0.022"))
    done = json_document(capsys, "deck", "upload", "acme", "cust", fixed, "--mode", "changes")
    assert (done["added"], done["superseded"]) == (1, 1)
    assert cost(LONDON, "2024-05-11") == ("4420", "0.022000")
    assert cost(LONDON, "2024-05-05") == ("4420", "0.020000")
    timeline = timeline_of(done["version"])
    london = timeline.filter(pc.equal(timeline["prefix"], "4420"))
    assert london["effective_from"].to_pylist() == [at("2024-04-01"), at("2024-05-10")]
    assert london["version"].to_pylist() == [1, 3]


def test_undated_rows_apply_from_always_in_a_first_deck_and_from_the_date_later(acme, capsys):
    """Old code: the later undated deck replaced the first one for every past call too."""
    tollgate("deck", "upload", "acme", "cust", acme("a.csv", "prefix,rate\n44,0.010\n"))
    assert cost("441234567890", "2001-01-01") == ("44", "0.010000")
    later = acme("b.csv", "prefix,rate\n44,0.012\n")
    assert tollgate("deck", "upload", "acme", "cust", later, "--effective", "2024-06-01") == 0
    assert cost("441234567890", "2024-05-31T23:59:59") == ("44", "0.010000")
    assert cost("441234567890", "2024-06-01") == ("44", "0.012000")


def test_rollback_makes_a_new_version_with_an_old_timeline_and_deletes_nothing(history, capsys):
    """Old code had no rollback; re-uploading the old file could not restore the history."""
    az = history("az-june.csv", AZ_WITHOUT_4420)
    tollgate("deck", "upload", "acme", "cust", az, "--effective", "2024-06-01")
    before = [timeline_of(v) for v in (1, 2, 3)]
    done = json_document(capsys, "deck", "rollback", "acme", "cust", "1")
    assert (done["version"], done["mode"], done["restores"], done["base"], done["created"]) == (
        4,
        "rollback",
        1,
        3,
        True,
    )
    assert timeline_of(4).equals(timeline_of(1))
    assert [timeline_of(v) for v in (1, 2, 3)] == before  # every version still reads the same
    assert accounts.get_account("acme", "cust").deck_version == 4
    assert cost(LONDON, "2024-06-02") == ("4420", "0.020000")  # v1 knew no notice, no A-Z
    again = json_document(capsys, "deck", "rollback", "acme", "cust", "1")
    assert (again["version"], again["created"]) == (4, False)
    assert tollgate("deck", "rollback", "acme", "cust", "3") == 0
    assert cost(LONDON, "2024-06-02") == ("44", "0.010000")
    assert [v.version for v in accounts.list_deck_versions("acme", "cust")] == [1, 2, 3, 4, 5]


def test_deck_list_shows_every_version_and_the_active_one(history, capsys):
    """Old code: no `deck list`; versions were kept but could not be seen."""
    az = history("az.csv", AZ_WITHOUT_4420)
    tollgate("deck", "upload", "acme", "cust", az, "--effective", "2024-06-01T12:00:00")
    tollgate("deck", "rollback", "acme", "cust", "2")
    capsys.readouterr()
    listed = json_document(capsys, "deck", "list", "acme", "cust")
    assert (listed["active"], listed["currency"]) == (4, "USD")
    rows = [
        (v["version"], v["mode"], v["rows"], v["effective"], v["effective_range"], v["active"])
        for v in listed["versions"]
    ]
    assert rows == [
        (1, "full", 2, "2024-04-01", {"from": "2024-04-01", "to": "2024-04-01"}, False),
        (2, "changes", 1, "2024-05-10", {"from": "2024-05-10", "to": "2024-05-10"}, False),
        (
            3,
            "full",
            1,
            "2024-06-01T12:00:00Z",
            {"from": "2024-06-01T12:00:00Z", "to": "2024-06-01T12:00:00Z"},
            False,
        ),
        (4, "rollback", 0, None, {"from": None, "to": None}, True),
    ]
    first = listed["versions"][0]
    assert first["source"] == "first.csv" and len(first["sha256"]) == 64
    assert first["upload_key"] == "decks/tenant=acme/account=cust/v1.upload.parquet"
    assert [v["base"] for v in listed["versions"]] == [None, 1, 2, 3]
    assert [v["timeline_rows"] for v in listed["versions"]] == [2, 3, 3, 3]
    assert tollgate("deck", "list", "acme", "cust") == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0] == "acme/cust deck versions (USD, * = active):"
    assert text[2].split()[:6] == ["v1", *text[2].split()[1:3], "full", "2", "2024-04-01"]
    assert text[-1].split()[0] == "*" and "rollback to v2" in text[-1]


def test_deck_show_says_what_was_in_force_and_which_upload_brought_it(history, capsys):
    """Old code: no `deck show`; what priced a past call could not be asked."""
    shown = json_document(
        capsys, "deck", "show", "acme", "cust", "--at", "2024-05-11", "--prefix", "+44 20 7"
    )
    assert (shown["version"], shown["at"], shown["prefix"]) == (2, "2024-05-11T00:00:00Z", "44207")
    assert shown["entries"] == [
        {"prefix": "44", "origin": "", "destination": "UK", "rate": "0.01000000",
         "connect_fee": "0.00000000", "increment": "1/1", "minimum_charge": "0.00000000",
         "free_seconds": 0, "surcharge": "0.00000000", "effective_from": "2024-04-01",
         "effective_to": "never", "status": "open", "version": 1},
        {"prefix": "4420", "origin": "", "destination": "London", "rate": "0.02500000",
         "connect_fee": "0.00000000", "increment": "1/1", "minimum_charge": "0.00000000",
         "free_seconds": 0, "surcharge": "0.00000000", "effective_from": "2024-05-10",
         "effective_to": "never", "status": "open", "version": 2},
    ]  # fmt: skip
    earlier = json_document(capsys, "deck", "show", "acme", "cust", "--at", "2024-05-09T23:59:59")
    assert [(e["prefix"], e["rate"], e["version"]) for e in earlier["entries"]] == [
        ("44", "0.01000000", 1),
        ("4420", "0.02000000", 1),
    ]
    as_v1 = json_document(
        capsys, "deck", "show", "acme", "cust", "--at", "2024-05-11", "--version", "1"
    )
    assert [e["rate"] for e in as_v1["entries"]] == ["0.01000000", "0.02000000"]
    assert (
        json_document(capsys, "deck", "show", "acme", "cust", "--at", "2024-03-31")["entries"] == []
    )
    assert tollgate("deck", "show", "acme", "cust", "--at", "2024-05-11", "--prefix", "4420") == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0] == (
        "acme/cust deck v2 in force at 2024-05-11T00:00:00Z, codes for 4420: 2 codes (USD)"
    )
    assert text[2].split() == [
        "44", "UK", "0.01000000", "0.00000000", "1/1", "0.00000000", "-", "2024-04-01", "never",
        "open", "v1",
    ]  # fmt: skip


def test_an_uploaded_deck_keeps_origins_and_surcharges_and_prices_by_the_caller(acme, capsys):
    """Old code: the importer dropped both columns, so 44 was one code and no surcharge."""
    text = "prefix,destination,rate,origin,surcharge\n44,UK,0.010,,\n"
    text += "44,UK from FR,0.020,33,0.002\n"
    assert tollgate("deck", "upload", "acme", "cust", acme("o.csv", text)) == 0
    capsys.readouterr()
    shown = json_document(capsys, "deck", "show", "acme", "cust", "--at", "2024-05-11")
    assert [(e["prefix"], e["origin"], e["rate"], e["surcharge"]) for e in shown["entries"]] == [
        ("44", "", "0.01000000", "0.00000000"),
        ("44", "33", "0.02000000", "0.00200000"),
    ]
    assert tollgate("deck", "show", "acme", "cust", "--at", "2024-05-11") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:2] == ["prefix", "origin"]
    assert "surcharge" in lines[1].split()
    head = accounts.get_account("acme", "cust").deck_version
    index = DeckIndex.build(lake.get_deck("acme", "cust", head), "USD")
    pricing = price(
        index,
        pa.array([LONDON, LONDON]),
        np.array([at("2024-05-11")] * 2),
        np.array([60, 60]),
        Rounding(),
        caller=pa.array(["+33 1 40", "4930"]),
    )
    assert pricing.amount.tolist() == [20_000, 10_000]


def test_a_full_deck_that_would_change_the_past_is_refused_naming_the_line(history, capsys):
    """Old code accepted it and silently rewrote April."""
    past = history(
        "az.csv", "prefix,rate,effective_from\n44,0.010,2024-06-01\n4420,0.03,2024-04-01\n"
    )
    assert tollgate("deck", "upload", "acme", "cust", past, "--effective", "2024-06-01") == 2
    error = capsys.readouterr().err
    assert "invalid deck az.csv: 1 error" in error
    assert "line 3: effective_from '2024-04-01': before the deck's effective date 2024-06-01" in (
        error
    )
    assert accounts.get_account("acme", "cust").deck_version == 2
    assert [v.version for v in accounts.list_deck_versions("acme", "cust")] == [1, 2]
    # The same rows as a notice correct the past, on purpose.
    assert tollgate("deck", "upload", "acme", "cust", past, "--mode", "changes") == 0
    assert cost(LONDON, "2024-04-02") == ("4420", "0.030000")


def test_the_same_upload_again_records_nothing(history, capsys):
    """A retry after a crash that came once the upload had gone through: still one version."""
    again = json_document(
        capsys, "deck", "upload", "acme", "cust", history("notice.csv", NOTICE), "--mode", "changes"
    )
    assert (again["version"], again["created"]) == (2, False)
    assert [v.version for v in accounts.list_deck_versions("acme", "cust")] == [1, 2]


# --- concurrency and crashes -----------------------------------------------------------------


def test_uploads_racing_to_one_account_are_all_kept(history, capsys, monkeypatch, atomic_items):
    """Six notices composed on the same head at once: each loser composes again on the winner.

    Without the conditional commit each would have been composed on v2 and the last one
    written would have dropped the others' rows.
    """
    racers = 6
    barrier = threading.Barrier(racers, timeout=60)
    waited: set[int] = set()
    put_deck = lake.put_deck

    def put_once_all_have_composed(*args, **kwargs):
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            barrier.wait()  # every racer has read v2 and composed on it
        return put_deck(*args, **kwargs)

    monkeypatch.setattr(lake, "put_deck", put_once_all_have_composed)
    notices = [
        history(f"n{i}.csv", f"prefix,rate,effective_from\n3{i},0.1{i},2024-05-20\n")
        for i in range(racers)
    ]
    with ThreadPoolExecutor(max_workers=racers) as pool:
        codes = list(
            pool.map(
                lambda path: tollgate("deck", "upload", "acme", "cust", path, "--mode", "changes"),
                notices,
            )
        )
    assert codes == [0] * racers
    versions = accounts.list_deck_versions("acme", "cust")
    assert len(versions) == 2 + racers
    assert sorted(v.source for v in versions[2:]) == [f"n{i}.csv" for i in range(racers)]
    # One chain: each version composed on the one recorded before it.
    assert [v.base for v in versions[1:]] == [v.version for v in versions[:-1]]
    head = accounts.get_account("acme", "cust").deck_version
    assert head == versions[-1].version > 2 + racers  # the losers' first numbers were skipped
    prefixes = set(timeline_of(head)["prefix"].to_pylist())
    assert prefixes == {"44", "4420", *(f"3{i}" for i in range(racers))}


STORE_CALLS = (
    (accounts, "get_account"),
    (accounts, "get_deck_version"),
    (accounts, "reserve_deck_version"),
    (accounts, "commit_deck_version"),
    (lake, "get_deck"),
    (lake, "put_deck_upload"),
    (lake, "put_deck"),
)


class Crash(Exception):
    """The CLI's process dying between two store calls."""


def crash_at(monkeypatch, at_call: int, *, after: bool) -> list[str]:
    """Make store call number `at_call` crash (before or after it ran); returns the calls."""
    count = itertools.count(1)
    calls: list[str] = []
    for module, name in STORE_CALLS:
        original = getattr(module, name)

        def call(*args, __original=original, __name=name, **kwargs):
            number = next(count)
            calls.append(__name)
            if number == at_call and not after:
                raise Crash(f"before {__name}")
            result = __original(*args, **kwargs)
            if number == at_call and after:
                raise Crash(f"after {__name}")
            return result

        monkeypatch.setattr(module, name, call)
    return calls


UPLOAD_CALLS = 8  # a later upload's store calls, counted by the test below


def test_a_later_upload_makes_the_store_calls_the_crash_test_covers(history, monkeypatch):
    with monkeypatch.context() as patch:
        calls = crash_at(patch, 0, after=False)
        tollgate("deck", "upload", "acme", "cust", history("az.csv", AZ_WITHOUT_4420))
    assert calls == [
        "get_account",
        "get_account",
        "get_deck_version",
        "get_deck",
        "reserve_deck_version",
        "put_deck_upload",
        "put_deck",
        "commit_deck_version",
    ]
    assert len(calls) == UPLOAD_CALLS


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
@pytest.mark.parametrize("at_call", range(1, UPLOAD_CALLS + 1))
def test_a_crash_at_any_step_then_a_retry_leaves_one_version(history, monkeypatch, at_call, after):
    az = history("az.csv", AZ_WITHOUT_4420)
    argv = ("deck", "upload", "acme", "cust", az, "--effective", "2024-06-01")
    with monkeypatch.context() as patch:
        crash_at(patch, at_call, after=after)
        with pytest.raises(Crash):
            tollgate(*argv)
    head = accounts.get_account("acme", "cust").deck_version
    assert lake.get_deck("acme", "cust", head).num_rows  # the head's timeline is written
    assert tollgate(*argv) == 0  # the operator runs it again
    versions = accounts.list_deck_versions("acme", "cust")
    assert [v.version for v in versions[:2]] == [1, 2] and len(versions) == 3
    head = accounts.get_account("acme", "cust").deck_version
    assert head == versions[-1].version and versions[-1].base == 2
    # Exactly what a clean run writes: the deck composed onto v2, as the head's version.
    rows = parse_deck(AZ_WITHOUT_4420.encode(), source="az.csv").table
    rows = prepare(rows, effective=at("2024-06-01"), first=False)
    clean = compose(as_timeline(timeline_of(2), 2), rows, mode=FULL, effective=at("2024-06-01"))
    assert timeline_of(head).equals(clean.numbered(head))
    assert cost(LONDON, "2024-06-02") == ("44", "0.010000")
    assert cost(LONDON, "2024-05-11") == ("4420", "0.025000")


# --- moved from tests/cli/test_ops.py, and errors --------------------------------------------

DECK = (
    "prefix,destination,rate,connect_fee,increment\n"
    "44,UK,0.0123,0,60/60\n"
    "447,UK Mobile,0.05,0,1/1\n"
)


def test_deck_upload_activates_a_new_version_and_keeps_the_old_readable(acme, capsys):
    first = json_document(capsys, "deck", "upload", "acme", "cust", acme("uk.csv", DECK))
    assert (first["version"], first["active"], first["rows"], first["currency"]) == (
        1, True, 2, "USD",
    )  # fmt: skip
    grown = acme("uk.csv", DECK + "33,France,0.02,0,60/60\n")
    second = json_document(capsys, "deck", "upload", "acme", "cust", grown)
    assert (second["version"], second["added"], second["unchanged"]) == (2, 1, 2)
    assert accounts.active_deck("acme", "cust").version == 2
    assert lake.get_deck("acme", "cust", 1).num_rows == 2  # a rater on v1 still reads v1
    assert lake.get_deck("acme", "cust", 2).num_rows == 3
    meta = lake.get_deck("acme", "cust", 2).schema.metadata
    assert meta[b"tollgate.currency"] == b"USD"
    assert lake.get_deck_upload("acme", "cust", 2).num_rows == 3


def test_uploads_and_rollbacks_are_in_the_accounts_audit_trail(acme, monkeypatch):
    monkeypatch.delenv("TOLLGATE_OPERATOR", raising=False)
    uk = acme("uk.csv", DECK)
    assert tollgate("deck", "upload", "acme", "cust", uk, "--by", "alice") == 0
    assert tollgate("deck", "upload", "acme", "cust", uk, "--by", "alice") == 0  # the head
    grown = acme("uk2.csv", DECK + "33,France,0.02,0,60/60\n")
    assert tollgate("deck", "upload", "acme", "cust", grown, "--mode", "changes") == 0
    assert tollgate("deck", "rollback", "acme", "cust", "1", "--by", "bob") == 0
    entries = accounts.list_audit("acme", "account", "cust")
    assert [(e.by, e.reason, [(c.field, c.old, c.new) for c in e.changes]) for e in entries] == [
        ("alice", "deck upload uk.csv (full)", [("deck_version", None, 1)]),
        (entries[1].principal, "deck upload uk2.csv (changes)", [("deck_version", 1, 2)]),
        ("bob", "deck rollback to v1", [("deck_version", 2, 3)]),
    ]


def test_invalid_deck_names_its_lines_and_changes_nothing(acme, capsys):
    bad = acme("bad.csv", "prefix,rate\n44,0.01\n45,abc\n46,\n")
    assert tollgate("deck", "upload", "acme", "cust", bad) == 2
    error = capsys.readouterr().err
    assert "line 3" in error and "line 4" in error
    assert accounts.get_account("acme", "cust").deck_version is None
    assert accounts.list_deck_versions("acme", "cust") == []
    assert tollgate("deck", "upload", "acme", "cust", bad, "--skip-invalid") == 0
    out = capsys.readouterr().out
    assert "deck v1 of acme/cust active: full deck bad.csv" in out
    assert "1 rows in USD" in out and "skipped 2" in out


def test_deck_in_another_currency_than_the_account_is_refused(acme, capsys):
    eur = acme("eur.csv", DECK)
    assert tollgate("deck", "upload", "acme", "cust", eur, "--currency", "EUR") == 2
    assert "deck currency EUR differs" in capsys.readouterr().err
    assert accounts.list_deck_versions("acme", "cust") == []


def test_pointer_flips_only_after_the_parquet_exists(acme, monkeypatch):
    tollgate("deck", "upload", "acme", "cust", acme("uk.csv", DECK))

    def s3_down(*args, **kwargs):
        raise RuntimeError("S3 unavailable")

    grown = acme("uk2.csv", DECK + "33,France,0.02,0,60/60\n")
    with monkeypatch.context() as patch:
        patch.setattr(lake, "put_deck", s3_down)
        with pytest.raises(RuntimeError):
            tollgate("deck", "upload", "acme", "cust", grown)
    assert accounts.active_deck("acme", "cust").version == 1  # v1 still in force
    assert lake.get_deck("acme", "cust", 1).num_rows == 2

    seen = []
    commit = accounts.commit_deck_version

    def checked_commit(record, **audit):
        seen.append(lake.get_deck(record.tenant, record.account, record.version).num_rows)
        return commit(record, **audit)

    monkeypatch.setattr(accounts, "commit_deck_version", checked_commit)
    tollgate("deck", "upload", "acme", "cust", grown)
    assert seen == [3]
    assert accounts.active_deck("acme", "cust").version == 3  # v2 was reserved, never used


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("deck", "upload", "acme", "ghost", "d.csv"), "unknown account 'ghost'"),
        (("deck", "upload", "acme", "cust", "missing.csv"), "cannot read missing.csv"),
        (("deck", "upload", "acme", "cust", "{empty}"), "empty.csv: no rates to upload"),
        (("deck", "list", "acme", "ghost"), "unknown account 'ghost'"),
        (("deck", "show", "acme", "cust"), "acme/cust has no deck yet"),
        (("deck", "show", "acme", "cust", "--version", "3"), "unknown deck version 3"),
        (("deck", "rollback", "acme", "cust", "1"), "unknown deck version 1"),
        (("deck", "show", "nope", "cust"), "unknown account 'cust' in tenant 'nope'"),
    ],
)
def test_errors_name_what_is_wrong(acme, capsys, monkeypatch, tmp_path, argv, message):
    monkeypatch.chdir(tmp_path)
    Path("empty.csv").write_text("prefix,rate\n")
    argv = tuple("empty.csv" if a == "{empty}" else a for a in argv)
    assert tollgate(*argv) == 2
    assert f"tollgate: error: {message}" in capsys.readouterr().err


def test_a_prefix_must_be_digits_and_a_moment_iso(history, capsys):
    assert tollgate("deck", "show", "acme", "cust", "--prefix", "44x") == 2
    assert "invalid prefix '44x'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tollgate("deck", "show", "acme", "cust", "--at", "yesterday")
    assert "not an ISO date or datetime: 'yesterday'" in capsys.readouterr().err
