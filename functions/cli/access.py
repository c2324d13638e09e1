"""`tollgate access provision` and `tollgate switch credentials`: who may touch a tenant's data.

`access provision TENANT` creates (or refreshes) what confines the tenant's lake queries on
AWS: its Glue database of tables over its own prefixes, its Athena workgroup and its query
role (functions.store.athena.provision_tenant); `tollgate query --tenant` then runs as that
role. `switch credentials TENANT SWITCH` ensures the switch's drop role and prints temporary
credentials that may upload only under incoming/TENANT/SWITCH/ (functions.store.iam). On the
local stack both run against moto's IAM and STS.
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime

from functions.cli import CliError, emit, guarded, json_flag


def register(subparsers: argparse._SubParsersAction) -> None:
    access = subparsers.add_parser(
        "access", help="tenant isolation on AWS: a tenant's query database, workgroup and role"
    )
    actions = access.add_subparsers(dest="access_action", required=True, metavar="ACTION")
    provision = actions.add_parser(
        "provision",
        help="create or refresh a tenant's Glue database, Athena workgroup and query role",
    )
    provision.add_argument("tenant")
    provision.add_argument(
        "--database",
        default=os.environ.get("TOLLGATE_ATHENA_DATABASE", "tollgate"),
        help="the Glue database of infra/glue.yaml (the tenant's is DATABASE_t_TENANT)",
    )
    provision.add_argument(
        "--workgroup-prefix",
        default=os.environ.get("TOLLGATE_ATHENA_WORKGROUP", "tollgate"),
        help="the tenant's workgroup is PREFIX-t-TENANT",
    )
    json_flag(provision)
    provision.set_defaults(run=run_access_provision)


def register_switch_credentials(switch_actions: argparse._SubParsersAction) -> None:
    """`tollgate switch credentials`, registered in the `switch` group (functions.cli.ops)."""
    credentials = switch_actions.add_parser(
        "credentials",
        help="temporary credentials a switch uploads its CDR files with (its own prefix only)",
    )
    credentials.add_argument("tenant")
    credentials.add_argument("switch")
    credentials.add_argument(
        "--duration",
        type=int,
        default=3600,
        metavar="SECONDS",
        help="how long they last, 900-43200 (default 3600)",
    )
    json_flag(credentials)
    credentials.set_defaults(run=run_switch_credentials)


@guarded
def run_access_provision(args: argparse.Namespace) -> int:
    from functions.shared import policies
    from functions.shared.settings import settings
    from functions.store import accounts, athena

    accounts.get_tenant(args.tenant)  # an unknown tenant: say so
    scope = athena.provision_tenant(args.tenant, args.database, args.workgroup_prefix)
    lake = settings().lake_bucket
    reads = [f"s3://{lake}/{prefix}" for prefix in policies.lake_prefixes(scope.tenant)]
    results = f"s3://{lake}/{policies.results_prefix(scope.tenant)}"
    payload = {
        "tenant": scope.tenant,
        "database": scope.database,
        "workgroup": scope.workgroup,
        "role_arn": scope.role_arn,
        "reads": reads,
        "results": results,
    }
    emit(
        args,
        payload,
        "\n".join(
            [
                f"tenant {scope.tenant}: queries run as {scope.role_arn}",
                f"  database {scope.database}, workgroup {scope.workgroup} (results {results})",
                "  may read only " + ", ".join(reads),
            ]
        ),
    )
    return 0


@guarded
def run_switch_credentials(args: argparse.Namespace) -> int:
    from functions.shared import policies
    from functions.shared.settings import settings
    from functions.store import accounts, iam

    if not iam.MIN_SESSION_SECONDS <= args.duration <= iam.MAX_SESSION_SECONDS:
        raise CliError(
            f"invalid --duration {args.duration}: use "
            f"{iam.MIN_SESSION_SECONDS}-{iam.MAX_SESSION_SECONDS} seconds"
        )
    accounts.get_switch(args.tenant, args.switch)  # an unknown tenant or switch: say so
    issued = iam.drop_credentials(args.tenant, args.switch, args.duration)
    bucket = settings().cdr_bucket
    prefix = policies.drop_prefix(args.tenant, args.switch)
    expiration = _utc(issued.expiration)
    payload = {
        "tenant": args.tenant,
        "switch": args.switch,
        "role_arn": issued.role_arn,
        "bucket": bucket,
        "prefix": prefix,
        "region": issued.region,
        "expiration": expiration,
        "access_key_id": issued.access_key_id,
        "secret_access_key": issued.secret_access_key,
        "session_token": issued.session_token,
    }
    # Shell form, so that `eval "$(tollgate switch credentials T S)"` sets them.
    text = [
        f"# switch {args.tenant}/{args.switch} may upload CDR files under "
        f"s3://{bucket}/{prefix} only, until {expiration}",
        f"# role {issued.role_arn}",
        f"export AWS_ACCESS_KEY_ID={issued.access_key_id}",
        f"export AWS_SECRET_ACCESS_KEY={issued.secret_access_key}",
        f"export AWS_SESSION_TOKEN={issued.session_token}",
        f"export AWS_DEFAULT_REGION={issued.region}",
    ]
    emit(args, payload, "\n".join(text))
    return 0


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
