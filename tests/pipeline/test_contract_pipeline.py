"""Issue 10 §2-§3 through the pipeline: tiers and bundles priced as files arrive, exactly once.

The direct customer buys India mobile (917) by the tier and the UK (44) with a bundle. Its
deck sells 917 at 0.008/min per second and 44 at 0.012/min in 60/6 increments; the tiers
replace the 917 rate, the bundle includes UK minutes.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from functions.rate.contracts import Counter, CounterKey
from functions.store import files, lake, ledger
from tests.pipeline.carrier import (
    DAY,
    HEADER,
    TENANT,
    cdr_line,
    drop,
    ingest_drop,
    rate_ingested,
    run,
    set_up_carrier,
)


def cdr_file(*lines: str) -> str:
    return "\n".join([HEADER, *lines]) + "\n"


# Two files of India mobile calls, 190 billed seconds in all (the deck bills per second).
FILE_A = cdr_file(
    cdr_line("a1", "direct", "tata", "917012345601", 40),
    cdr_line("a2", "direct", "tata", "917012345602", 50, minute=1),
)
FILE_B = cdr_file(
    cdr_line("b1", "direct", "tata", "917012345603", 30, minute=2),
    cdr_line("b2", "direct", "tata", "917012345604", 70, minute=3),
)
# The first minute of the month at 0.0060, then 0.0050: F(190 s) = 0.006 + 130 x 0.005 / 60
# = 0.0168333..., charged 0.016833 over the month whatever the order of the files.
GRADUATED_TOTAL = 16_833
KEY = CounterKey("direct", "tier", "india", "2024-05")


def tier(mode: str, tiers: str = "1:0.0060,:0.0050") -> None:
    run("tier", "set", TENANT, "direct", "india", "--prefixes", "917", "--mode", mode,
        "--tiers", tiers)  # fmt: skip


def process(name: str, text: str) -> str:
    dropped = drop(name, text)
    ingest_drop(dropped)
    rate_ingested(dropped.file_id)
    return dropped.file_id


def tier_charges(file_id: str) -> list[tuple[str, str, Decimal, Decimal]]:
    charges = lake.get_table("charges", TENANT, DAY, file_id).to_pylist()
    return sorted(
        (r["call_id"], r["component"], r["rate"], r["amount"])
        for r in charges
        if r["account"] == "direct"
    )


@pytest.mark.parametrize("order", ["ab", "ba"])
def test_a_months_graduated_total_is_the_contracts_whatever_the_order_of_its_files(
    aws, tmp_path, order
):
    set_up_carrier(tmp_path)
    tier("graduated")
    texts = {"a": FILE_A, "b": FILE_B}
    ids = {name: process(f"{name}.csv", texts[name]) for name in order}
    assert ledger.get_balance(TENANT, "direct")[0] == -GRADUATED_TOTAL
    assert files.read_counter(TENANT, KEY) == Counter(190, GRADUATED_TOTAL, 2)
    # The supplier's side is the deck's as before: 190 s at 0.0065.
    assert ledger.get_balance(TENANT, "tata")[0] == 20_583
    if order == "ab":  # A first: its 90 s start the month, 60 s in tier 1
        assert tier_charges(ids["a"]) == [
            ("a1", "tier", Decimal("0.00600000"), Decimal("0.004000")),
            ("a2", "tier", Decimal("0.00500000"), Decimal("0.004500")),
        ]


def test_a_redelivered_file_counts_once_on_the_counter_and_the_balance(aws, tmp_path):
    set_up_carrier(tmp_path)
    tier("graduated")
    dropped = drop("a.csv", FILE_A)
    for _ in range(2):
        ingest_drop(dropped)
        rate_ingested(dropped.file_id)
    process("b.csv", FILE_B)
    assert files.read_counter(TENANT, KEY).seconds == 190
    assert ledger.get_balance(TENANT, "direct")[0] == -GRADUATED_TOTAL


def test_a_file_whose_counter_moved_before_its_commit_is_priced_again(aws, tmp_path):
    set_up_carrier(tmp_path)
    tier("graduated")
    first, second = drop("a.csv", FILE_A), drop("b.csv", FILE_B)
    ingest_drop(first)
    ingest_drop(second)
    attempts = []

    class Overtaken:
        """The files port of A's run: B is rated and commits while A is about to commit."""

        def __getattr__(self, name):
            return getattr(files, name)

        def commit_pricing_run(self, tenant, file_id, run, moves=()):
            attempts.append([m.read.seconds for m in moves])
            if len(attempts) == 1:
                assert rate_ingested(second.file_id).status == "done"
            return files.commit_pricing_run(tenant, file_id, run, moves)

    assert rate_ingested(first.file_id, files=Overtaken()).status == "done"
    # A read the counter at 0, lost to B, and was priced again from B's 100 s.
    assert attempts == [[0], [100]]
    assert files.read_counter(TENANT, KEY) == Counter(190, GRADUATED_TOTAL, 2)
    assert ledger.get_balance(TENANT, "direct")[0] == -GRADUATED_TOTAL


def test_volume_tiers_are_provisional_until_close_then_trued_up_once(aws, tmp_path, capsys):
    set_up_carrier(tmp_path)
    # Up to 1 minute 0.006, up to 2 minutes 0.005, beyond 0.004 (volume: the tier reached
    # prices every second of the month).
    tier("volume", "1:0.0060,2:0.0050,:0.0040")
    process("a.csv", FILE_A)  # 90 s: charged F(90) = 0.006 + 30 x 0.005 / 60 = 0.0085
    assert ledger.get_balance(TENANT, "direct")[0] == -8_500
    capsys.readouterr()
    run("tier", "close", TENANT, "--period", "2024-05", "--json")
    (closed,) = json.loads(capsys.readouterr().out)
    # V(90) = 90 x 0.005 / 60 = 0.0075: 0.001 back.
    assert (closed["final"], closed["true_up"], closed["reference"], closed["recorded"]) == (
        "0.007500", "-0.001000", "tier:2024-05:direct:india", True
    )  # fmt: skip
    assert ledger.get_balance(TENANT, "direct")[0] == -7_500
    run("tier", "close", TENANT, "--period", "2024-05", "--json")
    (again,) = json.loads(capsys.readouterr().out)
    assert (again["true_up"], again["reference"], again["recorded"]) == ("0.000000", None, False)
    assert ledger.get_balance(TENANT, "direct")[0] == -7_500

    process("b.csv", FILE_B)  # late traffic: 190 s in all, the last tier: V = 0.012666...
    run("tier", "close", TENANT, "--period", "2024-05", "--json")
    (late,) = json.loads(capsys.readouterr().out)
    assert (late["final"], late["reference"]) == ("0.012667", "tier:2024-05:direct:india:2")
    assert ledger.get_balance(TENANT, "direct")[0] == -12_667
    run("tier", "show", TENANT, "direct", "india", "--period", "2024-05", "--json")
    shown = json.loads(capsys.readouterr().out)
    assert shown["total"] == "0.012667"
    assert [(t["minutes"], t["amount"]) for t in shown["tiers"]] == [
        ("0.00", "0.000000"), ("0.00", "0.000000"), ("3.17", "0.012667")
    ]  # fmt: skip
    assert shown["owed_at_close"] == "0.000000"


def test_a_close_that_stopped_after_deciding_finishes_with_the_same_reference(aws, tmp_path):
    set_up_carrier(tmp_path)
    tier("volume", "1:0.0060,2:0.0050,:0.0040")
    process("a.csv", FILE_A)
    from functions.rate.tier_close import close_period
    from functions.store import accounts

    class Crashing:
        """The ledger port crashes once, after the close recorded its intent."""

        crashed = False

        def __getattr__(self, name):
            return getattr(ledger, name)

        def record_true_up(self, *args, **kw):
            if not Crashing.crashed:
                Crashing.crashed = True
                raise ConnectionError("lost the ledger")
            return ledger.record_true_up(*args, **kw)

    with pytest.raises(ConnectionError):
        close_period(TENANT, "2024-05", files=files, accounts=accounts, ledger=Crashing())
    assert files.get_counter(TENANT, KEY).closing["reference"] == "tier:2024-05:direct:india"
    process("b.csv", FILE_B)  # traffic arrives before the close is run again
    done = close_period(TENANT, "2024-05", files=files, accounts=accounts, ledger=Crashing())
    # The decided true-up (-0.001 at 90 s) is posted under its reference first; then, at
    # 190 s: V = 0.012667, charged F = 0.015667, so 0.002 more comes back.
    assert [(t.amount, t.reference) for t in done] == [(-2_000, "tier:2024-05:direct:india:2")]
    assert ledger.get_balance(TENANT, "direct")[0] == -12_667


def test_a_bundle_includes_its_minutes_then_the_deck_prices_the_rest(aws, tmp_path, capsys):
    set_up_carrier(tmp_path)
    run("bundle", "set", TENANT, "direct", "uk-pack", "--prefixes", "44", "--minutes", "2",
        "--fee", "5.00", "--from", "2024-05-17")  # fmt: skip
    # 60/6 increments: 61 s bills 66. 120 s included: the first call inside, the second
    # crosses (12 s beyond at 0.012/min = 0.0024), the third beyond (66 s: 0.0132).
    text = cdr_file(
        cdr_line("u1", "direct", "bt", "442071234501", 61),
        cdr_line("u2", "direct", "bt", "442071234502", 61, minute=1),
        cdr_line("u3", "direct", "bt", "442071234503", 61, minute=2),
    )
    file_id = process("uk.csv", text)
    assert tier_charges(file_id) == [
        ("u1", "bundle", Decimal("0.01200000"), Decimal("0.000000")),
        ("u2", "bundle", Decimal("0.01200000"), Decimal("0.002400")),
        ("u3", "usage", Decimal("0.01200000"), Decimal("0.013200")),
    ]
    assert files.read_counter(TENANT, CounterKey("direct", "bundle", "uk-pack", "2024-05")) == (
        Counter(198, 0, 1)
    )
    # The fee: 15 of May's 31 days, 5.00 x 15 / 31 = 2.419354838... -> 2.419355.
    run("recurring", "run", TENANT, "--period", "2024-05")
    assert ledger.get_balance(TENANT, "direct")[0] == -(2_400 + 13_200 + 2_419_355)
    capsys.readouterr()
    run("bundle", "list", TENANT, "direct", "--json")
    assert json.loads(capsys.readouterr().out) == [
        {"tenant": TENANT, "account": "direct", "name": "uk-pack", "prefixes": ["44"],
         "minutes": "2.00", "fee": "5.000000", "from": "2024-05-17"}
    ]  # fmt: skip


def test_re_rating_prices_tier_calls_from_where_their_file_started(aws, tmp_path):
    set_up_carrier(tmp_path)
    tier("graduated")
    first, second = process("a.csv", FILE_A), process("b.csv", FILE_B)
    before = {f: tier_charges(f) for f in (first, second)}
    # The supplier's price changes; the customer's deck for 917 too, which its tier replaces.
    (tmp_path / "tata2.csv").write_text("prefix,destination,rate\n91,India,0.0060\n")
    run("deck", "upload", TENANT, "tata", str(tmp_path / "tata2.csv"), "--effective", "2024-01-01")
    (tmp_path / "direct2.csv").write_text(
        "prefix,destination,rate,increment\n917,India - Mobile,0.009,1/1\n44,UK,0.012,60/6\n"
    )
    run("deck", "upload", TENANT, "direct", str(tmp_path / "direct2.csv"),
        "--effective", "2024-01-01")  # fmt: skip
    run("rerate", TENANT, "--from", "2024-05-01", "--to", "2024-05-01")
    # B's calls are priced again from the 90 s A left, not from 0: nothing moves for direct.
    assert {f: tier_charges(f) for f in (first, second)} == before
    assert ledger.get_balance(TENANT, "direct")[0] == -GRADUATED_TOTAL
    # 190 s at 0.0060 per call: 0.004 + 0.005 + 0.003 + 0.007.
    assert ledger.get_balance(TENANT, "tata")[0] == 19_000
    assert files.read_counter(TENANT, KEY) == Counter(190, GRADUATED_TOTAL, 2)


def test_the_month_end_job_closes_the_month_and_the_one_before_it_again(aws, tmp_path):
    from functions.invoice.handler import handle_month_end
    from tests.cli.test_products import schedule_event

    set_up_carrier(tmp_path)
    tier("volume", "1:0.0060,2:0.0050,:0.0040")
    process("a.csv", FILE_A)  # 90 s in May: charged 0.0085, the contract's 0.0075
    summary = handle_month_end(schedule_event("2024-06-01T02:00:00Z"), None)
    assert (summary["period"], summary["true_ups"], summary["true_up_amount"]) == (
        "2024-05", 1, "-0.001000"
    )  # fmt: skip
    assert ledger.get_balance(TENANT, "direct")[0] == -7_500
    process("b.csv", FILE_B)  # late May traffic, after the close
    summary = handle_month_end(schedule_event("2024-07-01T02:00:00Z"), None)
    assert (summary["true_ups"], summary["true_up_amount"]) == (1, "-0.002000")
    assert ledger.get_balance(TENANT, "direct")[0] == -12_667
    assert handle_month_end(schedule_event("2024-07-01T02:00:00Z"), None)["true_ups"] == 0
