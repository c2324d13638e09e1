"""`tollgate switch credentials`: a switch's upload credentials, with moto enforcing IAM.

Issue 9 §5: there was no such command, and anything that could put objects under incoming/
could bill any tenant's accounts. Now each switch uploads as its own drop role, which may put
objects under incoming/TENANT/SWITCH/ and do nothing else.
"""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from functions.cli import main
from functions.shared import policies
from functions.shared.settings import settings
from functions.store import client, iam
from tests.access.conftest import iam_enforced, s3_call


def tollgate(*argv: str) -> int:
    return main(list(argv))


@pytest.fixture
def switches(aws, capsys):
    for argv in (
        ("tenant", "create", "acme"),
        ("tenant", "create", "globex"),
        ("switch", "create", "acme", "sw1", "--format", "generic"),
        ("switch", "create", "acme", "sw10", "--format", "generic"),
        ("switch", "create", "globex", "sw1", "--format", "generic"),
    ):
        assert tollgate(*argv) == 0
    capsys.readouterr()


def _issue(capsys, tenant: str = "acme", switch: str = "sw1") -> dict:
    assert tollgate("switch", "credentials", tenant, switch, "--json") == 0
    return json.loads(capsys.readouterr().out)


def _s3(issued: dict):
    return boto3.session.Session(
        aws_access_key_id=issued["access_key_id"],
        aws_secret_access_key=issued["secret_access_key"],
        aws_session_token=issued["session_token"],
        region_name=issued["region"],
    ).client("s3")


def _keys(bucket: str) -> set[str]:
    listed = client("s3").list_objects_v2(Bucket=bucket)
    return {o["Key"] for o in listed.get("Contents", [])}


def test_a_switch_uploads_under_its_own_prefix_and_nowhere_else(switches, capsys):
    issued = _issue(capsys)
    cdr, lake = settings().cdr_bucket, settings().lake_bucket
    assert (issued["tenant"], issued["switch"], issued["bucket"]) == ("acme", "sw1", cdr)
    assert issued["prefix"] == "incoming/acme/sw1/"
    assert issued["role_arn"] == (
        "arn:aws:iam::123456789012:role/tollgate/drop/tollgate-drop-acme-sw1"
    )
    s3 = _s3(issued)
    with iam_enforced():
        assert s3_call(s3, "s3:PutObject", cdr, "incoming/acme/sw1/cdr-1.csv") == "allow"
        for key in (
            "incoming/acme/sw10/cdr-1.csv",  # a switch whose id starts with this one's
            "incoming/globex/sw1/cdr-1.csv",  # the same switch id at another tenant
            "incoming/acme/cdr-1.csv",
            "cdr-1.csv",
        ):
            assert s3_call(s3, "s3:PutObject", cdr, key) == "deny", key
        assert s3_call(s3, "s3:PutObject", lake, "rated/tenant=acme/x.parquet") == "deny"
        assert s3_call(s3, "s3:GetObject", cdr, "incoming/acme/sw1/cdr-1.csv") == "deny"
        with pytest.raises(ClientError, match="AccessDenied"):
            s3.list_objects_v2(Bucket=cdr, Prefix="incoming/")
    assert _keys(cdr) == {"incoming/acme/sw1/cdr-1.csv"}
    assert _keys(lake) == set()


def test_the_text_form_is_shell_exports_that_work(switches, capsys):
    assert tollgate("switch", "credentials", "globex", "sw1") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(
        f"# switch globex/sw1 may upload CDR files under s3://{settings().cdr_bucket}"
        "/incoming/globex/sw1/ only, until "
    )
    exported = dict(
        line.removeprefix("export ").split("=", 1) for line in lines if line.startswith("export ")
    )
    s3 = boto3.session.Session(
        aws_access_key_id=exported["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=exported["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=exported["AWS_SESSION_TOKEN"],
        region_name=exported["AWS_DEFAULT_REGION"],
    ).client("s3")
    with iam_enforced():
        assert (
            s3_call(s3, "s3:PutObject", settings().cdr_bucket, "incoming/globex/sw1/a") == "allow"
        )
        assert s3_call(s3, "s3:PutObject", settings().cdr_bucket, "incoming/acme/sw1/a") == "deny"


def test_each_switch_has_its_own_role_and_reissuing_restores_its_policy(switches, capsys):
    first = _issue(capsys)
    other = _issue(capsys, "acme", "sw10")
    assert first["role_arn"] != other["role_arn"]
    roles = client("iam").list_roles(PathPrefix=policies.DROP_ROLE_PATH)["Roles"]
    assert sorted(r["RoleName"] for r in roles) == [
        "tollgate-drop-acme-sw1",
        "tollgate-drop-acme-sw10",
    ]
    role = client("iam").get_role(RoleName="tollgate-drop-acme-sw1")["Role"]
    assert {t["Key"]: t["Value"] for t in role["Tags"]} == {
        "tollgate:tenant": "acme",
        "tollgate:switch": "sw1",
        "tollgate:access": "cdr-drop",
    }
    # Someone widens the role's own policy; the next issue puts Tollgate's back.
    wide = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
    client("iam").put_role_policy(
        RoleName="tollgate-drop-acme-sw1",
        PolicyName=iam.POLICY_NAME,
        PolicyDocument=json.dumps(wide),
    )
    again = _issue(capsys)
    assert again["role_arn"] == first["role_arn"]
    stored = client("iam").get_role_policy(
        RoleName="tollgate-drop-acme-sw1", PolicyName=iam.POLICY_NAME
    )
    where = policies.Account("aws", "us-east-1", "123456789012")
    assert stored["PolicyDocument"] == policies.drop_policy(
        "acme", "sw1", where, cdr_bucket=settings().cdr_bucket
    )
    with iam_enforced():
        assert (
            s3_call(_s3(again), "s3:PutObject", settings().cdr_bucket, "incoming/globex/sw1/x")
            == "deny"
        )


def test_a_role_holding_more_than_tollgates_policy_gets_no_credentials(switches, capsys):
    _issue(capsys)
    wide = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
    arn = client("iam").create_policy(PolicyName="S3Everything", PolicyDocument=json.dumps(wide))
    client("iam").attach_role_policy(
        RoleName="tollgate-drop-acme-sw1", PolicyArn=arn["Policy"]["Arn"]
    )
    assert tollgate("switch", "credentials", "acme", "sw1", "--json") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "S3Everything" in captured.err and "tollgate-drop-acme-sw1" in captured.err


def test_a_role_of_that_name_made_for_something_else_is_not_reused(switches, capsys):
    client("iam").create_role(
        RoleName="tollgate-drop-acme-sw1",
        Path=policies.DROP_ROLE_PATH,
        AssumeRolePolicyDocument=json.dumps(policies.trust_policy(iam.account())),
        Tags=[{"Key": "tollgate:tenant", "Value": "globex"}],
    )
    assert tollgate("switch", "credentials", "acme", "sw1") == 1
    assert "not reused" in capsys.readouterr().err


def test_bad_requests_get_no_role_and_no_credentials(switches, capsys):
    for argv, message in (
        (("acme", "nope"), "nope"),
        (("nobody", "sw1"), "nobody"),
        (("acme", "sw1", "--duration", "60"), "--duration 60"),
        (("acme", "sw1", "--duration", "43201"), "--duration 43201"),
    ):
        assert tollgate("switch", "credentials", *argv) == 2, argv
        captured = capsys.readouterr()
        assert captured.out == "" and message in captured.err
    assert client("iam").list_roles(PathPrefix=policies.DROP_ROLE_PATH)["Roles"] == []


class _PropagatingSts:
    """STS while IAM propagates a new role: the first `lag` AssumeRole calls are refused."""

    def __init__(self, sts, lag: int) -> None:
        self._sts, self.lag, self.meta = sts, lag, sts.meta

    def assume_role(self, **request):
        if self.lag:
            self.lag -= 1
            error = {"Error": {"Code": "AccessDenied", "Message": "not authorized"}}
            raise ClientError(error, "AssumeRole")
        return self._sts.assume_role(**request)


def test_a_new_role_is_retried_while_iam_propagates_it(aws, monkeypatch):
    arn, created = iam.ensure_drop_role("acme", "sw1")
    assert created
    lagging = _PropagatingSts(client("sts"), lag=2)
    monkeypatch.setattr(iam, "client", lambda service: lagging)
    waits: list[float] = []
    issued = iam.assume(arn, "tollgate-drop-acme-sw1", new_role=True, sleep=waits.append)
    assert waits == [1, 2]
    identity = issued.session().client("sts").get_caller_identity()
    assert identity["Arn"].endswith(":assumed-role/tollgate-drop-acme-sw1/tollgate-drop-acme-sw1")
    # A role that is not new is not waited for: the refusal is the answer.
    lagging.lag = 1
    with pytest.raises(ClientError, match="AccessDenied"):
        iam.assume(arn, "tollgate-drop-acme-sw1", sleep=waits.append)
    assert waits == [1, 2]
