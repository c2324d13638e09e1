"""`tollgate cdr drop` uploads as the switch, so it works where the CDR bucket takes files
from switches' drop roles only (infra/package.yaml, CdrBucketPolicy).

Issue 9: the command put the file with the operator's own credentials, which that bucket
policy refuses on AWS. moto does not evaluate bucket policies, so here the operator is an IAM
user whose identity policy carries the same refusal, with moto enforcing IAM on the upload
(moto refuses sts:AssumeRole to any caller while it enforces IAM, so the role is assumed
before enforcement starts).
"""

from __future__ import annotations

import json

import pytest

from functions.cli import main
from functions.shared import policies
from functions.shared.settings import settings
from functions.store import client, lake
from tests.access.conftest import act_as_iam_user, iam_enforced, s3_call

# Everything, except what CdrBucketPolicy denies a principal that is not a drop role.
OPERATOR = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::*/incoming/*"},
    ],
}


def tollgate(*argv: str) -> int:
    return main(list(argv))


@pytest.fixture
def operator(aws, monkeypatch, capsys):
    """acme with two switches; the operator is an IAM user the bucket's refusal applies to."""
    for argv in (
        ("tenant", "create", "acme"),
        ("switch", "create", "acme", "sw1", "--format", "generic"),
        ("switch", "create", "acme", "sw2", "--format", "generic"),
    ):
        assert tollgate(*argv) == 0
    act_as_iam_user(monkeypatch, "ops", OPERATOR)
    capsys.readouterr()


def test_the_operator_itself_may_not_upload(operator):
    bucket = settings().cdr_bucket
    with iam_enforced():
        assert s3_call(client("s3"), "s3:PutObject", bucket, "incoming/acme/sw1/a.csv") == "deny"


def test_cdr_drop_uploads_as_the_switch(operator, tmp_path, capsys, monkeypatch):
    put_cdr = lake.put_cdr

    def enforced(*args, **kwargs):
        with iam_enforced():
            return put_cdr(*args, **kwargs)

    monkeypatch.setattr(lake, "put_cdr", enforced)
    cdrs = tmp_path / "cdr-0001.csv"
    cdrs.write_bytes(b"call_id,caller\nc1,441234\n")
    assert tollgate("cdr", "drop", "acme", "sw2", str(cdrs), "--json") == 0
    dropped = json.loads(capsys.readouterr().out)
    assert dropped["key"] == "incoming/acme/sw2/cdr-0001.csv"
    body = client("s3").get_object(Bucket=settings().cdr_bucket, Key=dropped["key"])["Body"]
    assert body.read() == b"call_id,caller\nc1,441234\n"
    # The switch's own role, the one CdrBucketPolicy lets upload (role/tollgate/drop/*).
    roles = client("iam").list_roles(PathPrefix=policies.DROP_ROLE_PATH)["Roles"]
    assert [r["RoleName"] for r in roles] == ["tollgate-drop-acme-sw2"]
