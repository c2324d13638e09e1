"""`tollgate rate --tier`: a proposed volume contract priced offline, the file as one period.

Issue 10 §2 and §6: "0.0045/min for the first 100,000 minutes to the US, then 0.0040/min";
for 123,456.5 minutes in a month, graduated 543.83 and volume 493.83, rounded once at the
period's total. Before, `tollgate rate` knew only decks.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import ROUND_HALF_UP, Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.cli import CliError, main
from functions.rate.contracts import PeriodCounters
from functions.rate.deck import parse_deck
from functions.rate.rated import rate_cdrs
from functions.rate.rating import DeckIndex
from functions.rate.tiers import TierSchedule, parse_tiers
from functions.shared.cdr import CDR_SCHEMA
from functions.shared.money import Rounding

HEADER = (
    "call_id,caller,callee,start_time,answer_time,end_time,billsec,disposition,customer,supplier"
)
SELL = "prefix,destination,rate,increment,connect_fee\n1,USA,0.005,1/1,0.001\n44,UK,0.01,60/6,0\n"
SEED = "100000:0.0045,:0.0040"
START = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def line(call_id: str, callee: str, seconds: int, at: int) -> str:
    start = START + dt.timedelta(minutes=at)
    answer, end = start + dt.timedelta(seconds=1), start + dt.timedelta(seconds=1 + seconds)
    iso = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in (start, answer, end)]
    return f"{call_id},441234567,{callee},{iso[0]},{iso[1]},{iso[2]},{seconds},ANSWERED,acme,"


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.setenv("TOLLGATE_CACHE_DIR", str(tmp_path / "cache"))
    # 123,456.5 minutes to the US in two calls, and a UK call outside the group.
    rows = [
        line("c1", "12125550100", 7_000_000, 0),
        line("c2", "12125550101", 407_390, 1),
        line("c3", "442071234567", 60, 2),
    ]
    (tmp_path / "cdrs.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    (tmp_path / "sell.csv").write_text(SELL)
    return tmp_path


def rate_json(files, capsys, *tier: str) -> dict:
    argv = ["rate", str(files / "cdrs.csv"), "--format", "generic", "--customer-deck",
            str(files / "sell.csv"), "--out", str(files / "r.parquet"), "--decimals", "2",
            "--json"]  # fmt: skip
    for text in tier:
        argv += ["--tier", text]
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_the_seed_contract_graduated_and_volume(files, capsys):
    graduated = rate_json(files, capsys, f"us=graduated:1:{SEED}")
    assert graduated["tiers"] == [
        {"name": "us", "mode": "graduated", "billed_seconds": 7_407_390, "charged": "543.83"}
    ]
    # 543.83 for the US minutes, plus the two US connect fees (0.001 each rounded to 0.00),
    # plus the UK minute at 0.01.
    assert graduated["customer_total"] == "543.84"
    rows = pq.read_table(files / "r.parquet").to_pylist()
    assert [(r["call_id"], r["tier"], r["customer_rate"], r["customer_amount"]) for r in rows] == [
        # 116,666.67 min: 100,000 x 0.0045 + 16,666.67 x 0.0040 = 516.666...: 516.67
        ("c1", "us", Decimal("0.00400000"), Decimal("516.67")),
        # the period's rounded total less the first call's: 543.83 - 516.67
        ("c2", "us", Decimal("0.00400000"), Decimal("27.16")),
        ("c3", None, Decimal("0.01000000"), Decimal("0.01")),
    ]
    volume = rate_json(files, capsys, f"us=volume:1:{SEED}")
    assert volume["tiers"] == [
        {"name": "us", "mode": "volume", "billed_seconds": 7_407_390, "charged": "543.83",
         "true_up": "-50.00", "total": "493.83"}
    ]  # fmt: skip


def test_minute_100000_is_still_tier_1(files, capsys):
    (files / "cdrs.csv").write_text(HEADER + "\n" + line("c1", "12125550100", 6_000_000, 0) + "\n")
    result = rate_json(files, capsys, f"us=volume:1:{SEED}")
    assert result["tiers"][0]["total"] == "450.00"  # 100,000 x 0.0045: no drop to 0.0040


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("us", "use NAME=MODE:PREFIXES:TIERS"),
        ("us=weekly:1:100:0.01,:0.005", "mode"),
        ("us=graduated:1:100:0.01,50:0.005", "tier 2"),
        ("us=graduated:1a:100:0.01,:0.005", "prefix"),
    ],
)
def test_a_bad_tier_names_what_is_wrong(files, text, message):
    argv = ["rate", str(files / "cdrs.csv"), "--format", "generic", "--customer-deck",
            str(files / "sell.csv"), "--out", str(files / "r.parquet"), "--tier", text]  # fmt: skip
    from functions.cli import build_parser

    args = build_parser("rate").parse_args(argv)
    with pytest.raises(CliError, match=message):
        args.run(args)


def cdr_table(seconds: list[int]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {"line": i + 2, "call_id": f"c{i}", "caller": "441234567", "callee": "12125550100",
             "start_time": START + dt.timedelta(seconds=i), "billsec": s,
             "disposition": "ANSWERED" if s else "NO_ANSWER", "customer": "acme",
             "supplier": None}
            for i, s in enumerate(seconds)
        ],
        schema=CDR_SCHEMA,
    )  # fmt: skip


def reference(total_seconds: int, mode: str, decimals: int) -> Decimal:
    """The contract as typed: Decimal, divided by 60 last (so a half stays a half), rounded
    once at the total."""
    seconds, bound = Decimal(total_seconds), Decimal(100_000 * 60)
    if mode == "volume":
        rate = Decimal("0.0045") if seconds <= bound else Decimal("0.0040")
        exact = seconds * rate / 60
    else:
        first = min(seconds, bound)
        exact = (first * Decimal("0.0045") + (seconds - first) * Decimal("0.0040")) / 60
    return exact.quantize(Decimal(1).scaleb(-decimals), ROUND_HALF_UP)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 900_000), min_size=1, max_size=30),
    st.integers(1, 5),
    st.sampled_from(["graduated", "volume"]),
    st.integers(0, 6),
    st.randoms(use_true_random=False),
)
def test_a_period_costs_its_contract_price_however_its_calls_are_split_and_ordered(
    seconds, parts, mode, decimals, rnd
):
    """Any split of the file into parts, in any order: the calls plus the true-up add up to
    the contract's price of the total, rounded once; no call costs less than zero."""
    deck = deck_index(SELL.replace(",0.001", ",0"))
    schedule = TierSchedule("us", ("1",), mode, parse_tiers(SEED))
    rounding = Rounding(decimals)
    table = cdr_table(seconds)
    order = list(range(len(seconds)))
    rnd.shuffle(order)
    counters, charged = PeriodCounters(), Decimal(0)
    cuts = sorted(rnd.sample(range(1, len(order)), min(parts - 1, len(order) - 1)))
    for lo, hi in zip([0, *cuts], [*cuts, len(order)], strict=True):
        part = table.take(pa.array(order[lo:hi], pa.int64()))
        rated = rate_cdrs(part, deck, rounding=rounding, tiers=[schedule], counters=counters)
        amounts = rated.column("customer_amount").to_pylist()
        assert all(a >= 0 for a in amounts)
        charged += sum(amounts, Decimal(0))
    true_up = Decimal(counters.true_ups([schedule], rounding).get("us", 0)).scaleb(-decimals)
    assert charged + true_up == reference(sum(seconds), mode, decimals)


def deck_index(text: str) -> DeckIndex:
    return DeckIndex.build(parse_deck(text.encode()).table, "USD")


def test_a_graced_tier_call_pays_no_connect_fee():
    """A call within the entry's free seconds costs nothing on the tier path too (the fee was
    charged from the deck's raw connect fee, ignoring the grace)."""
    deck = deck_index("prefix,rate,connect_fee,free_seconds\n1,0.005,0.01,6\n")
    schedule = TierSchedule("us", ("1",), "graduated", parse_tiers(SEED))
    rated = rate_cdrs(cdr_table([6, 7]), deck, rounding=Rounding(6), tiers=[schedule])
    # 6 s: graced, 0. 7 s: 7 x 0.0045/60 = 0.000525 plus the 0.01 connect fee.
    assert rated.column("customer_amount").to_pylist() == [Decimal("0"), Decimal("0.010525")]
