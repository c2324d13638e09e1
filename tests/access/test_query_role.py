"""A tenant's Athena queries run as its query role, which reads only its own lake prefixes.

Issue 9 §5: `tollgate query --tenant acme "SELECT ... WHERE tenant='globex'"` on Athena
returned globex's rows, because the SQL ran with the operator's own credentials. Athena
itself cannot run under moto (it returns no rows), so the query path is driven up to
awswrangler's call, and a stand-in for Athena reads the partitions the SQL asks for the way
Athena does: with the caller's credentials, from S3, with moto enforcing IAM.
"""

from __future__ import annotations

import json

import pytest

from functions.cli import main
from functions.shared import policies
from functions.shared.settings import settings
from functions.store import client, iam
from tests.access.conftest import act_as_iam_user, iam_enforced, s3_call

ADMIN = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
DAY = "2024-05-01"


def tollgate(*argv: str) -> int:
    return main(list(argv))


def _lake_key(area: str, tenant: str, name: str = "f1.parquet") -> str:
    return f"{area}/tenant={tenant}/date={DAY}/{name}"


@pytest.fixture
def provisioned(aws, capsys):
    """acme and globex, each with a row in every lake area, provisioned for Athena."""
    for tenant in ("acme", "globex"):
        assert tollgate("tenant", "create", tenant) == 0
        for area in (*policies.LAKE_AREAS, "decks"):
            client("s3").put_object(
                Bucket=settings().lake_bucket,
                Key=_lake_key(area, tenant),
                Body=f"{tenant}-{area}-row".encode(),
            )
    for tenant in ("acme", "globex"):
        assert tollgate("access", "provision", tenant, "--json") == 0
    capsys.readouterr()


@pytest.fixture
def operator(provisioned, monkeypatch):
    """The operator is an IAM user allowed everything, as on a real account."""
    act_as_iam_user(monkeypatch, "ops", ADMIN)


class FakeAthena:
    """Athena as it answers AthenaSql (its `_run`, the StartQueryExecution ... GetQueryResults
    round trip): the partitions the SQL names are read from S3 with the caller's credentials
    (Athena has none of its own), here under moto's IAM enforcement. A SQL naming 'globex'
    asks for globex's rows."""

    def __init__(self) -> None:
        self.callers: list[str] = []

    def __call__(self, engine, session, sql):
        database = engine.database
        self.callers.append(session.client("sts").get_caller_identity()["Arn"])
        tenant = "globex" if "'globex'" in sql else database.removeprefix("tollgate_t_")
        with iam_enforced():
            body = (
                session.client("s3")
                .get_object(Bucket=settings().lake_bucket, Key=_lake_key("rated", tenant))["Body"]
                .read()
            )
        return [{"row": body.decode()}]


@pytest.fixture
def athena(monkeypatch) -> FakeAthena:
    from functions.store.athena import AthenaSql

    fake = FakeAthena()
    monkeypatch.setattr(AthenaSql, "_run", lambda engine, session, sql: fake(engine, session, sql))
    return fake


def test_access_provision_reports_the_scope(provisioned, capsys):
    assert tollgate("access", "provision", "acme", "--json") == 0  # again: idempotent
    lake = settings().lake_bucket
    assert json.loads(capsys.readouterr().out) == {
        "tenant": "acme",
        "database": "tollgate_t_acme",
        "workgroup": "tollgate-t-acme",
        "role_arn": "arn:aws:iam::123456789012:role/tollgate/query/tollgate-query-acme",
        "reads": [f"s3://{lake}/{area}/tenant=acme/" for area in policies.LAKE_AREAS],
        "results": f"s3://{lake}/athena-results/tenant=acme/",
    }
    assert tollgate("access", "provision", "nobody") == 2
    assert "nobody" in capsys.readouterr().err


def test_the_query_role_reads_its_own_rows_only(provisioned):
    s3 = iam.query_credentials("acme").session().client("s3")
    lake = settings().lake_bucket
    with iam_enforced():
        for area in policies.LAKE_AREAS:
            assert s3_call(s3, "s3:GetObject", lake, _lake_key(area, "acme")) == "allow", area
            assert s3_call(s3, "s3:GetObject", lake, _lake_key(area, "globex")) == "deny", area
            assert s3_call(s3, "s3:PutObject", lake, _lake_key(area, "acme", "x")) == "deny"
        assert s3_call(s3, "s3:GetObject", lake, _lake_key("decks", "acme")) == "deny"
        own_results = f"{policies.results_prefix('acme')}q1.csv"
        assert s3_call(s3, "s3:PutObject", lake, own_results) == "allow"
        their_results = f"{policies.results_prefix('globex')}q1.csv"
        assert s3_call(s3, "s3:PutObject", lake, their_results) == "deny"
        assert s3_call(s3, "s3:GetObject", settings().cdr_bucket, "incoming/acme/s/f") == "deny"


def test_tollgate_query_on_athena_runs_as_the_tenants_role(operator, athena, capsys):
    """What was wrong: AthenaSql ran the SQL with the caller's credentials, so the operator's
    rights read globex's rows for a query of tenant acme."""
    sql = "SELECT * FROM tollgate.cdrs_rated WHERE tenant = 'globex'"
    argv = ("query", "--tenant", "acme", "--engine", "athena", "--format", "json", sql)
    assert tollgate(*argv) != 0
    captured = capsys.readouterr()
    assert "AccessDenied" in captured.err
    assert "globex" not in captured.out
    role = "arn:aws:sts::123456789012:assumed-role/tollgate-query-acme/tollgate-query-acme"
    assert athena.callers == [role]

    own = ("query", "--tenant", "acme", "--engine", "athena", "--format", "json")
    assert tollgate(*own, "SELECT * FROM cdrs_rated") == 0
    assert json.loads(capsys.readouterr().out) == [{"row": "acme-rated-row"}]
    assert athena.callers == [role, role]
    # The refusal is the role's doing: the operator's own keys read globex's rows.
    with iam_enforced():
        body = client("s3").get_object(
            Bucket=settings().lake_bucket, Key=_lake_key("rated", "globex")
        )["Body"]
        assert body.read() == b"globex-rated-row"
