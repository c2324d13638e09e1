"""Helpers for the tenant-isolation tests: moto enforcing IAM, and S3 calls judged by it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import ClientError
from moto.core import enable_iam_authentication

from functions.shared import policies

ACCOUNT = policies.Account("aws", "us-east-1", "123456789012")  # moto's default account


@contextmanager
def iam_enforced() -> Iterator[None]:
    """moto checks every request's signature and the caller's IAM policies (S3 keys too).

    Only credentials moto issued (IAM users' keys, STS sessions) work in here: the fixtures'
    'testing' keys do not.
    """
    with enable_iam_authentication():
        yield


def act_as_iam_user(monkeypatch: Any, name: str, policy: dict[str, Any]) -> None:
    """From now on every store call is made as IAM user `name` holding `policy` (inline),
    with keys moto issued: what moto checks while it enforces IAM."""
    from functions import store
    from functions.store import client

    users = client("iam")
    users.create_user(UserName=name)
    users.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(policy))
    key = users.create_access_key(UserName=name)["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    store.reset()


def s3_call(s3: Any, action: str, bucket: str, key: str) -> str:
    """'allow' if S3 let the call through (a missing key included), 'deny' if refused."""
    try:
        if action == "s3:GetObject":
            s3.get_object(Bucket=bucket, Key=key)
        elif action == "s3:PutObject":
            s3.put_object(Bucket=bucket, Key=key, Body=b"x")
        else:
            raise AssertionError(action)
    except ClientError as error:
        code = error.response["Error"]["Code"]
        if code == "AccessDenied":
            return "deny"
        if code != "NoSuchKey":
            raise
    return "allow"
