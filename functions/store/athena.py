"""Athena over the lake, scoped to one tenant: a database of views, a workgroup, awswrangler.

The Glue tables of infra/glue.yaml (`{database}.cdrs_rated`, `cdrs_charges`,
`cdrs_normalized`, `cdrs_quarantine`) hold every tenant; their `tenant` partition is
*injected*, so Athena refuses any query on them that does not name one tenant. A tenant's
queries never run against them directly. When a tenant is created, `provision_tenant` gives it:

- a Glue database `{database}_t_{tenant}` holding a view per table with the tables' names, each
  `SELECT * FROM {database}.<table> WHERE tenant = '<tenant>'` (`tenant_view_ddl`). The
  same SQL text (`SELECT ... FROM cdrs_rated`) that DuckDB runs locally runs here with that
  database as the query's context, and sees one tenant's rows only;
- a workgroup `{prefix}-t-{tenant}` (tag `tollgate:tenant`), whose enforced settings put
  results under `s3://{lake}/athena-results/tenant={tenant}/`.

What makes that a boundary rather than a convention is IAM and Lake Formation, which live
outside this module (docs/lake.md): the role a tenant's queries run as may start queries
only in workgroups tagged with its tenant, may read Glue metadata only of its own database,
and is granted the base tables only through a Lake Formation data-cells filter whose row
filter is `tenant = '<tenant>'` (`data_cells_filter_requests`). So a query text that names
`tollgate.cdrs_rated` and another tenant reads nothing it may not.

None of this executes under moto (Athena returns no rows there); the requests are built by
plain functions so that their text can be checked, and the view DDL runs on DuckDB in tests.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from typing import Any

from functions.shared.settings import settings
from functions.store import check_name, client

DEFAULT_DATABASE = "tollgate"  # infra/glue.yaml DatabaseName
DEFAULT_WORKGROUP = "tollgate"  # infra/glue.yaml WorkGroupName: the operators' workgroup
TABLES = ("cdrs_rated", "cdrs_charges", "cdrs_normalized", "cdrs_quarantine")
ENGINE_VERSION = "Athena engine version 3"
TENANT_TAG = "tollgate:tenant"
BYTES_SCANNED_CUTOFF = 100 * 1024**3  # per query, per tenant workgroup
_DATABASE = re.compile(r"[a-z][a-z0-9_]{0,127}")


def _encode(tenant: str) -> str:
    """Tenant id -> Glue-safe name part; injective (distinct tenants never share a name).

    Lowercase letters and digits stay; any other character c becomes `_` + two hex digits
    of ord(c) (tenant ids are ASCII), so 'Acme', 'acme', 'a-b' and 'a_b' stay apart.
    """
    return "".join(
        c if c in "abcdefghijklmnopqrstuvwxyz0123456789" else f"_{ord(c):02x}" for c in tenant
    )


def check_database(database: str) -> str:
    if not _DATABASE.fullmatch(database):
        raise ValueError(f"invalid Glue database name {database!r}: lowercase, digits, '_'")
    return database


def tenant_database(tenant: str, database: str = DEFAULT_DATABASE) -> str:
    """The Glue database of a tenant's views, e.g. tollgate_t_acme."""
    return f"{check_database(database)}_t_{_encode(check_name('tenant', tenant))}"


def tenant_workgroup(tenant: str, prefix: str = DEFAULT_WORKGROUP) -> str:
    """The Athena workgroup a tenant's queries run in, e.g. tollgate-t-acme."""
    return f"{prefix}-t-{check_name('tenant', tenant)}"


def tenant_view_ddl(tenant: str, database: str = DEFAULT_DATABASE) -> list[str]:
    """CREATE OR REPLACE VIEW statements of a tenant's database (Trino SQL).

    The tenant id is checked (letters, digits, '.', '_', '-'), so the literal cannot carry
    SQL. Athena expands `*` when a view is created: re-run after a table gains columns.
    """
    scoped = tenant_database(tenant, database)
    return [
        f'CREATE OR REPLACE VIEW "{scoped}"."{table}" AS\n'
        f'SELECT * FROM "{database}"."{table}" WHERE tenant = \'{tenant}\''
        for table in TABLES
    ]


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
                "OutputLocation": f"s3://{bucket}/athena-results/tenant={tenant}/",
                "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
            },
            "EnforceWorkGroupConfiguration": True,
            "PublishCloudWatchMetricsEnabled": True,
            "BytesScannedCutoffPerQuery": BYTES_SCANNED_CUTOFF,
            "EngineVersion": {"SelectedEngineVersion": ENGINE_VERSION},
        },
        "Tags": [{"Key": TENANT_TAG, "Value": tenant}],
    }


def data_cells_filter_requests(
    tenant: str, catalog_id: str, database: str = DEFAULT_DATABASE
) -> list[dict[str, Any]]:
    """Lake Formation CreateDataCellsFilter parameters: the base tables' rows of one tenant.

    Granted (SELECT) to the tenant's query role, these are what enforce the scope on AWS
    even against SQL that names the base tables. Applied by the platform's Lake Formation
    administrator (see docs/lake.md), not by the query path.
    """
    check_name("tenant", tenant)
    return [
        {
            "TableData": {
                "TableCatalogId": catalog_id,
                "DatabaseName": check_database(database),
                "TableName": table,
                "Name": f"tenant_{_encode(tenant)}",
                "RowFilter": {"FilterExpression": f"tenant = '{tenant}'"},
                "ColumnWildcard": {"ExcludedColumnNames": []},
            }
        }
        for table in TABLES
    ]


@dataclass(frozen=True, slots=True)
class TenantScope:
    tenant: str
    database: str  # the tenant's database of views
    workgroup: str


def provision_tenant(
    tenant: str,
    database: str = DEFAULT_DATABASE,
    workgroup_prefix: str = DEFAULT_WORKGROUP,
    admin_workgroup: str = DEFAULT_WORKGROUP,
    timeout: float = 60.0,
) -> TenantScope:
    """Create (or refresh) a tenant's database of views and its workgroup. Idempotent.

    Call when a tenant is created. The views are created by DDL in the operators'
    workgroup (`admin_workgroup`, from infra/glue.yaml).
    """
    scope = TenantScope(
        tenant, tenant_database(tenant, database), tenant_workgroup(tenant, workgroup_prefix)
    )
    glue = client("glue")
    with contextlib.suppress(glue.exceptions.AlreadyExistsException):
        glue.create_database(
            DatabaseInput={
                "Name": scope.database,
                "Description": f"Tollgate lake views of tenant {tenant} (rows of {tenant} only)",
                "Parameters": {TENANT_TAG: tenant},
            }
        )
    athena = client("athena")
    try:
        athena.create_work_group(**workgroup_request(tenant, workgroup_prefix))
    except athena.exceptions.InvalidRequestException as error:
        if "already" not in str(error).lower():
            raise
    for ddl in tenant_view_ddl(tenant, database):
        run_statement(ddl, database=database, workgroup=admin_workgroup, timeout=timeout)
    return scope


def run_statement(sql: str, *, database: str, workgroup: str, timeout: float = 60.0) -> str:
    """Run one statement (DDL) to completion; returns its query execution id."""
    athena = client("athena")
    started = athena.start_query_execution(
        QueryString=sql, QueryExecutionContext={"Database": database}, WorkGroup=workgroup
    )
    execution_id = started["QueryExecutionId"]
    deadline = time.monotonic() + timeout
    while True:
        status = athena.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"][
            "Status"
        ]
        state = status["State"]
        if state == "SUCCEEDED":
            return execution_id
        if state in ("FAILED", "CANCELLED"):
            reason = status.get("StateChangeReason", state)
            raise RuntimeError(f"Athena statement {execution_id} {state.lower()}: {reason}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"Athena statement {execution_id} still {state} after {timeout}s")
        time.sleep(0.5)


class AthenaSql:
    """One tenant's SQL on Athena, through awswrangler: its views, in its workgroup.

    The SQL text is passed as is: the scope comes from where it runs (the tenant's
    database as context, the tenant's workgroup and role), not from rewriting it.
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
        """Keyword arguments of awswrangler.athena.read_sql_query for `sql`."""
        return {
            "sql": sql,
            "database": self.database,
            "workgroup": self.workgroup,
            # Results are read from the query's CSV output: no CTAS table is created, so
            # the tenant's role needs no write access to any database.
            "ctas_approach": False,
            "unload_approach": False,
        }

    def query(self, sql: str) -> list[dict[str, Any]]:
        import awswrangler as wr  # ~0.6 s to import: only when a query runs on Athena

        frame = wr.athena.read_sql_query(**self.request(sql))
        frame = frame.astype(object).where(frame.notna(), None)
        return frame.to_dict("records")
