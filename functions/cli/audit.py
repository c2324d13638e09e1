"""`tollgate audit TENANT`: every audit entry of a tenant, newest first: who changed which
tenant, switch, account or API key setting, when and why (an API key's writes name the key:
`apikey:<key id>`)."""

from __future__ import annotations

import argparse
import datetime as dt

from functions.cli import day_arg, emit, guarded, json_flag

SUBJECTS = ("tenant", "switch", "account", "apikey")


def register(subparsers: argparse._SubParsersAction) -> None:
    audit = subparsers.add_parser(
        "audit",
        help="a tenant's audit log, newest first",
        description="Every recorded change of a tenant's settings, switches, accounts and API "
        "keys, newest first: when, by whom (an operator's name, or apikey:<key id> for the "
        "API), the AWS identity it ran as, the fields changed (old -> new) and why.",
    )
    audit.add_argument("tenant")
    audit.add_argument("--subject", choices=SUBJECTS, help="only changes of this kind of thing")
    audit.add_argument(
        "--since", type=day_arg, metavar="YYYY-MM-DD", help="only changes from this day on (UTC)"
    )
    json_flag(audit)
    audit.set_defaults(run=run_audit)


@guarded
def run_audit(args: argparse.Namespace) -> int:
    from functions.cli.ops import _audit_payload, _changes_text
    from functions.store import accounts

    accounts.get_tenant(args.tenant)  # an unknown tenant is bad input, not an empty log
    since = None
    if args.since is not None:
        since = dt.datetime.combine(args.since, dt.time(), dt.UTC)
    entries = accounts.list_tenant_audit(args.tenant, args.subject, since)
    payload = [{"subject": e.subject, "name": e.name, **_audit_payload(e)} for e in entries]
    lines = []
    for entry in payload:
        who = entry["by"]
        if entry["by"] != entry["principal"]:
            who += f" ({entry['principal']})"
        why = f" ({entry['reason']})" if entry["reason"] else ""
        lines.append(
            f"{entry['at']}  {entry['subject']} {entry['name']}  {who}: {_changes_text(entry)}{why}"
        )
    emit(args, payload, "\n".join(lines) if lines else f"no audit entries in {args.tenant}")
    return 0
