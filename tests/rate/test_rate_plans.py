"""`tollgate rate --plan-deck NAME=DECK.csv --plan-rule NAME:PREFIXES`: what-if rate plans,
each call priced by the deck of the plan its calling number chooses."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal

import pyarrow.parquet as pq
import pytest

from functions.cli import CliError, build_parser, main

D = Decimal
HEADER = (
    "call_id,caller,callee,start_time,answer_time,end_time,billsec,disposition,customer,supplier"
)
# call id, caller, billsec, the plan its caller chooses
CALLS = [
    ("a", "+33145678901", 61, "ncli"),
    ("b", "0033145678901", 125, "ncli"),
    ("c", "+3361", 47, "cli"),  # 336 is longer than 33
    ("d", "4930123", 61, "eea"),
    ("e", "15551230000", 61, "default"),
    ("f", "+33145678901", 0, "ncli"),  # unanswered: 0 on any plan
]
DECKS = {
    "default": ("prefix,destination,rate,increment\n44,UK,0.012,60/6\n", D("0.012"), 60, 6),
    "cli": ("prefix,destination,rate\n44,UK CLI,0.0207\n", D("0.0207"), 1, 1),
    "ncli": ("prefix,destination,rate,increment\n44,UK NCLI,0.0043,60/60\n", D("0.0043"), 60, 60),
    "eea": ("prefix,destination,rate,increment\n44,UK EEA,0.0099,30/6\n", D("0.0099"), 30, 6),
}


def line(call_id: str, caller: str, billsec: int) -> str:
    if billsec == 0:
        start, end = "2024-05-01T10:00:00Z", "2024-05-01T10:00:09Z"
        return f"{call_id},{caller},442071234567,{start},,{end},0,NO_ANSWER,acme,bt"
    end = f"2024-05-01T10:{(5 + billsec) // 60:02d}:{(5 + billsec) % 60:02d}Z"
    return (
        f"{call_id},{caller},442071234567,2024-05-01T10:00:00Z,2024-05-01T10:00:05Z,{end},"
        f"{billsec},ANSWERED,acme,bt"
    )


def expected(plan: str, seconds: int) -> tuple[int, D]:
    """(billed seconds, amount) by the plan's deck, per call, in Decimal."""
    _, rate, first, step = DECKS[plan]
    if seconds == 0:
        return 0, D("0.000000")
    billed = first if seconds <= first else first + -(-(seconds - first) // step) * step
    return billed, (rate * billed / 60).quantize(D("0.000001"), rounding=ROUND_HALF_UP)


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.setenv("TOLLGATE_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cdrs.csv").write_text("\n".join([HEADER, *(line(*c[:3]) for c in CALLS)]) + "\n")
    for plan, (text, *_) in DECKS.items():
        (tmp_path / f"{plan}.csv").write_text(text)
    return tmp_path


def argv(files, *extra: str) -> list[str]:
    return ["rate", str(files / "cdrs.csv"), "--format", "generic", "--customer-deck",
            str(files / "default.csv"), "--out", str(files / "r.parquet"), *extra]  # fmt: skip


RULES = ("--plan-rule", "ncli:33", "--plan-rule", "cli:336", "--plan-rule", "eea:49,+43")


def test_each_call_is_priced_by_its_callers_plan_to_the_micro_unit(files, capsys):
    flags = [*RULES]
    for plan in ("cli", "ncli", "eea"):
        flags += ["--plan-deck", f"{plan}={files / f'{plan}.csv'}"]
    assert main([*argv(files, *flags), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    rows = pq.read_table(files / "r.parquet").to_pylist()
    assert [r["plan"] for r in rows] == [plan for *_, plan in CALLS]
    total = D(0)
    for row, (_, _, seconds, plan) in zip(rows, CALLS, strict=True):
        billed, amount = expected(plan, seconds)
        assert (row["billed_seconds"], row["customer_amount"]) == (billed, amount)
        assert row["destination"] == DECKS[plan][0].splitlines()[1].split(",")[1]
        total += amount
    assert D(summary["customer_total"]) == total


def test_without_plan_flags_the_output_has_no_plan_column(files):
    assert main(argv(files)) == 0
    rows = pq.read_table(files / "r.parquet")
    assert "plan" not in rows.column_names
    assert rows.column("destination").to_pylist() == ["UK"] * len(CALLS)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--plan-deck", "cli"), "use NAME=DECK.csv"),
        (("--plan-deck", "a b=x.csv"), "invalid plan id"),
        (("--plan-deck", "default=x.csv"), "already has a deck"),
        (("--plan-rule", "eea:33"), "plan 'eea' has no --plan-deck"),
        (("--plan-deck", "eea=E", "--plan-rule", "eea:3x"), "invalid caller prefix '3x'"),
        (
            ("--plan-deck", "eea=E", "--plan-rule", "eea:33", "--plan-rule", "default:33"),
            "caller prefix 33 is already plan eea",
        ),
        (("--plan-deck", "eea=missing.csv"), "cannot read deck missing.csv"),
    ],
)
def test_bad_plan_flags_name_what_is_wrong(files, extra, message):
    extra = tuple(f"eea={files / 'eea.csv'}" if e == "eea=E" else e for e in extra)
    args = build_parser("rate").parse_args(argv(files, *extra))
    with pytest.raises(CliError, match=message):
        args.run(args)
