"""Issue 9 §5: each generated policy allows its own tenant's (and switch's) prefixes and
nothing of any other tenant's, judged by the evaluator on AWS's documented rules.

Before this, a tenant's Athena queries ran with the operator's credentials and anything that
could put objects under incoming/ could bill any tenant: there were no such policies at all.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from functions.shared import policies
from functions.store import lake
from tests.access.conftest import ACCOUNT
from tests.access.evaluator import ALLOW, DENY, IMPLICIT, Request, decide, decide_assume

LAKE, CDR = "tollgate-lake", "tollgate-cdr"
PACKAGE = Path(__file__).resolve().parents[2] / "infra" / "package.yaml"
OPERATOR = "arn:aws:iam::123456789012:role/Administrator"
ADMIN = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}

# Ids as check_name allows them; prefixes of each other and case variants come up often.
_ID_CHARS = "abcAB019_.-"
ids = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from("aAb0"),
    st.text(_ID_CHARS, max_size=6),
) | st.sampled_from(["acme", "acme2", "acm", "Acme", "a.b", "axb", "a-b", "a_b"])


def _query_policy(tenant: str) -> dict:
    return policies.query_policy(
        tenant,
        ACCOUNT,
        lake_bucket=LAKE,
        database=f"tollgate_t_{policies.name_part(tenant)}",
        workgroup=f"tollgate-t-{tenant}",
    )


def _as_query_role(tenant: str, action: str, resource: str, **context: str) -> str:
    role = ACCOUNT.role_arn(policies.QUERY_ROLE_PATH, policies.query_role_name(tenant))
    return decide(Request(role, action, resource, context), [_query_policy(tenant)])


# --- the query role -------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(tenant=ids, other=ids, area=st.sampled_from(policies.LAKE_AREAS))
def test_a_query_role_reads_its_own_lake_prefixes_and_no_other_tenants(tenant, other, area):
    assume(tenant != other)
    own = ACCOUNT.s3(LAKE, lake.table_key(area, tenant, "2024-05-01", "f1"))
    theirs = ACCOUNT.s3(LAKE, lake.table_key(area, other, "2024-05-01", "f1"))
    assert _as_query_role(tenant, "s3:GetObject", own) == ALLOW
    assert _as_query_role(tenant, "s3:GetObject", theirs) == IMPLICIT
    assert _as_query_role(tenant, "s3:PutObject", own) == IMPLICIT  # the lake is read-only
    bucket = ACCOUNT.s3(LAKE)
    own_day, their_day = f"{area}/tenant={tenant}/date=2024-05-01/", f"{area}/tenant={other}/"
    assert _as_query_role(tenant, "s3:ListBucket", bucket, **{"s3:prefix": own_day}) == ALLOW
    assert _as_query_role(tenant, "s3:ListBucket", bucket, **{"s3:prefix": their_day}) == IMPLICIT
    assert _as_query_role(tenant, "s3:ListBucket", bucket, **{"s3:prefix": f"{area}/"}) == IMPLICIT
    assert _as_query_role(tenant, "s3:ListBucket", bucket) == IMPLICIT  # the whole bucket


@settings(max_examples=60, deadline=None)
@given(tenant=ids, other=ids)
def test_a_query_role_writes_only_its_own_results_and_runs_only_in_its_own_workgroup(tenant, other):
    assume(tenant != other)
    for action in ("s3:PutObject", "s3:GetObject"):
        own = ACCOUNT.s3(LAKE, f"{policies.results_prefix(tenant)}q1.csv")
        theirs = ACCOUNT.s3(LAKE, f"{policies.results_prefix(other)}q1.csv")
        assert _as_query_role(tenant, action, own) == ALLOW
        assert _as_query_role(tenant, action, theirs) == IMPLICIT
    workgroup = ACCOUNT.arn("athena", f"workgroup/tollgate-t-{tenant}")
    assert _as_query_role(tenant, "athena:StartQueryExecution", workgroup) == ALLOW
    for elsewhere in (f"tollgate-t-{other}", "tollgate", "primary"):
        wrong = ACCOUNT.arn("athena", f"workgroup/{elsewhere}")
        assert _as_query_role(tenant, "athena:StartQueryExecution", wrong) == IMPLICIT


@settings(max_examples=60, deadline=None)
@given(tenant=ids, other=ids)
def test_a_query_role_sees_only_its_own_glue_database(tenant, other):
    assume(policies.name_part(tenant) != policies.name_part(other))
    own = f"tollgate_t_{policies.name_part(tenant)}"
    theirs = f"tollgate_t_{policies.name_part(other)}"
    assert _as_query_role(tenant, "glue:GetTable", ACCOUNT.arn("glue", f"table/{own}/x")) == ALLOW
    for database in (theirs, "tollgate"):  # another tenant's, or the operators' base tables
        table = ACCOUNT.arn("glue", f"table/{database}/cdrs_rated")
        assert _as_query_role(tenant, "glue:GetTable", table) == IMPLICIT
    # Listing every database would name every tenant.
    catalog = ACCOUNT.arn("glue", "catalog")
    assert _as_query_role(tenant, "glue:GetDatabases", catalog) == IMPLICIT


# --- the drop roles and the CDR bucket --------------------------------------------------------


@functools.cache
def _bucket_policy_as_deployed() -> dict:
    """infra/package.yaml's CdrBucketPolicy with its intrinsics resolved for ACCOUNT."""
    template = yaml.safe_load(PACKAGE.read_text())
    document = template["Resources"]["CdrBucketPolicy"]["Properties"]["PolicyDocument"]
    values = {
        "CdrBucket.Arn": ACCOUNT.s3(CDR),
        "AWS::Partition": ACCOUNT.partition,
        "AWS::AccountId": ACCOUNT.account_id,
    }

    def resolve(value):
        if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
            return re.sub(r"\$\{([^}!]+)\}", lambda m: values[m.group(1)], value["Fn::Sub"])
        if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
            return values[".".join(value["Fn::GetAtt"])]
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    return resolve(document)


def test_the_deployed_bucket_policy_is_the_generated_one():
    assert _bucket_policy_as_deployed() == policies.cdr_bucket_policy(ACCOUNT, CDR)


def _put(principal: str, key: str, identity: list[dict], **context: str) -> str:
    request = Request(principal, "s3:PutObject", ACCOUNT.s3(CDR, key), context)
    return decide(request, identity, _bucket_policy_as_deployed())


@settings(max_examples=80, deadline=None)
@given(tenant=ids, switch=ids, other_tenant=ids, other_switch=ids)
def test_a_drop_role_uploads_under_its_own_switch_only(tenant, switch, other_tenant, other_switch):
    assume((tenant, switch) != (other_tenant, other_switch))
    role = ACCOUNT.role_arn(policies.DROP_ROLE_PATH, policies.drop_role_name(tenant, switch))
    own_policy = [policies.drop_policy(tenant, switch, ACCOUNT, cdr_bucket=CDR)]
    own = lake.cdr_key(tenant, switch, "cdr-2024-05-01.csv")
    theirs = lake.cdr_key(other_tenant, other_switch, "cdr-2024-05-01.csv")
    assert _put(role, own, own_policy) == ALLOW
    assert _put(role, theirs, own_policy) == IMPLICIT
    assert _put(role, "elsewhere/x.csv", own_policy) == IMPLICIT
    read = Request(role, "s3:GetObject", ACCOUNT.s3(CDR, own))
    assert decide(read, own_policy, _bucket_policy_as_deployed()) == DENY  # upload only


def test_the_bucket_policy_refuses_uploads_from_anyone_but_drop_roles():
    key = lake.cdr_key("acme", "sw1", "cdr.csv")
    # An administrator, an operator's own role, the ingest function: all hold s3:* here.
    for principal in (
        OPERATOR,
        "arn:aws:iam::123456789012:user/ops",
        "arn:aws:iam::123456789012:role/tollgate-dev-HandleCdrDropsRole-X",
        "arn:aws:iam::123456789012:role/tollgate/dropx/tollgate-drop-acme-sw1",  # a look-alike
        "arn:aws:iam::123456789012:role/tollgate-drop-acme-sw1",  # the name, not the path
    ):
        assert _put(principal, key, [ADMIN]) == DENY, principal
        read = Request(principal, "s3:GetObject", ACCOUNT.s3(CDR, key))
        assert decide(read, [ADMIN], _bucket_policy_as_deployed()) == ALLOW  # ingest reads
    # Outside incoming/ nothing is billed; the operators keep their own rights there.
    assert _put(OPERATOR, "exports/x.csv", [ADMIN]) == ALLOW


def test_a_drop_role_given_more_rights_still_only_uploads():
    role = ACCOUNT.role_arn(policies.DROP_ROLE_PATH, policies.drop_role_name("acme", "sw1"))
    key = ACCOUNT.s3(CDR, lake.cdr_key("globex", "sw9", "cdr.csv"))
    for action in ("s3:GetObject", "s3:DeleteObject", "s3:PutBucketPolicy", "s3:ListBucket"):
        request = Request(role, action, key if "Object" in action else ACCOUNT.s3(CDR))
        assert decide(request, [ADMIN], _bucket_policy_as_deployed()) == DENY, action


def test_plain_http_is_refused_to_everyone():
    role = ACCOUNT.role_arn(policies.DROP_ROLE_PATH, policies.drop_role_name("acme", "sw1"))
    identity = [policies.drop_policy("acme", "sw1", ACCOUNT, cdr_bucket=CDR)]
    own = lake.cdr_key("acme", "sw1", "cdr.csv")
    assert _put(role, own, identity, **{"aws:SecureTransport": "true"}) == ALLOW
    assert _put(role, own, identity, **{"aws:SecureTransport": "false"}) == DENY


# --- trust, names and ids ---------------------------------------------------------------------


def test_roles_are_assumed_from_this_account_only_and_without_session_tags():
    trust = policies.trust_policy(ACCOUNT)
    role = ACCOUNT.role_arn(policies.DROP_ROLE_PATH, policies.drop_role_name("acme", "sw1"))
    assume_role = Request(OPERATOR, "sts:AssumeRole", role)
    assert decide_assume(assume_role, trust, [ADMIN]) == ALLOW
    assert decide_assume(assume_role, trust, []) == IMPLICIT  # the operator needs the grant
    stranger = Request("arn:aws:iam::999999999999:role/Admin", "sts:AssumeRole", role)
    assert decide_assume(stranger, trust, [ADMIN]) == IMPLICIT
    # Session tags could override the role's tollgate:tenant tag: never allowed.
    assert decide_assume(Request(OPERATOR, "sts:TagSession", role), trust, [ADMIN]) == IMPLICIT


@settings(max_examples=150, deadline=None)
@given(a=st.tuples(ids, ids), b=st.tuples(ids, ids))
def test_role_names_are_valid_and_distinct_even_where_iam_ignores_case(a, b):
    assume(a != b)
    for tenant, switch in (a, b):
        for name in (policies.drop_role_name(tenant, switch), policies.query_role_name(tenant)):
            assert re.fullmatch(r"[\w+=,.@-]{1,64}", name), name
    assert policies.drop_role_name(*a).lower() != policies.drop_role_name(*b).lower()
    if a[0] != b[0]:
        assert policies.query_role_name(a[0]).lower() != policies.query_role_name(b[0]).lower()


def test_long_ids_get_a_digest_within_iams_limit():
    tenant, switch = "T" * 64, "s" * 64
    name = policies.drop_role_name(tenant, switch)
    assert len(name) == 64
    assert name != policies.drop_role_name(tenant, "s" * 63 + "t")
    assert policies.query_role_name("acme") == "tollgate-query-acme"
    assert policies.drop_role_name("Acme", "sw-1") == "tollgate-drop-_41cme-sw_2d1"


@pytest.mark.parametrize("bad", ["*", "acme*", "a?c", "${aws:username}", "a/b", "", "-a", "a b"])
def test_no_id_can_widen_a_grant(bad):
    for build in (
        lambda: _query_policy(bad),
        lambda: policies.drop_policy(bad, "sw1", ACCOUNT, cdr_bucket=CDR),
        lambda: policies.drop_policy("acme", bad, ACCOUNT, cdr_bucket=CDR),
        lambda: policies.query_role_name(bad),
    ):
        with pytest.raises(ValueError):
            build()
    with pytest.raises(ValueError):
        policies.query_policy("acme", ACCOUNT, lake_bucket=LAKE, database="*", workgroup="wg")
