"""infra/glue.yaml: the Glue tables over the lake, the workgroup, the named queries; and the
per-tenant Athena scope of functions/store/athena.py (run as far as this machine allows)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import boto3
import pyarrow as pa
import pytest
import yaml

from functions.invoice.lake_sql import (
    PARTITION_COLUMNS,
    TABLES,
    arrow_type,
    named_query,
    named_query_names,
)
from functions.store import athena

GLUE_PATH = Path(__file__).resolve().parents[2] / "infra" / "glue.yaml"
TEMPLATE = yaml.safe_load(GLUE_PATH.read_text())
RESOURCES = TEMPLATE["Resources"]


def resources(kind: str) -> dict[str, dict]:
    return {k: r["Properties"] for k, r in RESOURCES.items() if r["Type"] == kind}


def table_inputs() -> dict[str, dict]:
    return {
        p["TableInput"]["Name"]: p["TableInput"] for p in resources("AWS::Glue::Table").values()
    }


def render(value, **parameters: str):
    """A template value with Fn::Sub / Ref resolved the way CloudFormation does."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        text = value["Fn::Sub"]
        for name, replacement in parameters.items():
            text = text.replace("${" + name + "}", replacement)
        assert "${" not in text.replace("${!", ""), f"unresolved: {text}"
        return text.replace("${!", "${")
    if isinstance(value, dict) and "Ref" in value:
        return parameters[value["Ref"]]
    if isinstance(value, dict):
        return {k: render(v, **parameters) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, **parameters) for v in value]
    return value


PARAMETERS = {
    "LakeBucketName": "tollgate-lake",
    "ProjectionStartDate": "2020-01-01",
    "LakeDatabase": "tollgate",
    "AWS::AccountId": "123456789012",
}


def test_cfn_lint_passes():
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run(
        [str(cfn_lint), str(GLUE_PATH)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_four_tables_over_their_lake_areas():
    inputs = table_inputs()
    assert set(inputs) == set(TABLES)
    for name, table in inputs.items():
        area, columns = TABLES[name]
        rendered = render(table, **PARAMETERS)
        assert rendered["TableType"] == "EXTERNAL_TABLE"
        storage = rendered["StorageDescriptor"]
        assert storage["Location"] == f"s3://tollgate-lake/{area}/"
        assert storage["SerdeInfo"]["SerializationLibrary"] == (
            "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
        )
        assert storage["InputFormat"].endswith("MapredParquetInputFormat")
        assert [(c["Name"], c["Type"]) for c in storage["Columns"]] == [
            (c.name, c.type) for c in columns
        ]
        assert all(c["Comment"] for c in storage["Columns"])
        assert [(c["Name"], c["Type"]) for c in rendered["PartitionKeys"]] == [
            ("tenant", "string"),
            ("date", "string"),
        ]


def test_partition_projection_needs_no_crawler():
    for name, table in table_inputs().items():
        area, _ = TABLES[name]
        parameters = render(table["Parameters"], **PARAMETERS)
        assert parameters["projection.enabled"] == "true"
        assert parameters["projection.tenant.type"] == "injected"
        assert parameters["projection.date.type"] == "date"
        assert parameters["projection.date.format"] == "yyyy-MM-dd"
        assert parameters["projection.date.range"] == "2020-01-01,NOW"
        assert parameters["storage.location.template"] == (
            f"s3://tollgate-lake/{area}/tenant=${{tenant}}/date=${{date}}/"
        )


def test_the_location_template_is_the_lake_adapters_key():
    from functions.store.lake import table_key

    template = render(table_inputs()["cdrs_rated"]["Parameters"], **PARAMETERS)[
        "storage.location.template"
    ]
    folder = template.replace("${tenant}", "acme").replace("${date}", "2024-05-01")
    key = table_key("rated", "acme", "2024-05-01", "f1")
    assert f"s3://tollgate-lake/{key}".startswith(folder)


def test_money_and_rates_are_decimal():
    rated = {
        c["Name"]: c["Type"] for c in table_inputs()["cdrs_rated"]["StorageDescriptor"]["Columns"]
    }
    money = [n for n in rated if n.endswith(("_amount", "_margin", "_surcharge")) or n == "margin"]
    assert money == ["customer_amount", "customer_surcharge", "supplier_amount", "margin"]
    assert {rated[n] for n in money} == {"decimal(18,6)"}
    assert {rated[n] for n in rated if n.endswith("_rate")} == {"decimal(18,8)"}
    charges = {
        c["Name"]: c["Type"] for c in table_inputs()["cdrs_charges"]["StorageDescriptor"]["Columns"]
    }
    assert (charges["amount"], charges["rate"]) == ("decimal(18,6)", "decimal(18,8)")


def test_glue_columns_are_what_the_pipeline_writes():
    """The declared columns equal the Parquet the rate and ingest services write."""
    from functions.rate.parties import Account, Parties, rate_parties
    from functions.rate.rating import DeckIndex
    from functions.shared.cdr import CDR_SCHEMA, QUARANTINE_SCHEMA
    from tests.rate.reference import Entry, deck_table

    t0 = datetime(2024, 5, 1, 12, tzinfo=UTC)
    cdrs = pa.Table.from_pylist(
        [
            {
                "line": 2,
                "call_id": "c1",
                "caller": "1",
                "callee": "917001",
                "start_time": t0,
                "billsec": 61,
                "disposition": "ANSWERED",
                "customer": "acme",
                "supplier": "tata",
            }
        ],
        schema=CDR_SCHEMA,
    )
    deck = DeckIndex.build(deck_table([Entry("917", Decimal("0.01"))]), "USD")
    parties = Parties(
        {"acme": Account("acme", "customer"), "tata": Account("tata", "supplier")},
        {"acme": deck, "tata": deck},
    )
    result = rate_parties(cdrs, parties, "f1")
    written = {
        "cdrs_rated": result.rated.schema,
        "cdrs_charges": result.charges.schema,
        "cdrs_normalized": CDR_SCHEMA,
        "cdrs_quarantine": pa.schema([pa.field("file", pa.string()), *QUARANTINE_SCHEMA]),
    }
    for name, table in table_inputs().items():
        declared = [
            (c["Name"], arrow_type(c["Type"])) for c in table["StorageDescriptor"]["Columns"]
        ]
        # Few-valued labels are dictionary-encoded in memory; Parquet and Athena see strings.
        plain = [
            (f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
            for f in written[name]
        ]
        assert declared == plain, name


def test_named_queries_are_the_sql_files():
    queries = resources("AWS::Athena::NamedQuery")
    by_name = {p["Name"]: p for p in queries.values()}
    assert set(by_name) == set(named_query_names())
    for name, query in by_name.items():
        assert query["QueryString"] == named_query(name), f"{name}: edit infra/queries/{name}.sql"
        assert query["Database"] == {"Ref": "LakeDatabase"}
        assert query["WorkGroup"] == {"Ref": "OperatorsWorkGroup"}


def test_the_operators_workgroup_enforces_its_settings():
    (workgroup,) = resources("AWS::Athena::WorkGroup").values()
    configuration = render(workgroup["WorkGroupConfiguration"], **PARAMETERS)
    assert configuration["EnforceWorkGroupConfiguration"] is True
    assert configuration["ResultConfiguration"]["OutputLocation"] == (
        "s3://tollgate-lake/athena-results/operators/"
    )


def test_the_table_inputs_are_valid_glue_requests(aws):
    """botocore validates each TableInput against the Glue API model; moto stores it."""
    from functions.store import client

    glue = client("glue")
    glue.create_database(DatabaseInput={"Name": "tollgate"})
    for table in table_inputs().values():
        glue.create_table(DatabaseName="tollgate", TableInput=render(table, **PARAMETERS))
    stored = glue.get_table(DatabaseName="tollgate", Name="cdrs_rated")["Table"]
    assert stored["Parameters"]["projection.tenant.type"] == "injected"
    assert [k["Name"] for k in stored["PartitionKeys"]] == [c.name for c in PARTITION_COLUMNS]


# --- the per-tenant scope on Athena ------------------------------------------------------


def test_tenant_names_are_distinct_and_valid():
    tenants = ["acme", "Acme", "a-b", "a_b", "a.b", "a_2db"]
    databases = [athena.tenant_database(t) for t in tenants]
    assert len(set(databases)) == len(tenants)
    assert all(athena.check_database(d) for d in databases)
    assert athena.tenant_database("acme") == "tollgate_t_acme"
    assert athena.tenant_workgroup("acme") == "tollgate-t-acme"
    for bad in ("x' OR tenant <> '", "a*", "a/b", "${aws:username}"):
        with pytest.raises(ValueError):
            athena.tenant_table_inputs(bad)
    with pytest.raises(ValueError):
        athena.tenant_workgroup("acme", prefix="*")


def test_a_tenants_tables_are_the_base_tables_over_its_own_prefixes():
    """Same columns, formats and projection as infra/glue.yaml's tables, but each table's
    location is the tenant's prefix and `tenant` an enum of that one tenant: Athena cannot
    project a partition of anyone else (and the tenant's role could not read it)."""
    base = {name: render(t, **PARAMETERS) for name, t in table_inputs().items()}
    for table in athena.tenant_table_inputs("a.b-2", lake_bucket="tollgate-lake"):
        area, _ = TABLES[table["Name"]]
        same = base[table["Name"]]
        assert table["TableType"] == same["TableType"]
        assert table["StorageDescriptor"]["Location"] == f"s3://tollgate-lake/{area}/tenant=a.b-2/"
        assert {k: v for k, v in table["StorageDescriptor"].items() if k != "Location"} == {
            k: v for k, v in same["StorageDescriptor"].items() if k != "Location"
        }
        assert [(k["Name"], k["Type"]) for k in table["PartitionKeys"]] == [
            (k["Name"], k["Type"]) for k in same["PartitionKeys"]
        ]
        parameters, base_parameters = table["Parameters"], same["Parameters"]
        assert parameters.pop("projection.tenant.type") == "enum"
        assert parameters.pop("projection.tenant.values") == "a.b-2"
        assert parameters.pop("tollgate:tenant") == "a.b-2"
        assert base_parameters.pop("projection.tenant.type") == "injected"
        assert parameters == base_parameters


def test_athena_request_runs_the_sql_unchanged_in_the_tenants_scope():
    from botocore.validate import validate_parameters

    sql = "SELECT count(*) FROM cdrs_rated WHERE tenant = 'bravo'"
    request = athena.AthenaSql("alpha").request(sql)
    model = boto3.client("athena", region_name="us-east-1").meta.service_model
    validate_parameters(request, model.operation_model("StartQueryExecution").input_shape)
    assert request == {
        "QueryString": sql,
        "QueryExecutionContext": {"Database": "tollgate_t_alpha"},
        "WorkGroup": "tollgate-t-alpha",
    }
    other = athena.AthenaSql("alpha", database="billing", workgroup_prefix="tg").request(sql)
    assert (other["QueryExecutionContext"]["Database"], other["WorkGroup"]) == (
        "billing_t_alpha",
        "tg-t-alpha",
    )


def test_athena_results_come_back_typed_money_as_decimal(aws):
    """Athena answers text; the column types make it exact values (moto queues the answer)."""
    import datetime as dt
    from decimal import Decimal

    from moto.athena.models import QueryResults, athena_backends

    columns = [
        {"Name": n, "Type": t}
        for n, t in (
            ("account", "varchar"),
            ("calls", "bigint"),
            ("amount", "decimal(18,6)"),
            ("start_time", "timestamp"),
            ("asr", "double"),
        )
    ]

    def row(*values):
        return {"Data": [{} if v is None else {"VarCharValue": v} for v in values]}

    boto3.client("athena").create_work_group(Name="tollgate-t-alpha")
    backend = athena_backends["123456789012"]["us-east-1"]
    backend.query_results_queue.append(
        QueryResults(
            rows=[
                row("account", "calls", "amount", "start_time", "asr"),
                row("ACME", "12", "100.000001", "2026-03-31 22:00:00.000", "0.5"),
                row("BETA", "0", None, None, None),
            ],
            column_info=columns,
        )
    )
    rows = athena.AthenaSql("alpha")._run(boto3.session.Session(), "SELECT 1")
    assert rows == [
        {
            "account": "ACME",
            "calls": 12,
            "amount": Decimal("100.000001"),
            "start_time": dt.datetime(2026, 3, 31, 22, 0, tzinfo=dt.UTC),
            "asr": 0.5,
        },
        {"account": "BETA", "calls": 0, "amount": None, "start_time": None, "asr": None},
    ]


def test_provision_tenant_creates_its_database_tables_workgroup_and_role(aws):
    """Under moto: Glue, the workgroup and the IAM role are real state."""
    from functions.store import client

    for _ in range(2):  # idempotent
        scope = athena.provision_tenant("acme")
    assert scope == athena.TenantScope(
        "acme",
        "tollgate_t_acme",
        "tollgate-t-acme",
        "arn:aws:iam::123456789012:role/tollgate/query/tollgate-query-acme",
    )
    glue = client("glue")
    assert glue.get_database(Name="tollgate_t_acme")["Database"]["Parameters"] == {
        "tollgate:tenant": "acme"
    }
    stored = {t["Name"]: t for t in glue.get_tables(DatabaseName="tollgate_t_acme")["TableList"]}
    assert set(stored) == set(TABLES)
    for name, table in stored.items():
        area, _ = TABLES[name]
        assert table["StorageDescriptor"]["Location"] == f"s3://tollgate-lake/{area}/tenant=acme/"
        assert table["Parameters"]["projection.tenant.values"] == "acme"
    workgroup = client("athena").get_work_group(WorkGroup="tollgate-t-acme")["WorkGroup"]
    configuration = workgroup["Configuration"]
    assert configuration["EnforceWorkGroupConfiguration"] is True
    assert configuration["ResultConfiguration"]["OutputLocation"] == (
        "s3://tollgate-lake/athena-results/tenant=acme/"
    )
    role = client("iam").get_role(RoleName="tollgate-query-acme")["Role"]
    assert {t["Key"]: t["Value"] for t in role["Tags"]} == {
        "tollgate:tenant": "acme",
        "tollgate:access": "query",
    }


def test_provision_tenant_turns_the_earlier_views_into_tables(aws):
    from functions.store import client

    glue = client("glue")
    glue.create_database(
        DatabaseInput={"Name": "tollgate_t_acme", "Parameters": {"tollgate:tenant": "acme"}}
    )
    glue.create_table(
        DatabaseName="tollgate_t_acme",
        TableInput={"Name": "cdrs_rated", "TableType": "VIRTUAL_VIEW", "ViewOriginalText": "x"},
    )
    athena.provision_tenant("acme")
    table = glue.get_table(DatabaseName="tollgate_t_acme", Name="cdrs_rated")["Table"]
    assert table["TableType"] == "EXTERNAL_TABLE"


def test_provision_tenant_refuses_a_database_or_workgroup_it_did_not_make(aws):
    from functions.store import ConflictError, client

    client("glue").create_database(
        DatabaseInput={"Name": "tollgate_t_acme", "Parameters": {"tollgate:tenant": "other"}}
    )
    with pytest.raises(ConflictError, match="tollgate_t_acme"):
        athena.provision_tenant("acme")
    client("athena").create_work_group(
        Name="tollgate-t-globex",
        Configuration={"ResultConfiguration": {"OutputLocation": "s3://elsewhere/"}},
    )
    with pytest.raises(ConflictError, match="tollgate-t-globex"):
        athena.provision_tenant("globex")


def test_every_column_is_documented_in_the_readme_and_every_named_query_in_the_lake_doc():
    readme = (GLUE_PATH.parents[1] / "README.md").read_text()
    for _, columns in TABLES.values():
        for column in (*columns, *PARTITION_COLUMNS):
            assert f"| `{column.name}` | {column.type} | {column.comment} |" in readme
    doc = (GLUE_PATH.parents[1] / "docs" / "lake.md").read_text()
    for name in named_query_names():
        assert f"`{name}`" in doc
