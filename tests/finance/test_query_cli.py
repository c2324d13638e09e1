"""`tollgate query` and `tollgate report`, through a parser built with finance.register."""

from __future__ import annotations

import argparse
import csv
import io
import json

import pytest

from functions.cli import CliError, finance
from tests.finance.conftest import INDIA, UK


def tollgate(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="tollgate")
    finance.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.run(args)


def json_rows(text: str) -> list[dict]:
    """`--format json` prints one JSON list of row objects (it printed JSON Lines before)."""
    return json.loads(text)


# --- over a local copy (--lake-dir) ----------------------------------------------------


def test_report_json_is_one_object_per_customer_destination(lake_dir, capsys):
    assert (
        tollgate(
            "report",
            "alpha",
            "--from",
            "2024-05-02",
            "--to",
            "2024-05-03",
            "--format",
            "json",
            "--lake-dir",
            str(lake_dir),
        )
        == 0
    )
    objects = json_rows(capsys.readouterr().out)
    assert objects == [
        {
            "customer": "CUST1",
            "destination": INDIA,
            "minutes": "2.5000",
            "revenue": "0.026500",
            "cost": "0.021610",
            "margin": "0.004890",
        },
        {
            "customer": "CUST2",
            "destination": INDIA,
            "minutes": "1.0000",
            "revenue": "0.012000",
            "cost": None,
            "margin": None,
        },
        {
            "customer": "CUST2",
            "destination": UK,
            "minutes": "10.0000",
            "revenue": "0.050000",
            "cost": "0.040007",
            "margin": "0.009993",
        },
        {
            "customer": "CUST3",
            "destination": INDIA,
            "minutes": "1.0000",
            "revenue": "0.020000",
            "cost": "0.010001",
            "margin": "0.004999",
        },
    ]


@pytest.mark.parametrize(
    ("first", "last", "revenue"),
    [
        ("2024-05-01", "2024-05-01", "0.011001"),
        ("2024-05-02", "2024-05-02", "0.026500"),
        ("2024-05-01", "2024-05-02", "0.037501"),
        ("2024-04-01", "2024-05-31", "0.037501"),
    ],
)
def test_report_days_are_inclusive(lake_dir, capsys, first, last, revenue):
    tollgate(
        "report",
        "alpha",
        "--from",
        first,
        "--to",
        last,
        "--format",
        "json",
        "--lake-dir",
        str(lake_dir),
    )
    objects = json_rows(capsys.readouterr().out)
    cust1 = [o for o in objects if (o["customer"], o["destination"]) == ("CUST1", INDIA)]
    assert [o["revenue"] for o in cust1] == [revenue]


def test_report_table_has_the_invoice_shape(lake_dir, capsys):
    tollgate(
        "report", "alpha", "--from", "2024-05-01", "--to", "2024-05-03", "--lake-dir", str(lake_dir)
    )
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "traffic 2024-05-01 to 2024-05-03"
    assert lines[1].split() == [
        "customer",
        "destination",
        "calls",
        "minutes",
        "rate/min",
        "total",
        "currency",
    ]
    cust1_india = next(line for line in lines if line.startswith("CUST1") and INDIA in line)
    assert cust1_india.split()[-4:] == ["3.6000", "0.0100-0.0110", "0.037501", "USD"]
    cust1_total = next(line for line in lines if line.startswith("CUST1 total"))
    assert cust1_total.split()[-3:] == ["5.6000", "0.047501", "USD"]
    assert "CUST9" not in out and "1000.0" not in out  # bravo's


def test_report_csv_has_every_figure(lake_dir, capsys):
    tollgate(
        "report",
        "alpha",
        "--from",
        "2024-05-03",
        "--to",
        "2024-05-03",
        "--format",
        "csv",
        "--lake-dir",
        str(lake_dir),
    )
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["customer"] for r in rows] == ["CUST2", "CUST2", "CUST3"]
    assert rows[1]["revenue"] == "0.050000" and rows[1]["min_rate"] == "0.00500000"
    assert rows[0]["cost"] == ""  # no supplier cost: empty, not zero


def test_query_json_and_scope(lake_dir, capsys):
    tollgate(
        "query",
        "--tenant",
        "alpha",
        "--format",
        "json",
        "--lake-dir",
        str(lake_dir),
        "SELECT tenant, sum(customer_amount) AS revenue FROM cdrs_rated "
        "WHERE tenant IN ('alpha', 'bravo') GROUP BY tenant "
        "UNION ALL SELECT tenant, NULL FROM cdrs_quarantine WHERE tenant = 'bravo'",
    )
    assert json_rows(capsys.readouterr().out) == [{"tenant": "alpha", "revenue": "0.141501"}]


def test_query_named(lake_dir, capsys):
    tollgate(
        "query",
        "--tenant",
        "alpha",
        "--named",
        "quarantine_by_reason",
        "--format",
        "csv",
        "--lake-dir",
        str(lake_dir),
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "reason,field,quarantined,files,first_day,last_day"
    assert out[1] == "bad_number,callee,3,2,2024-05-01,2024-05-02"


def test_query_table_format(lake_dir, capsys):
    tollgate(
        "query",
        "--tenant",
        "alpha",
        "--lake-dir",
        str(lake_dir),
        "SELECT customer, sum(customer_amount) AS revenue FROM cdrs_rated "
        "WHERE status = 'rated' GROUP BY customer ORDER BY customer",
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["customer", "revenue"]
    assert lines[2].split() == ["CUST1", "0.047501"]
    assert lines[-1] == "(3 rows)"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["query", "--tenant", "alpha", "SELECT * FROM nowhere"], "query failed"),
        (
            ["query", "--tenant", "alpha", "SELECT * FROM read_parquet('/etc/passwd')"],
            "query failed",
        ),
        (["query", "--tenant", "alpha"], "SQL text or --named"),
        (["query", "--tenant", "alpha", "--named", "nope"], "unknown named query"),
        (["query", "--tenant", "../x", "SELECT 1"], "invalid tenant"),
        (["report", "alpha", "--from", "2024-05-31", "--to", "2024-05-01"], "after"),
        (["report", "alpha", "--from", "yesterday", "--to", "2024-05-01"], "YYYY-MM-DD"),
    ],
)
def test_errors_are_one_clear_line(lake_dir, argv, message):
    with pytest.raises(CliError, match=message):
        tollgate(*argv, "--lake-dir", str(lake_dir))


# --- the engine choice -------------------------------------------------------------------


def _args(*extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    finance.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["query", "--tenant", "alpha", "SELECT 1", *extra])


def test_engine_follows_the_stack(monkeypatch, tmp_path):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert finance.engine_name(_args()) == "athena"
    assert finance.engine_name(_args("--engine", "duckdb")) == "duckdb"
    assert finance.engine_name(_args("--lake-dir", str(tmp_path))) == "duckdb"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    assert finance.engine_name(_args()) == "duckdb"
    assert finance.engine_name(_args("--engine", "athena")) == "athena"
    with pytest.raises(CliError, match="lake-dir"):
        finance.engine_name(_args("--engine", "athena", "--lake-dir", str(tmp_path)))


def test_athena_engine_runs_in_the_tenants_scope(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with finance.open_engine(_args(), "alpha", "SELECT 1") as engine:
        request = engine.request("SELECT 1")
    assert (request["QueryExecutionContext"]["Database"], request["WorkGroup"]) == (
        "tollgate_t_alpha",
        "tollgate-t-alpha",
    )


# --- from the lake bucket (copy_area under in-process moto) ----------------------------


def test_report_from_s3_copies_only_the_tenants_partitions(s3_lake, capsys):
    tollgate(
        "report",
        "alpha",
        "--from",
        "2024-05-01",
        "--to",
        "2024-05-03",
        "--format",
        "json",
        "--engine",
        "duckdb",
    )
    objects = json_rows(capsys.readouterr().out)
    assert {(o["customer"], o["destination"]): o["revenue"] for o in objects} == {
        ("CUST1", INDIA): "0.037501",
        ("CUST1", UK): "0.010000",
        ("CUST2", INDIA): "0.024000",
        ("CUST2", UK): "0.050000",
        ("CUST3", INDIA): "0.020000",
    }


def test_query_from_s3_sees_one_tenant_whatever_the_sql(s3_lake, capsys):
    tollgate(
        "query",
        "--tenant",
        "bravo",
        "--engine",
        "duckdb",
        "--format",
        "json",
        "SELECT tenant, count(*) AS n FROM cdrs_rated GROUP BY tenant UNION ALL "
        "SELECT tenant, count(*) FROM cdrs_quarantine WHERE tenant = 'alpha' GROUP BY tenant",
    )
    assert json_rows(capsys.readouterr().out) == [{"tenant": "bravo", "n": 3}]


def test_copy_goes_only_to_named_tables(s3_lake, monkeypatch):
    from functions.store import lake

    copied: list[tuple[str, str]] = []
    original = lake.copy_area

    def spy(area, tenant, target):
        copied.append((area, tenant))
        return original(area, tenant, target)

    monkeypatch.setattr(lake, "copy_area", spy)
    with finance.open_engine(_args("--engine", "duckdb"), "alpha", "SELECT * FROM cdrs_quarantine"):
        pass
    assert copied == [("quarantine", "alpha")]
