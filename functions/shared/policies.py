"""IAM policies that confine a tenant's principals to the tenant's own S3 prefixes.

Two kinds of role, created by functions/store/iam.py from these documents:

- a query role per tenant (path /tollgate/query/): `tollgate query --tenant T` runs Athena as
  it. It reads T's lake prefixes `{rated,charges,normalized,quarantine}/tenant=T/`, reads and
  writes T's query results under `athena-results/tenant=T/`, reads the Glue metadata of T's
  own database and runs queries in T's own workgroup; nothing else.
- a drop role per switch (path /tollgate/drop/): the switch uploads CDR files with its
  temporary credentials under `incoming/T/SWITCH/`, and can do nothing else.

Both trust the account (any principal its own IAM policies let assume them) and grant no
sts:TagSession, so nobody can start a session whose tags override the role's. The CDR
bucket's policy (`cdr_bucket_policy`, shipped in infra/package.yaml) refuses uploads under
incoming/ from every principal that is not a drop role. Pure: documents only, no AWS call.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from functions.shared.ids import check_name

VERSION = "2012-10-17"
QUERY_ROLE_PATH = "/tollgate/query/"
DROP_ROLE_PATH = "/tollgate/drop/"
LAKE_AREAS = ("rated", "charges", "normalized", "quarantine")  # what a tenant may query
RESULTS_AREA = "athena-results"
TENANT_TAG = "tollgate:tenant"
SWITCH_TAG = "tollgate:switch"
ACCESS_TAG = "tollgate:access"  # "query" or "cdr-drop": what the role is for
ROLE_NAME_LIMIT = 64  # IAM
# Buckets, Glue databases and workgroups named in a policy: never a wildcard or variable.
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")

ATHENA_QUERY_ACTIONS = (
    "athena:StartQueryExecution",
    "athena:StopQueryExecution",
    "athena:GetQueryExecution",
    "athena:GetQueryResults",
    "athena:GetQueryResultsStream",
    "athena:GetWorkGroup",
)
# No glue:GetDatabases: listing the catalog would name every tenant's database.
GLUE_READ_ACTIONS = (
    "glue:GetDatabase",
    "glue:GetTable",
    "glue:GetTables",
    "glue:GetPartition",
    "glue:GetPartitions",
    "glue:BatchGetPartition",
)
RESULT_ACTIONS = (
    "s3:GetObject",
    "s3:PutObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
)
DROP_ACTIONS = ("s3:PutObject", "s3:AbortMultipartUpload")  # a multipart upload is PutObject


@dataclass(frozen=True, slots=True)
class Account:
    """Where the roles live: the AWS partition, region and account id."""

    partition: str  # aws, aws-cn, aws-us-gov
    region: str
    account_id: str

    def role_arn(self, path: str, name: str) -> str:
        return f"arn:{self.partition}:iam::{self.account_id}:role{path}{name}"

    def s3(self, bucket: str, key: str | None = None) -> str:
        return f"arn:{self.partition}:s3:::{bucket}" + ("" if key is None else f"/{key}")

    def arn(self, service: str, resource: str) -> str:
        """A regional resource's ARN, e.g. athena's `workgroup/NAME`."""
        return f"arn:{self.partition}:{service}:{self.region}:{self.account_id}:{resource}"


def _plain(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _PLAIN.fullmatch(value):
        raise ValueError(f"invalid {kind} {value!r} for a policy: letters, digits, '.', '_', '-'")
    return value


def name_part(identifier: str) -> str:
    """An id as lowercase letters, digits and `_`; injective, so distinct ids never share it.

    Any character but a lowercase letter or digit becomes `_` + two hex digits (ids are
    ASCII): 'Acme', 'acme', 'a-b' and 'a_b' stay apart even where names ignore case (IAM).
    """
    return "".join(c if c in _NAME_CHARS else f"_{ord(c):02x}" for c in identifier)


def _role_name(kind: str, *ids: str) -> str:
    # Parts hold no '-', so joining them with '-' stays injective. A name too long for IAM
    # keeps a readable head and ends in a digest of the ids themselves.
    name = "-".join(("tollgate", kind, *map(name_part, ids)))
    if len(name) < ROLE_NAME_LIMIT:
        return name
    digest = hashlib.sha256("/".join(ids).encode()).hexdigest()[:16]
    return f"{name[: ROLE_NAME_LIMIT - 17]}-{digest}"


def query_role_name(tenant: str) -> str:
    """e.g. tollgate-query-acme (path /tollgate/query/)."""
    return _role_name("query", check_name("tenant", tenant))


def drop_role_name(tenant: str, switch: str) -> str:
    """e.g. tollgate-drop-acme-sw1 (path /tollgate/drop/)."""
    return _role_name("drop", check_name("tenant", tenant), check_name("switch", switch))


def lake_prefixes(tenant: str) -> tuple[str, ...]:
    """The lake prefixes of a tenant's tables: `rated/tenant=acme/`, ..."""
    check_name("tenant", tenant)
    return tuple(f"{area}/tenant={tenant}/" for area in LAKE_AREAS)


def results_prefix(tenant: str) -> str:
    """Where a tenant's workgroup writes its query results."""
    return f"{RESULTS_AREA}/tenant={check_name('tenant', tenant)}/"


def drop_prefix(tenant: str, switch: str) -> str:
    """Where a switch's CDR files land (functions.store.lake.cdr_key)."""
    return f"incoming/{check_name('tenant', tenant)}/{check_name('switch', switch)}/"


def trust_policy(account: Account) -> dict[str, Any]:
    """Who may assume a Tollgate role: principals of this account that IAM lets (no tags)."""
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "AssumedFromThisAccount",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{account.partition}:iam::{account.account_id}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def query_policy(
    tenant: str, account: Account, *, lake_bucket: str, database: str, workgroup: str
) -> dict[str, Any]:
    """The query role's permissions: its own lake prefixes, results, database and workgroup."""
    prefixes = lake_prefixes(tenant)
    results = results_prefix(tenant)
    lake_bucket = _plain("bucket", lake_bucket)
    database, workgroup = _plain("database", database), _plain("workgroup", workgroup)
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "ReadOwnLakeTables",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": [account.s3(lake_bucket, f"{prefix}*") for prefix in prefixes],
            },
            {
                "Sid": "ListOwnLakePrefixes",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": account.s3(lake_bucket),
                "Condition": {
                    "StringLike": {"s3:prefix": [f"{prefix}*" for prefix in (*prefixes, results)]}
                },
            },
            {
                "Sid": "LocateLakeBucket",
                "Effect": "Allow",
                "Action": "s3:GetBucketLocation",
                "Resource": account.s3(lake_bucket),
            },
            {
                "Sid": "OwnQueryResults",
                "Effect": "Allow",
                "Action": list(RESULT_ACTIONS),
                "Resource": account.s3(lake_bucket, f"{results}*"),
            },
            {
                "Sid": "QueryInOwnWorkgroup",
                "Effect": "Allow",
                "Action": list(ATHENA_QUERY_ACTIONS),
                "Resource": account.arn("athena", f"workgroup/{workgroup}"),
            },
            {
                "Sid": "ReadOwnCatalog",
                "Effect": "Allow",
                "Action": list(GLUE_READ_ACTIONS),
                "Resource": [
                    account.arn("glue", "catalog"),
                    account.arn("glue", f"database/{database}"),
                    account.arn("glue", f"table/{database}/*"),
                ],
            },
        ],
    }


def drop_policy(tenant: str, switch: str, account: Account, *, cdr_bucket: str) -> dict[str, Any]:
    """A drop role's permissions: upload under its own switch's prefix, nothing else."""
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "UploadOwnSwitchCdrs",
                "Effect": "Allow",
                "Action": list(DROP_ACTIONS),
                "Resource": account.s3(
                    _plain("bucket", cdr_bucket), f"{drop_prefix(tenant, switch)}*"
                ),
            }
        ],
    }


def cdr_bucket_policy(account: Account, cdr_bucket: str) -> dict[str, Any]:
    """The CDR bucket's policy (infra/package.yaml): only drop roles upload, and only that.

    A file under incoming/ is billed to the tenant its key names, so an upload there is a
    charge. Explicit denies win over any Allow a principal holds (an administrator's `s3:*`
    included); each drop role's own policy then confines it to its switch's prefix.
    """
    drop_roles = account.role_arn(DROP_ROLE_PATH, "*")
    cdr_bucket = _plain("bucket", cdr_bucket)
    bucket = [account.s3(cdr_bucket), account.s3(cdr_bucket, "*")]
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "OnlySwitchDropRolesUpload",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": account.s3(cdr_bucket, "incoming/*"),
                "Condition": {"ArnNotLike": {"aws:PrincipalArn": drop_roles}},
            },
            {
                "Sid": "DropRolesOnlyUpload",
                "Effect": "Deny",
                "Principal": "*",
                "NotAction": list(DROP_ACTIONS),
                "Resource": bucket,
                "Condition": {"ArnLike": {"aws:PrincipalArn": drop_roles}},
            },
            {
                "Sid": "TlsOnly",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": bucket,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ],
    }
