"""IAM and STS: the roles that confine tenants and switches, and their temporary credentials.

The policy documents come from functions.shared.policies; this adapter creates the roles,
checks them and assumes them. A role is only ever reused if it is what Tollgate made: its
path and tags name the same tenant (and switch) and it holds no policy but Tollgate's own.
Anything else is refused (ConflictError), because a role with one more policy attached is
no longer confined to its tenant.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import boto3
from botocore.exceptions import ClientError

from functions.shared import policies
from functions.shared.settings import settings
from functions.store import ConflictError, StoreError, check_name, client

POLICY_NAME = "tollgate-scope"  # the one inline policy of every Tollgate role
MAX_SESSION_SECONDS = 12 * 3600  # the roles' MaxSessionDuration (STS allows up to 12 h)
MIN_SESSION_SECONDS = 900  # STS's floor
DEFAULT_SESSION_SECONDS = 3600
# IAM is eventually consistent: a role created a moment ago can be refused by STS for some
# seconds. Waits (s) before each retry of AssumeRole on a role this call has just created.
NEW_ROLE_WAITS = (1, 2, 4, 8, 15)


@dataclass(frozen=True, slots=True)
class Credentials:
    """Temporary credentials of one role session."""

    role_arn: str
    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: datetime
    region: str

    def session(self) -> boto3.session.Session:
        return boto3.session.Session(
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            aws_session_token=self.session_token,
            region_name=self.region,
        )


@cache
def account() -> policies.Account:
    """The caller's partition, region and account (STS GetCallerIdentity needs no grant):
    asked once per process (a warm API container asked it on every usage or CDR request);
    store.reset() forgets it with the clients."""
    sts = client("sts")
    identity = sts.get_caller_identity()
    return policies.Account(
        identity["Arn"].split(":")[1], sts.meta.region_name, identity["Account"]
    )


def query_role_arn(tenant: str, where: policies.Account | None = None) -> str:
    where = where or account()
    return where.role_arn(policies.QUERY_ROLE_PATH, policies.query_role_name(tenant))


def drop_role_arn(tenant: str, switch: str, where: policies.Account | None = None) -> str:
    where = where or account()
    return where.role_arn(policies.DROP_ROLE_PATH, policies.drop_role_name(tenant, switch))


def ensure_query_role(
    tenant: str, *, database: str, workgroup: str, where: policies.Account | None = None
) -> str:
    """Create or refresh a tenant's query role; returns its ARN. Idempotent."""
    check_name("tenant", tenant)
    where = where or account()
    policy = policies.query_policy(
        tenant, where, lake_bucket=settings().lake_bucket, database=database, workgroup=workgroup
    )
    arn, _ = _ensure_role(
        policies.query_role_name(tenant),
        policies.QUERY_ROLE_PATH,
        {policies.TENANT_TAG: tenant, policies.ACCESS_TAG: "query"},
        policy,
        f"Tollgate: Athena queries of tenant {tenant} (its own lake prefixes only)",
        where,
    )
    return arn


def ensure_drop_role(
    tenant: str, switch: str, where: policies.Account | None = None
) -> tuple[str, bool]:
    """Create or refresh a switch's drop role; returns (ARN, created now)."""
    check_name("tenant", tenant)
    check_name("switch", switch)
    where = where or account()
    policy = policies.drop_policy(tenant, switch, where, cdr_bucket=settings().cdr_bucket)
    return _ensure_role(
        policies.drop_role_name(tenant, switch),
        policies.DROP_ROLE_PATH,
        {
            policies.TENANT_TAG: tenant,
            policies.SWITCH_TAG: switch,
            policies.ACCESS_TAG: "cdr-drop",
        },
        policy,
        f"Tollgate: CDR uploads of switch {switch} of tenant {tenant} (its own prefix only)",
        where,
    )


class NotProvisionedError(StoreError):
    """The tenant's query role cannot be assumed: `tollgate access provision` never made it
    (AWS answers AccessDenied for a role that does not exist, as for one it may not assume)."""


def query_credentials(tenant: str, seconds: int = DEFAULT_SESSION_SECONDS) -> Credentials:
    """Assume a tenant's query role (made by functions.store.athena.provision_tenant)."""
    arn = query_role_arn(tenant)
    try:
        return assume(arn, policies.query_role_name(tenant), seconds)
    except ClientError as error:
        if error.response["Error"]["Code"] != "AccessDenied":
            raise
        raise NotProvisionedError(
            f"tenant {tenant!r} has no query role it may assume ({arn}): "
            f"run `tollgate access provision {tenant}`"
        ) from None


def drop_credentials(
    tenant: str, switch: str, seconds: int = DEFAULT_SESSION_SECONDS
) -> Credentials:
    """Ensure a switch's drop role and assume it: upload credentials for its prefix only."""
    arn, created = ensure_drop_role(tenant, switch)
    return assume(arn, policies.drop_role_name(tenant, switch), seconds, new_role=created)


def assume(
    role_arn: str,
    session_name: str,
    seconds: int = DEFAULT_SESSION_SECONDS,
    *,
    new_role: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> Credentials:
    """STS AssumeRole; a role created moments ago is retried while IAM catches up."""
    if not MIN_SESSION_SECONDS <= seconds <= MAX_SESSION_SECONDS:
        raise ValueError(
            f"invalid session duration {seconds}s: use {MIN_SESSION_SECONDS}-{MAX_SESSION_SECONDS}"
        )
    sts = client("sts")
    waits = iter(NEW_ROLE_WAITS if new_role else ())
    while True:
        try:
            answer = sts.assume_role(
                RoleArn=role_arn, RoleSessionName=session_name, DurationSeconds=seconds
            )
            break
        except ClientError as error:
            wait = next(waits, None)
            if error.response["Error"]["Code"] != "AccessDenied" or wait is None:
                raise
            sleep(wait)
    issued = answer["Credentials"]
    return Credentials(
        role_arn,
        issued["AccessKeyId"],
        issued["SecretAccessKey"],
        issued["SessionToken"],
        issued["Expiration"],
        sts.meta.region_name,
    )


def _ensure_role(
    name: str,
    path: str,
    tags: Mapping[str, str],
    policy: dict[str, Any],
    description: str,
    where: policies.Account,
) -> tuple[str, bool]:
    iam = client("iam")
    trust = json.dumps(policies.trust_policy(where))
    created = False
    try:
        role = iam.get_role(RoleName=name)["Role"]
    except iam.exceptions.NoSuchEntityException:
        try:
            role = iam.create_role(
                RoleName=name,
                Path=path,
                AssumeRolePolicyDocument=trust,
                Description=description,
                MaxSessionDuration=MAX_SESSION_SECONDS,
                Tags=[{"Key": key, "Value": value} for key, value in tags.items()],
            )["Role"]
            created = True
        except iam.exceptions.EntityAlreadyExistsException:  # made concurrently: check it
            role = iam.get_role(RoleName=name)["Role"]
    if not created:
        _check_role(iam, role, path, tags)
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=trust)
    iam.put_role_policy(RoleName=name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(policy))
    return role["Arn"], created


def _check_role(iam: Any, role: dict[str, Any], path: str, tags: Mapping[str, str]) -> None:
    """Refuse a role Tollgate did not make for these ids, or one granted more since."""
    name = role["RoleName"]
    held = {tag["Key"]: tag["Value"] for tag in role.get("Tags", [])}
    if role["Path"] != path or any(held.get(key) != value for key, value in tags.items()):
        raise ConflictError(
            f"IAM role {name} exists but is not Tollgate's role for "
            f"{', '.join(f'{k}={v}' for k, v in tags.items())} (path {role['Path']}, "
            f"tags {held}); it is not reused"
        )
    inline = [p for p in _pages(iam, "list_role_policies", name, "PolicyNames") if p != POLICY_NAME]
    attached = [
        p["PolicyArn"] for p in _pages(iam, "list_attached_role_policies", name, "AttachedPolicies")
    ]
    if inline or attached:
        raise ConflictError(
            f"IAM role {name} holds policies Tollgate did not give it "
            f"({', '.join([*inline, *attached])}): remove them; its credentials would reach "
            "beyond its tenant"
        )


def _pages(iam: Any, operation: str, role_name: str, key: str) -> list[Any]:
    pages = iam.get_paginator(operation).paginate(RoleName=role_name)
    return [item for page in pages for item in page[key]]
