"""Athena over the lake, scoped to one tenant by AWS itself: a database, a workgroup, a role.

The Glue tables of infra/glue.yaml (`{database}.cdrs_rated`, `cdrs_charges`,
`cdrs_normalized`, `cdrs_quarantine`) hold every tenant and are the operators'. A tenant's
queries never run against them. `provision_tenant` gives each tenant:

- a Glue database `{database}_t_{tenant}` holding the four tables under the same names, each
  over the tenant's own lake prefix (`rated/tenant=T/`, ...) with partition projection as
  the base tables, except that `tenant` is an enum of one value: T. The SQL text that DuckDB
  runs locally (`SELECT ... FROM cdrs_rated`) runs here unchanged, with that database as the
  query's context;
- a workgroup `{prefix}-t-{tenant}` (tag `tollgate:tenant`) whose enforced settings put the
  results under `s3://{lake}/athena-results/tenant={tenant}/`;
- a query role (functions.shared.policies.query_policy) that may read only the tenant's lake
  prefixes, write only its results prefix, read only its own Glue database and run queries
  only in its own workgroup.

`AthenaSql` always runs as that role (STS AssumeRole), never with the caller's credentials:
SQL naming `tollgate.cdrs_rated` or another tenant's database is refused by Glue, and no
SQL can read another tenant's objects, because S3 refuses the role. None of this executes
under moto (Athena returns no rows there); the requests are built by plain functions and
checked, and the role's S3 grants are exercised with moto enforcing IAM (tests/access).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from functions.invoice.lake_sql import PARTITION_COLUMNS
from functions.invoice.lake_sql import TABLES as LAKE_TABLES
from functions.shared import policies
from functions.shared.settings import settings
from functions.store import ConflictError, StoreError, check_name, client, iam

DEFAULT_DATABASE = "tollgate"  # infra/glue.yaml DatabaseName
DEFAULT_WORKGROUP = "tollgate"  # infra/glue.yaml WorkGroupName: the operators' workgroup
DEFAULT_PROJECTION_START = "2020-01-01"  # infra/glue.yaml ProjectionStartDate
TABLES = tuple(LAKE_TABLES)
ENGINE_VERSION = "Athena engine version 3"
TENANT_TAG = policies.TENANT_TAG
BYTES_SCANNED_CUTOFF = 100 * 1024**3  # per query, per tenant workgroup
PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
_DATABASE = re.compile(r"[a-z][a-z0-9_]{0,127}")
_WORKGROUP_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,40}")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def check_database(database: str) -> str:
    if not _DATABASE.fullmatch(database):
        raise ValueError(f"invalid Glue database name {database!r}: lowercase, digits, '_'")
    return database


def tenant_database(tenant: str, database: str = DEFAULT_DATABASE) -> str:
    """The Glue database of a tenant's tables, e.g. tollgate_t_acme."""
    return f"{check_database(database)}_t_{policies.name_part(check_name('tenant', tenant))}"


def tenant_workgroup(tenant: str, prefix: str = DEFAULT_WORKGROUP) -> str:
    """The Athena workgroup a tenant's queries run in, e.g. tollgate-t-acme."""
    if not _WORKGROUP_PREFIX.fullmatch(prefix):
        raise ValueError(f"invalid workgroup prefix {prefix!r}: letters, digits, '.', '_', '-'")
    return f"{prefix}-t-{check_name('tenant', tenant)}"


def tenant_table_inputs(
    tenant: str,
    lake_bucket: str | None = None,
    projection_start: str = DEFAULT_PROJECTION_START,
) -> list[dict[str, Any]]:
    """Glue TableInputs of a tenant's four tables: the base tables, over its prefixes only."""
    check_name("tenant", tenant)
    if not _DAY.fullmatch(projection_start):
        raise ValueError(f"invalid projection start {projection_start!r}: use YYYY-MM-DD")
    bucket = lake_bucket or settings().lake_bucket
    inputs = []
    for table, (area, columns) in LAKE_TABLES.items():
        partitions = [
            {"Name": c.name, "Type": c.type, "Comment": c.comment} for c in PARTITION_COLUMNS
        ]
        partitions[0]["Comment"] = f"tenant id: always {tenant} (this database is one tenant's)"
        inputs.append(
            {
                "Name": table,
                "Description": f"{table} of tenant {tenant} only (s3://{bucket}/{area}/tenant="
                f"{tenant}/)",
                "TableType": "EXTERNAL_TABLE",
                "Parameters": {
                    "classification": "parquet",
                    "EXTERNAL": "TRUE",
                    "parquet.compression": "ZSTD",
                    "projection.enabled": "true",
                    # An enum of one value: the column stays (the SQL is the engines' same
                    # text) but no partition of another tenant can be projected.
                    "projection.tenant.type": "enum",
                    "projection.tenant.values": tenant,
                    "projection.date.type": "date",
                    "projection.date.format": "yyyy-MM-dd",
                    "projection.date.range": f"{projection_start},NOW",
                    "projection.date.interval": "1",
                    "projection.date.interval.unit": "DAYS",
                    "storage.location.template": (
                        f"s3://{bucket}/{area}/tenant=${{tenant}}/date=${{date}}/"
                    ),
                    TENANT_TAG: tenant,
                },
                "PartitionKeys": partitions,
                "StorageDescriptor": {
                    "Location": f"s3://{bucket}/{area}/tenant={tenant}/",
                    "InputFormat": PARQUET_INPUT,
                    "OutputFormat": PARQUET_OUTPUT,
                    "SerdeInfo": {
                        "SerializationLibrary": PARQUET_SERDE,
                        "Parameters": {"serialization.format": "1"},
                    },
                    "Columns": [
                        {"Name": c.name, "Type": c.type, "Comment": c.comment} for c in columns
                    ],
                },
            }
        )
    return inputs


def workgroup_request(
    tenant: str, prefix: str = DEFAULT_WORKGROUP, lake_bucket: str | None = None
) -> dict[str, Any]:
    """CreateWorkGroup parameters of a tenant's workgroup (settings enforced on queries)."""
    bucket = lake_bucket or settings().lake_bucket
    return {
        "Name": tenant_workgroup(tenant, prefix),
        "Description": f"Tollgate lake queries of tenant {tenant}",
        "Configuration": {
            "ResultConfiguration": {
                "OutputLocation": f"s3://{bucket}/{policies.results_prefix(tenant)}",
                "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
            },
            "EnforceWorkGroupConfiguration": True,
            "PublishCloudWatchMetricsEnabled": True,
            "BytesScannedCutoffPerQuery": BYTES_SCANNED_CUTOFF,
            "EngineVersion": {"SelectedEngineVersion": ENGINE_VERSION},
        },
        "Tags": [{"Key": TENANT_TAG, "Value": tenant}],
    }


@dataclass(frozen=True, slots=True)
class TenantScope:
    tenant: str
    database: str  # the tenant's database of tables over its own prefixes
    workgroup: str
    role_arn: str  # the query role its queries run as


def provision_tenant(
    tenant: str,
    database: str = DEFAULT_DATABASE,
    workgroup_prefix: str = DEFAULT_WORKGROUP,
    projection_start: str = DEFAULT_PROJECTION_START,
) -> TenantScope:
    """Create (or refresh) a tenant's database, tables, workgroup and query role. Idempotent.

    Call when a tenant is created (`tollgate access provision TENANT`). An existing database
    or workgroup that is not this tenant's, as Tollgate made it, is refused (ConflictError).
    """
    scoped = tenant_database(tenant, database)
    workgroup = tenant_workgroup(tenant, workgroup_prefix)
    glue = client("glue")
    try:
        glue.create_database(
            DatabaseInput={
                "Name": scoped,
                "Description": f"Tollgate lake tables of tenant {tenant} (rows of {tenant} only)",
                "Parameters": {TENANT_TAG: tenant},
            }
        )
    except glue.exceptions.AlreadyExistsException:
        found = glue.get_database(Name=scoped)["Database"].get("Parameters", {})
        if found.get(TENANT_TAG) != tenant:
            raise ConflictError(
                f"Glue database {scoped} exists but is not tenant {tenant}'s"
            ) from None
    for table in tenant_table_inputs(tenant, projection_start=projection_start):
        try:
            glue.create_table(DatabaseName=scoped, TableInput=table)
        except glue.exceptions.AlreadyExistsException:
            # Also what turns the earlier views of this database into tables.
            glue.update_table(DatabaseName=scoped, TableInput=table)
    _ensure_workgroup(tenant, workgroup_prefix)
    role_arn = iam.ensure_query_role(tenant, database=scoped, workgroup=workgroup)
    return TenantScope(tenant, scoped, workgroup, role_arn)


def _ensure_workgroup(tenant: str, prefix: str) -> None:
    athena = client("athena")
    wanted = workgroup_request(tenant, prefix)
    try:
        athena.create_work_group(**wanted)
        return
    except athena.exceptions.InvalidRequestException as error:
        if "already" not in str(error).lower():
            raise
    found = athena.get_work_group(WorkGroup=wanted["Name"])["WorkGroup"]["Configuration"]
    location = found.get("ResultConfiguration", {}).get("OutputLocation")
    wanted_location = wanted["Configuration"]["ResultConfiguration"]["OutputLocation"]
    # The query role may write only under its own results prefix: a workgroup writing
    # anywhere else would be either broken or someone else's.
    if not found.get("EnforceWorkGroupConfiguration") or location != wanted_location:
        raise ConflictError(
            f"Athena workgroup {wanted['Name']} exists without the enforced result location "
            f"{wanted_location} (it has {location}); fix or delete it, then provision again"
        )


class QueryFailed(StoreError):
    """Athena ran the query and it failed (a syntax error, a denied read): the reason."""


def _typed(kind: str, value: str | None) -> Any:
    """An Athena result cell (always text) as its column type says."""
    if value is None:
        return None
    if kind.startswith("decimal"):
        return Decimal(value)
    if kind in ("bigint", "integer", "smallint", "tinyint"):
        return int(value)
    if kind == "boolean":
        return value == "true"
    if kind in ("double", "float", "real"):
        return float(value)  # ratios (ASR); money columns are decimal
    if kind.startswith("timestamp"):
        moment = dt.datetime.fromisoformat(value.replace(" UTC", ""))
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    if kind == "date":
        return dt.date.fromisoformat(value)
    return value


class AthenaSql:
    """One tenant's SQL on Athena (the boto3 API: no pandas in a Lambda), as its query role.

    The SQL text is passed as is: the scope comes from where it runs (the tenant's database
    as context, its workgroup) and from who runs it (its role), not from rewriting it.
    Results come back typed by Athena's column types: decimals as Decimal (money never
    passes through float), bigint and integer as int, timestamps as aware UTC datetimes.
    """

    def __init__(
        self,
        tenant: str,
        database: str = DEFAULT_DATABASE,
        workgroup_prefix: str = DEFAULT_WORKGROUP,
    ) -> None:
        self.tenant = check_name("tenant", tenant)
        self.database = tenant_database(tenant, database)
        self.workgroup = tenant_workgroup(tenant, workgroup_prefix)

    def request(self, sql: str) -> dict[str, Any]:
        """Keyword arguments of Athena's StartQueryExecution for `sql`."""
        return {
            "QueryString": sql,
            "QueryExecutionContext": {"Database": self.database},
            # the workgroup's enforced settings put the results under the tenant's prefix
            "WorkGroup": self.workgroup,
        }

    def query(self, sql: str) -> list[dict[str, Any]]:
        # Assumed for every query, never cached: an operator's credentials must not run it.
        session = iam.query_credentials(self.tenant).session()
        return self._run(session, sql)

    def _run(self, session: Any, sql: str) -> list[dict[str, Any]]:
        athena = session.client("athena")
        started = athena.start_query_execution(**self.request(sql))["QueryExecutionId"]
        delay = 0.1
        while True:
            status = athena.get_query_execution(QueryExecutionId=started)["QueryExecution"]
            state = status["Status"]["State"]
            if state == "SUCCEEDED":
                break
            if state in ("FAILED", "CANCELLED"):
                reason = status["Status"].get("StateChangeReason", state)
                raise QueryFailed(f"Athena query {started} {state.lower()}: {reason}")
            time.sleep(delay)
            delay = min(2.0, delay * 2)
        rows: list[dict[str, Any]] = []
        columns: list[tuple[str, str]] | None = None
        for page in athena.get_paginator("get_query_results").paginate(QueryExecutionId=started):
            info = page["ResultSet"].get("ResultSetMetadata", {}).get("ColumnInfo", [])
            data = page["ResultSet"].get("Rows", [])
            if columns is None:
                columns = [(c["Name"], c["Type"].lower()) for c in info]
                data = data[1:]  # a SELECT's first row repeats the column names
            for row in data:
                values = [cell.get("VarCharValue") for cell in row["Data"]]
                rows.append(
                    {
                        name: _typed(kind, value)
                        for (name, kind), value in zip(columns, values, strict=True)
                    }
                )
        return rows
