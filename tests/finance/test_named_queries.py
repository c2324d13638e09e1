"""Every named query of infra/queries/ on DuckDB over a lake whose sums are known.

Expected figures are worked out by hand from tests/finance/conftest.py's rows (tenant
alpha); tenant bravo's rows sit in the same folder with amounts that would show in any sum.
"""

from __future__ import annotations

import re
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest

from functions.invoice.lake_sql import (
    LocalLakeSql,
    named_query,
    named_query_names,
    report_sql,
    table_schema,
)
from tests.finance.conftest import INDIA, UK

D = Decimal
REQUIRED = {
    "traffic_by_customer_destination",
    "supplier_quality",
    "traffic_by_customer_destination_day",
    "margin_by_supplier",
    "top_destinations_by_margin_loss",
    "quarantine_by_reason",
    "balance_check",
    "reseller_margin",
}
MONEY = {"revenue", "cost", "margin", "margin_loss", "net_margin", "balance_effect"}


@pytest.fixture
def alpha(lake_dir):
    with LocalLakeSql("alpha", lake_dir) as sql:
        yield sql


def pick(rows, *keys):
    return [tuple(row[k] for k in keys) for row in rows]


def assert_money_types(sql: LocalLakeSql, text: str) -> None:
    """Money sums are DECIMAL with the lake's 6 places; rates 8; minutes DECIMAL(18,4)."""
    types = dict(sql.describe(text))
    for name, kind in types.items():
        if name in MONEY:
            assert re.fullmatch(r"DECIMAL\(\d+,6\)", kind), (name, kind)
        elif name.endswith("_rate"):
            assert re.fullmatch(r"DECIMAL\(\d+,8\)", kind), (name, kind)
        elif "minutes" in name and name != "acd_minutes":
            assert kind == "DECIMAL(18,4)", (name, kind)


def test_the_shipped_queries_are_there():
    assert set(named_query_names()) >= REQUIRED


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_every_named_query_keeps_money_decimal(alpha, name):
    assert_money_types(alpha, named_query(name))


def test_traffic_by_customer_destination(alpha):
    rows = alpha.named("traffic_by_customer_destination")
    got = {
        (r["customer"], r["destination"]): (
            r["attempts"],
            r["answered"],
            r["minutes"],
            r["min_rate"],
            r["max_rate"],
            r["revenue"],
            r["cost"],
            r["margin"],
        )
        for r in rows
    }
    assert got == {
        ("CUST1", INDIA): (
            4,
            3,
            D("3.6000"),
            D("0.01"),
            D("0.011"),
            D("0.037501"),
            D("0.029312"),
            D("0.008189"),
        ),
        ("CUST1", UK): (
            1,
            1,
            D("2.0000"),
            D("0.005"),
            D("0.005"),
            D("0.010000"),
            D("0.012345"),
            D("-0.002345"),
        ),
        ("CUST2", INDIA): (
            2,
            2,
            D("2.0000"),
            D("0.012"),
            D("0.012"),
            D("0.024000"),
            D("0.007001"),
            D("0.004999"),
        ),
        ("CUST2", UK): (
            1,
            1,
            D("10.0000"),
            D("0.005"),
            D("0.005"),
            D("0.050000"),
            D("0.040007"),
            D("0.009993"),
        ),
        ("CUST3", INDIA): (
            1,
            1,
            D("1.0000"),
            D("0.02"),
            D("0.02"),
            D("0.020000"),
            D("0.010001"),
            D("0.004999"),
        ),
    }
    # Exact to the last place, and with the lake's scale (not only numerically equal).
    cust1_india = next(r for r in rows if r["customer"] == "CUST1" and r["destination"] == INDIA)
    assert str(cust1_india["revenue"]) == "0.037501"
    assert cust1_india["asr"] == pytest.approx(0.75)
    assert cust1_india["acd_minutes"] == pytest.approx((61 + 6 + 90) / 3 / 60)
    # Ordered by revenue, largest first.
    assert [r["revenue"] for r in rows] == sorted((r["revenue"] for r in rows), reverse=True)


def test_traffic_by_customer_destination_day(alpha):
    rows = alpha.named("traffic_by_customer_destination_day")
    got = pick(
        rows,
        "day",
        "customer",
        "destination",
        "attempts",
        "answered",
        "minutes",
        "revenue",
        "cost",
        "margin",
    )
    assert got == [
        (
            "2024-05-01",
            "CUST1",
            INDIA,
            2,
            1,
            D("1.1000"),
            D("0.011001"),
            D("0.007702"),
            D("0.003299"),
        ),
        (
            "2024-05-01",
            "CUST1",
            UK,
            1,
            1,
            D("2.0000"),
            D("0.010000"),
            D("0.012345"),
            D("-0.002345"),
        ),
        (
            "2024-05-01",
            "CUST2",
            INDIA,
            1,
            1,
            D("1.0000"),
            D("0.012000"),
            D("0.007001"),
            D("0.004999"),
        ),
        (
            "2024-05-02",
            "CUST1",
            INDIA,
            2,
            2,
            D("2.5000"),
            D("0.026500"),
            D("0.021610"),
            D("0.004890"),
        ),
        ("2024-05-03", "CUST2", INDIA, 1, 1, D("1.0000"), D("0.012000"), None, None),
        (
            "2024-05-03",
            "CUST2",
            UK,
            1,
            1,
            D("10.0000"),
            D("0.050000"),
            D("0.040007"),
            D("0.009993"),
        ),
        (
            "2024-05-03",
            "CUST3",
            INDIA,
            1,
            1,
            D("1.0000"),
            D("0.020000"),
            D("0.010001"),
            D("0.004999"),
        ),
    ]
    assert [r["answered_seconds"] for r in rows] == [61, 120, 30, 96, 12, 600, 45]
    assert [r["billed_seconds"] for r in rows] == [66, 120, 60, 150, 60, 600, 60]
    assert rows[3]["asr"] == 1.0 and rows[3]["acd_minutes"] == pytest.approx(96 / 2 / 60)


def test_margin_by_supplier(alpha):
    rows = alpha.named("margin_by_supplier")
    got = pick(
        rows,
        "supplier",
        "supplier_currency",
        "currency",
        "calls",
        "answered",
        "minutes",
        "revenue",
        "cost",
        "margin",
        "margin_loss",
        "calls_without_margin",
    )
    assert got == [
        (
            "SUPB",
            "USD",
            "USD",
            3,
            3,
            D("13.0000"),
            D("0.070000"),
            D("0.063463"),
            D("0.006537"),
            D("-0.003456"),
            0,
        ),
        (
            "SUPA",
            "USD",
            "USD",
            5,
            4,
            D("4.6000"),
            D("0.059501"),
            D("0.035203"),
            D("0.019298"),
            None,
            0,
        ),
        (None, None, "USD", 1, 1, D("1.0000"), D("0.012000"), None, None, None, 1),
    ]
    # CUST3's reseller keeps 0.005000 of SUPA's calls: revenue - cost - margin.
    supa = rows[1]
    assert supa["revenue"] - supa["cost"] - supa["margin"] == D("0.005000")


def test_balance_check_is_what_the_rated_charges_moved_each_balance_by(alpha):
    rows = alpha.named("balance_check")
    assert pick(rows, "account", "currency", "charges", "balance_effect") == [
        ("CUST1", "USD", 1, D("-0.011001")),
        ("CUST3", "USD", 2, D("-0.030000")),
        ("RES1", "USD", 3, D("-0.027000")),
        ("RES2", "USD", 2, D("-0.019000")),
        ("SUPA", "USD", 4, D("0.023703")),
    ]


def test_reseller_margin_per_reseller_and_month(alpha):
    rows = alpha.named("reseller_margin")
    assert pick(rows, "reseller", "period", "calls", "revenue", "cost", "margin") == [
        ("RES1", "2024-05", 1, D("0.020000"), D("0.019000"), D("0.001000")),
        ("RES1", "2024-06", 1, D("0.010000"), D("0.008000"), D("0.002000")),
        ("RES2", "2024-05", 2, D("0.019000"), D("0.012000"), D("0.007000")),
        ("RES2", "2024-06", 1, D("0.008000"), D("0.007000"), D("0.001000")),
    ]


def test_top_destinations_by_margin_loss(alpha):
    rows = alpha.named("top_destinations_by_margin_loss")
    got = pick(
        rows,
        "destination",
        "loss_calls",
        "loss_minutes",
        "margin_loss",
        "net_margin",
        "revenue",
        "cost",
    )
    assert got == [
        (UK, 1, D("2.0000"), D("-0.002345"), D("0.007648"), D("0.060000"), D("0.052352")),
        (INDIA, 1, D("1.0000"), D("-0.001111"), D("0.018187"), D("0.081501"), D("0.046314")),
    ]


def test_quarantine_by_reason(alpha):
    rows = alpha.named("quarantine_by_reason")
    got = pick(rows, "reason", "field", "quarantined", "files", "first_day", "last_day")
    assert got == [
        ("bad_number", "callee", 3, 2, "2024-05-01", "2024-05-02"),
        ("column_count", "", 1, 1, "2024-05-01", "2024-05-01"),
    ]


def test_supplier_quality_counts_unrated_calls_as_attempts(alpha):
    rows = alpha.named("supplier_quality")
    got = pick(rows, "supplier", "attempts", "answered", "minutes", "cost")
    assert got == [
        ("SUPA", 6, 5, D("4.6000"), D("0.035203")),
        ("SUPB", 3, 3, D("13.0000"), D("0.063463")),
        (None, 1, 1, D("1.0000"), None),
    ]
    assert rows[0]["asr"] == pytest.approx(5 / 6)


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [
        ("2024-05-01", "2024-05-03", {("CUST1", INDIA): (D("3.6000"), D("0.037501"))}),
        ("2024-05-02", "2024-05-02", {("CUST1", INDIA): (D("2.5000"), D("0.026500"))}),
        ("2024-05-01", "2024-05-01", {("CUST1", INDIA): (D("1.1000"), D("0.011001"))}),
        ("2024-05-04", "2024-05-31", {}),
    ],
)
def test_report_sums_days_from_to_inclusive(alpha, first, last, expected):
    rows = alpha.report(first, last)
    got = {
        (r["customer"], r["destination"]): (r["minutes"], r["revenue"])
        for r in rows
        if (r["customer"], r["destination"]) == ("CUST1", INDIA)
    }
    assert got == expected
    assert_money_types(alpha, report_sql(first, last))


def test_report_over_two_days_has_every_figure(alpha):
    rows = alpha.report("2024-05-02", "2024-05-03")
    got = pick(
        rows,
        "customer",
        "destination",
        "attempts",
        "answered",
        "minutes",
        "min_rate",
        "max_rate",
        "revenue",
        "cost",
        "margin",
    )
    assert got == [
        (
            "CUST1",
            INDIA,
            2,
            2,
            D("2.5000"),
            D("0.01"),
            D("0.011"),
            D("0.026500"),
            D("0.021610"),
            D("0.004890"),
        ),
        ("CUST2", INDIA, 1, 1, D("1.0000"), D("0.012"), D("0.012"), D("0.012000"), None, None),
        (
            "CUST2",
            UK,
            1,
            1,
            D("10.0000"),
            D("0.005"),
            D("0.005"),
            D("0.050000"),
            D("0.040007"),
            D("0.009993"),
        ),
        (
            "CUST3",
            INDIA,
            1,
            1,
            D("1.0000"),
            D("0.02"),
            D("0.02"),
            D("0.020000"),
            D("0.010001"),
            D("0.004999"),
        ),
    ]
    assert rows[0]["acd_minutes"] == pytest.approx(96 / 2 / 60)


def test_report_rejects_bad_days():
    with pytest.raises(ValueError, match="after"):
        report_sql("2024-05-02", "2024-05-01")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        report_sql("2024-05-01' OR 1=1 --", "2024-05-02")


# --- tenant scope --------------------------------------------------------------------


def test_bravo_sees_only_its_own_rows(lake_dir):
    with LocalLakeSql("bravo", lake_dir) as bravo:
        rows = bravo.named("traffic_by_customer_destination")
        assert pick(rows, "customer", "destination", "revenue") == [
            ("CUST1", INDIA, D("2000.000000")),
            ("CUST9", UK, D("5.000000")),
        ]
        assert bravo.named("quarantine_by_reason")[0]["quarantined"] == 5


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) AS n FROM cdrs_rated WHERE tenant = 'bravo'",
        "SELECT count(*) AS n FROM cdrs_rated WHERE tenant <> 'alpha' OR 1 = 1 AND false",
        "SELECT count(*) AS n FROM (SELECT tenant FROM cdrs_rated UNION ALL "
        "SELECT tenant FROM cdrs_quarantine UNION ALL SELECT tenant FROM cdrs_normalized) t "
        "WHERE tenant = 'bravo'",
        "SELECT count(*) AS n FROM cdrs_rated WHERE customer_amount >= 1000",
    ],
)
def test_sql_text_cannot_widen_the_scope(alpha, sql):
    assert alpha.query(sql) == [{"n": 0}]


def test_only_the_tenants_partitions_are_registered(alpha, lake_dir):
    tenants = alpha.query(
        "SELECT DISTINCT tenant FROM cdrs_rated UNION SELECT DISTINCT tenant FROM "
        "cdrs_quarantine UNION SELECT DISTINCT tenant FROM cdrs_normalized"
    )
    assert tenants == [{"tenant": "alpha"}]
    assert all("tenant=alpha" in str(p) for files in alpha.files.values() for p in files)
    assert len(alpha.files["cdrs_rated"]) == 3
    total = alpha.query("SELECT sum(customer_amount) AS s FROM cdrs_rated")[0]["s"]
    assert total == D("0.141501")


def test_sql_cannot_open_files_or_unlock_the_engine(alpha, lake_dir):
    bravo_file = lake_dir / "rated" / "tenant=bravo" / "date=2024-05-01" / "g1.parquet"
    bravo_rows = pa.table({"x": [1]})  # a Python variable DuckDB could otherwise scan
    assert bravo_rows.num_rows == 1
    for sql in (
        f"SELECT * FROM read_parquet('{bravo_file}')",
        f"SELECT * FROM '{bravo_file}'",
        f"SELECT * FROM read_parquet('{lake_dir}/rated/**/*.parquet', hive_partitioning = true)",
        f"ATTACH '{lake_dir}/other.duckdb' AS other",
        f"COPY (SELECT 1) TO '{lake_dir}/out.csv'",
        "SET enable_external_access = true",
        "RESET lock_configuration",
        "SELECT * FROM bravo_rows",
    ):
        with pytest.raises(duckdb.Error):
            alpha.query(sql)


def test_a_tenant_without_data_gets_empty_tables(lake_dir):
    with LocalLakeSql("charlie", lake_dir) as charlie:
        assert charlie.named("traffic_by_customer_destination") == []
        assert charlie.named("quarantine_by_reason") == []
        assert dict(charlie.describe("SELECT * FROM cdrs_rated"))["customer_amount"] == (
            "DECIMAL(18,6)"
        )


def test_tables_have_the_declared_schema_plus_partitions(alpha):
    for table in ("cdrs_rated", "cdrs_normalized", "cdrs_quarantine"):
        columns = [name for name, _ in alpha.describe(f"SELECT * FROM {table}")]
        assert columns == table_schema(table).names


def test_an_invalid_tenant_is_refused(lake_dir):
    for tenant in ("../rated", "alpha/*", "", "a'b"):
        with pytest.raises(ValueError, match="tenant"):
            LocalLakeSql(tenant, lake_dir)
