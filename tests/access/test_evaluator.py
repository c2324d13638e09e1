"""The test evaluator agrees with AWS's documented rules, and with moto where moto enforces."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.shared import policies
from tests.access.conftest import ACCOUNT, iam_enforced, s3_call
from tests.access.evaluator import ALLOW, DENY, IMPLICIT, Request, decide, decide_assume
from tests.conftest import FAKE_ENVIRONMENT, moto_account

USER = "arn:aws:iam::123456789012:user/ops"
OBJECT = "arn:aws:s3:::b/k/1"


def _policy(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_an_explicit_deny_wins_and_nothing_allowed_is_an_implicit_deny():
    allow = _policy({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    deny = _policy({"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/k/*"})
    request = Request(USER, "s3:GetObject", OBJECT)
    assert decide(request, [allow]) == ALLOW
    assert decide(request, [allow, deny]) == DENY
    assert decide(request, []) == IMPLICIT


def test_wildcards_never_cross_the_arns_first_colons_and_dots_are_literal():
    policy = _policy({"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/a.b/?"})
    assert decide(Request(USER, "S3:getobject", "arn:aws:s3:::b/a.b/1"), [policy]) == ALLOW
    assert decide(Request(USER, "s3:GetObject", "arn:aws:s3:::b/axb/1"), [policy]) == IMPLICIT
    assert decide(Request(USER, "s3:GetObject", "arn:aws:s3:::b/a.b/12"), [policy]) == IMPLICIT
    anywhere = _policy({"Effect": "Allow", "Action": "*", "Resource": "arn:aws:*"})
    assert decide(Request(USER, "s3:GetObject", OBJECT), [anywhere]) == IMPLICIT


def test_conditions_missing_keys_and_policy_variables():
    deny_untagged = _policy(
        {
            "Effect": "Deny",
            "Action": "s3:*",
            "Resource": "*",
            "Condition": {"StringNotEquals": {"aws:PrincipalTag/team": "billing"}},
        }
    )
    assert decide(Request(USER, "s3:GetObject", OBJECT), [deny_untagged]) == DENY
    tagged = Request(USER, "s3:GetObject", OBJECT, {"aws:PrincipalTag/team": "billing"})
    assert decide(tagged, [deny_untagged]) == IMPLICIT
    folder = "arn:aws:s3:::b/${aws:username}/*"
    own_folder = _policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": folder})
    named = Request(USER, "s3:GetObject", "arn:aws:s3:::b/ops/1", {"aws:username": "ops"})
    assert decide(named, [own_folder]) == ALLOW
    assert decide(Request(USER, "s3:GetObject", "arn:aws:s3:::b/ops/1"), [own_folder]) == IMPLICIT


def test_a_resource_policy_naming_the_account_only_delegates():
    bucket = _policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            "Action": "s3:GetObject",
            "Resource": OBJECT,
        }
    )
    assert decide(Request(USER, "s3:GetObject", OBJECT), [], bucket) == IMPLICIT
    naming_user = _policy({**bucket["Statement"][0], "Principal": {"AWS": USER}})
    assert decide(Request(USER, "s3:GetObject", OBJECT), [], naming_user) == ALLOW


def test_assume_role_needs_the_trust_policy_whatever_the_caller_holds():
    role = ACCOUNT.role_arn("/x/", "r")
    trust = policies.trust_policy(ACCOUNT)
    admin = _policy({"Effect": "Allow", "Action": "*", "Resource": "*"})
    assert decide_assume(Request(USER, "sts:AssumeRole", role), trust, [admin]) == ALLOW
    assert decide_assume(Request(USER, "sts:AssumeRole", role), trust, []) == IMPLICIT
    assert decide_assume(Request(USER, "sts:TagSession", role), trust, [admin]) == IMPLICIT


# --- the evaluator against moto's own enforcement of S3 keys ---------------------------------

# No '.' in these ids: moto matches resource patterns as regular expressions, so its '.'
# matches any character (the evaluator's does not, as AWS's does not).
TENANTS = ("acme", "acme2", "acm", "Acme", "ac-me", "globex")
SWITCHES = ("sw1", "sw10", "sw", "SW1")


@pytest.fixture(scope="module")
def moto_roles():
    """One moto account: the lake and CDR buckets, and sessions of acme's and acme/sw1's roles."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAKE_ENVIRONMENT.items():
            patch.setenv(name, value)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        with moto_account():
            from functions.shared.settings import settings
            from functions.store import iam

            names = settings()
            iam.ensure_query_role("acme", database="tollgate_t_acme", workgroup="tollgate-t-acme")
            query = iam.query_credentials("acme")
            drop = iam.drop_credentials("acme", "sw1")
            yield {
                "lake": names.lake_bucket,
                "cdr": names.cdr_bucket,
                "query": (query, query.session().client("s3")),
                "drop": (drop, drop.session().client("s3")),
            }


def _lake_key(tenant: str, area: str, tail: str) -> str:
    return f"{area}/tenant={tenant}/date=2024-05-01/{tail}"


keys = st.one_of(
    st.builds(
        lambda t, a, tail: ("query", "lake", _lake_key(t, a, tail)),
        st.sampled_from(TENANTS),
        st.sampled_from([*policies.LAKE_AREAS, "decks", "athena-results"]),
        st.text("abcz019_-=/", min_size=1, max_size=12),
    ),
    st.builds(
        lambda t, s, tail: ("drop", "cdr", f"incoming/{t}/{s}/{tail}"),
        st.sampled_from(TENANTS),
        st.sampled_from(SWITCHES),
        st.text("abcz019_-./", min_size=1, max_size=12),
    ),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(target=keys, action=st.sampled_from(["s3:GetObject", "s3:PutObject"]))
def test_the_evaluator_judges_s3_keys_as_moto_enforces_them(moto_roles, target, action):
    role, bucket, key = target
    credentials, s3 = moto_roles[role]
    with iam_enforced():
        by_moto = s3_call(s3, action, moto_roles[bucket], key)
    role_name = credentials.role_arn.rsplit("/", 1)[1]
    from functions.store import client

    document = client("iam").get_role_policy(RoleName=role_name, PolicyName="tollgate-scope")
    request = Request(credentials.role_arn, action, ACCOUNT.s3(moto_roles[bucket], key))
    by_evaluator = decide(request, [document["PolicyDocument"]])
    assert by_moto == ("allow" if by_evaluator == ALLOW else "deny"), key


def test_moto_really_enforces_here(moto_roles):
    """The cross-check above means something only if moto refuses what is not granted."""
    _, s3 = moto_roles["query"]
    lake = moto_roles["lake"]
    with iam_enforced():
        assert s3_call(s3, "s3:GetObject", lake, _lake_key("globex", "rated", "f")) == "deny"
        assert s3_call(s3, "s3:GetObject", lake, _lake_key("acme", "rated", "f")) == "allow"
    stranger = boto3.session.Session(
        aws_access_key_id="AKIAUNKNOWN000000000", aws_secret_access_key="x", region_name="us-east-1"
    ).client("s3")
    with iam_enforced(), pytest.raises(ClientError, match="InvalidAccessKeyId"):
        stranger.get_object(Bucket=lake, Key=_lake_key("acme", "rated", "f"))
