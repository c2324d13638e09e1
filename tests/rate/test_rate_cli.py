"""`tollgate rate`: the offline rating command, end to end through `functions.cli.main`."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from functions.cli import main
from functions.ingest import formats
from functions.ingest.samples import generate_generic_csv
from functions.rate.samples import generate_deck_csv

HEADER = (
    "call_id,caller,callee,start_time,answer_time,end_time,billsec,disposition,customer,supplier"
)
CDRS = (
    "\n".join(
        [
            HEADER,
            "c1,15551230000,+91 70123 45678,2024-05-01T10:00:00Z,2024-05-01T10:00:05Z,"
            "2024-05-01T10:01:05Z,60,ANSWERED,acme,tata",
            "c2,15551230000,447700900123,2024-05-01T10:02:00Z,2024-05-01T10:02:05Z,"
            "2024-05-01T10:03:06Z,61,ANSWERED,acme,tata",
            "c3,15551230000,917012345678,2024-05-01T10:04:00Z,,2024-05-01T10:04:20Z,0,NO_ANSWER,acme,tata",
            "c4,15551230000,3312345678,2024-05-01T10:05:00Z,2024-05-01T10:05:05Z,"
            "2024-05-01T10:05:35Z,30,ANSWERED,acme,tata",
            "c5,15551230000,44abc,2024-05-01T10:06:00Z,,2024-05-01T10:06:10Z,0,NO_ANSWER,acme,tata",
        ]
    )
    + "\n"
)
SELL = "prefix,destination,rate,increment\n917,India - Mobile,0.008,1/1\n44,UK,0.012,60/6\n"
BUY = "prefix,destination,rate\n91,India,0.0065\n44,UK,0.006\n"


@pytest.fixture
def files(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TOLLGATE_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cdrs.csv").write_text(CDRS)
    (tmp_path / "sell.csv").write_text(SELL)
    (tmp_path / "buy.csv").write_text(BUY)
    return tmp_path


def rate(files: Path, *extra: str, out: str = "rated.csv") -> int:
    return main(
        ["rate", str(files / "cdrs.csv"), "--format", "generic",
         "--customer-deck", str(files / "sell.csv"), "--supplier-deck", str(files / "buy.csv"),
         "--out", str(files / out), *extra]
    )  # fmt: skip


def decoded(path: Path) -> pa.Table:
    """A Parquet output with its dictionary columns as plain values: each part (row group)
    carries a dictionary of its own deck rows, so only the values compare across files."""
    table = pq.read_table(path)
    fields = [
        pa.field(f.name, f.type.value_type) if pa.types.is_dictionary(f.type) else f
        for f in table.schema
    ]
    return table.cast(pa.schema(fields))


def read_csv(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_csv_output_has_one_row_per_accepted_cdr_with_plain_six_place_amounts(files, capsys):
    assert rate(files) == 0
    rows = {r["call_id"]: r for r in read_csv(files / "rated.csv")}
    assert set(rows) == {"c1", "c2", "c3", "c4"}
    c1 = rows["c1"]
    assert (c1["status"], c1["matched_prefix"]) == ("rated", "917")
    assert c1["destination"] == "India - Mobile"
    assert (c1["customer_amount"], c1["supplier_amount"], c1["margin"]) == (
        "0.008000",
        "0.006500",
        "0.001500",
    )
    assert (rows["c2"]["billed_seconds"], rows["c2"]["customer_amount"]) == ("66", "0.013200")
    assert rows["c3"]["customer_amount"] == "0.000000"  # unanswered: exactly zero
    assert (rows["c4"]["status"], rows["c4"]["reason"]) == ("unrated", "no_rate")
    [bad] = read_csv(files / "rated.quarantine.csv")
    assert (bad["line"], bad["reason"], bad["field"]) == ("6", "bad_number", "callee")
    assert bad["raw"].startswith("c5,15551230000,44abc,")
    out = capsys.readouterr().out
    assert "rows in                   5" in out
    assert "reconciles" in out
    assert "customer total        0.021200 USD" in out


def test_parquet_output_keeps_money_as_decimal128(files):
    assert rate(files, out="rated.parquet") == 0
    table = pq.read_table(files / "rated.parquet")
    assert table.schema.field("customer_amount").type == pa.decimal128(18, 6)
    assert table.schema.field("customer_rate").type == pa.decimal128(18, 8)
    amounts = dict(zip(table["call_id"].to_pylist(), table["margin"].to_pylist(), strict=True))
    assert amounts["c1"] == Decimal("0.001500")


def test_parquet_output_names_each_calls_deck_rows_from_a_dictionary_of_the_rows_used(files):
    # c1 and c3 buy India, c2 UK; c4 (33...) matches neither deck; c5 is quarantined.
    (files / "sell.csv").write_text(SELL + "49,Germany,0.01,60/6\n")  # no call uses it
    assert rate(files, out="rated.parquet") == 0
    table = pq.read_table(files / "rated.parquet")
    assert table["destination"].to_pylist() == ["India - Mobile", "UK", "India - Mobile", None]
    assert table["supplier_prefix"].to_pylist() == ["91", "44", "91", None]
    # Only the deck rows the calls use are in each dictionary (the writer stores codes).
    dictionary = table["destination"].chunk(0).dictionary.to_pylist()
    assert sorted(dictionary) == ["India - Mobile", "UK"]


def test_a_file_read_in_many_parts_rates_exactly_like_one_part(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TOLLGATE_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cdrs.csv").write_bytes(
        generate_generic_csv(3_000, seed=3, bad_fraction=0.02, duplicate_fraction=0.02)
    )
    (tmp_path / "sell.csv").write_bytes(generate_deck_csv(500, seed=1))
    (tmp_path / "buy.csv").write_bytes(generate_deck_csv(500, seed=1, india_mobile_rate="0.0065"))
    assert rate(tmp_path, "--quarantine", str(tmp_path / "q1.csv"), out="whole.parquet") == 0
    whole = capsys.readouterr().out
    monkeypatch.setattr(formats, "CHUNK_BYTES", 20_000)
    assert rate(tmp_path, "--quarantine", str(tmp_path / "q2.csv"), out="parts.parquet") == 0
    parts = capsys.readouterr().out
    assert pq.ParquetFile(tmp_path / "parts.parquet").num_row_groups > 5
    assert decoded(tmp_path / "parts.parquet").equals(decoded(tmp_path / "whole.parquet"))
    assert read_csv(tmp_path / "q1.csv") == read_csv(tmp_path / "q2.csv")

    def counts_and_totals(out: str, quarantine: str) -> list[str]:
        out = out.replace(quarantine, "Q")
        return [x for x in out.splitlines() if not x.startswith(("output", "file"))]

    assert counts_and_totals(whole, "q1.csv") == counts_and_totals(parts, "q2.csv")


def test_a_gzipped_file_rates_exactly_like_the_plain_one(files, capsys):
    import gzip

    assert rate(files, out="plain.parquet") == 0
    (files / "cdrs.csv").write_bytes(gzip.compress(CDRS.encode()))
    assert rate(files, out="gzipped.parquet") == 0
    assert pq.read_table(files / "gzipped.parquet").equals(pq.read_table(files / "plain.parquet"))


def test_rows_that_are_not_utf8_cost_only_themselves(files, capsys):
    """Issue 9 §1: one Latin-1 byte made `tollgate rate` exit 2 and rate nothing."""
    lines = CDRS.encode().split(b"\n")
    lines[2] = lines[2].replace(b",acme,", b",acm\xe9,")  # c2: Latin-1, read as Windows-1252
    lines[4] = lines[4].replace(b",acme,", b",acm\x81,")  # c4: no code page defines 0x81
    (files / "cdrs.csv").write_bytes(b"\n".join(lines))
    assert rate(files) == 0
    assert "reconciles" in capsys.readouterr().out
    rows = {r["call_id"]: r for r in read_csv(files / "rated.csv")}
    assert sorted(rows) == ["c1", "c2", "c3"]
    assert (rows["c2"]["status"], rows["c2"]["customer_amount"]) == ("rated", "0.013200")
    quarantine = read_csv(files / "rated.quarantine.csv")
    assert [(q["file"], q["line"], q["reason"]) for q in quarantine] == [
        (str(files / "cdrs.csv"), "5", "encoding"),
        (str(files / "cdrs.csv"), "6", "bad_number"),
    ]
    assert ",acm\\x81,tata" in quarantine[0]["raw"]


def test_an_empty_file_is_processed_with_nothing_to_rate(files, capsys):
    (files / "cdrs.csv").write_bytes(b"")
    assert rate(files) == 0
    out = capsys.readouterr().out
    assert "rows in                   0" in out
    assert "reconciles" in out


def test_a_deck_with_no_rows_leaves_every_call_unrated(files, capsys):
    """A deck whose rows are all gone (a header only) prices nothing: every accepted call is
    unrated, with no prefix or destination (it raised IndexError once the deck's prefixes and
    destinations were taken by code)."""
    (files / "buy.csv").write_text("prefix,destination,rate\n")
    assert rate(files, out="rated.parquet") == 0
    table = pq.read_table(files / "rated.parquet")
    assert set(table["supplier_status"].to_pylist()) == {"unrated"}
    assert table["supplier_prefix"].to_pylist() == [None] * 4
    assert table["supplier_destination"].null_count == 4
    assert table["destination"].to_pylist() == ["India - Mobile", "UK", "India - Mobile", None]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--format": "cisco"}, "unknown CDR format 'cisco'"),
        ({"cdr": "missing.csv"}, "cannot read CDR file"),
        ({"deck": "prefix,rate\n44x,0.01\n"}, "line 2"),
        ({"--supplier-currency": "EUR"}, "an FX table is required (--fx FILE)"),
        ({"--out": "rated.txt"}, "must end in .csv or .parquet"),
    ],
)
def test_bad_input_exits_2_with_one_clear_message(files, capsys, change, message):
    argv = {"--format": "generic", "--supplier-currency": "USD", "--out": "rated.csv"}
    cdr = files / "cdrs.csv"
    if "cdr" in change:
        cdr = files / change.pop("cdr")
    if "deck" in change:
        (files / "sell.csv").write_text(change.pop("deck"))
    argv |= change
    status = main(
        ["rate", str(cdr), "--format", argv["--format"], "--customer-deck", str(files / "sell.csv"),
         "--supplier-deck", str(files / "buy.csv"), "--supplier-currency",
         argv["--supplier-currency"], "--out", str(files / argv["--out"])]
    )  # fmt: skip
    assert status == 2
    assert message in capsys.readouterr().err


def test_a_supplier_deck_in_another_currency_is_converted_exactly_with_an_fx_table(files):
    (files / "fx.csv").write_text(
        "from_currency,to_currency,rate,effective_from\nEUR,USD,1.1,2024-01-01\n"
    )
    assert rate(files, "--supplier-currency", "EUR", "--fx", str(files / "fx.csv")) == 0
    c1 = {r["call_id"]: r for r in read_csv(files / "rated.csv")}["c1"]
    # 0.0065 EUR for the minute = 0.00715 USD exactly, rounded once half-up.
    assert (c1["supplier_amount"], c1["supplier_currency"]) == ("0.006500", "EUR")
    assert (c1["supplier_cost"], c1["margin"]) == ("0.007150", "0.000850")


def test_an_fx_table_quoted_the_other_way_serves_as_an_exact_inverse(files):
    (files / "fx.csv").write_text("from_currency,to_currency,rate\nUSD,EUR,0.8\n")
    assert rate(files, "--supplier-currency", "EUR", "--fx", str(files / "fx.csv")) == 0
    c1 = {r["call_id"]: r for r in read_csv(files / "rated.csv")}["c1"]
    assert c1["supplier_cost"] == "0.008125"  # 0.0065 / 0.8, exact
