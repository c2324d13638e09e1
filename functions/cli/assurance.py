"""`tollgate assurance`: the daily switch-to-billing check on demand, and its settings.

    tollgate assurance TENANT --day D [--switch S] [--publish] [--json]
    tollgate assurance TENANT --set quarantine_share=0.1 [--set late_hours=8 ...] [--json]
    tollgate switch assurance TENANT SWITCH --sequence-pattern 'cdr_(\\d+)\\.csv'
        [--sequence-modulus 10000] [--json]

The rules are functions.ingest.assurance's; the scheduled job (app.py `check_assurance`)
runs the same check for yesterday and publishes its alerts. On demand nothing is published
unless --publish: an alert already published by the job is never published again.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from typing import Any

from functions.cli import CliError, by_flag, day_arg, emit, guarded, json_flag


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "assurance",
        help="switch-to-billing revenue assurance: a day's files and calls per switch",
        description="Check a day of a tenant's switches: files received, files refused "
        "whole or failed (none of their calls billed), sequence gaps, "
        "silent hours, late and resent files, quarantine and unrated shares, calls on a "
        "trunk mapped to no account, and the money not billed. Or set its thresholds.",
    )
    parser.add_argument("tenant")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--day", type=day_arg, help="the UTC day to check (YYYY-MM-DD)")
    what.add_argument(
        "--set",
        action="append",
        metavar="NAME=VALUE",
        help="change a threshold of the tenant (quarantine_share, unrated_share, "
        "rejected_files, sequence_gap, silent_hours, late_files, money_not_billed, late_hours, "
        "usual_days); NAME= resets "
        "it to its default; may be repeated",
    )
    parser.add_argument("--switch", help="check this switch only")
    parser.add_argument(
        "--publish",
        action="store_true",
        help="publish the alerts found (each once per tenant, switch, day and check)",
    )
    parser.add_argument("--reason", help="why the thresholds change (kept in the audit trail)")
    by_flag(parser)
    json_flag(parser)
    parser.set_defaults(run=run_assurance)


def register_switch(switch_actions: argparse._SubParsersAction) -> None:
    """`switch assurance`: a switch's file sequence (functions/cli/ops.py's `switch` group)."""
    setting = switch_actions.add_parser(
        "assurance", help="how a switch numbers its CDR files (for the assurance check)"
    )
    setting.add_argument("tenant")
    setting.add_argument("switch")
    setting.add_argument(
        "--sequence-pattern",
        metavar="REGEX",
        help="a regular expression whose first group is the file's sequence number, "
        "e.g. 'cdr_(\\d+)\\.csv'; '' clears it",
    )
    setting.add_argument(
        "--sequence-modulus",
        metavar="N",
        help="the number wraps to 0 at N (e.g. 10000 for 0000-9999); '' clears it",
    )
    setting.add_argument("--reason", help="why (kept in the audit trail)")
    by_flag(setting)
    json_flag(setting)
    setting.set_defaults(run=run_switch_assurance)


def _actor(args: argparse.Namespace) -> Any:
    from functions.store import accounts

    return accounts.caller(args.by or os.environ.get("TOLLGATE_OPERATOR") or None)


@guarded
def run_switch_assurance(args: argparse.Namespace) -> int:
    from functions.store import accounts

    changes: dict[str, Any] = {}
    if args.sequence_pattern is not None:
        changes["sequence_pattern"] = args.sequence_pattern or None
    if args.sequence_modulus is not None:
        changes["sequence_modulus"] = args.sequence_modulus or None
    if not changes:
        stored = accounts.get_assurance_settings(args.tenant)["switches"].get(args.switch, {})
        accounts.get_switch(args.tenant, args.switch)
    else:
        stored, _ = accounts.set_assurance_settings(
            args.tenant, changes, switch=args.switch, actor=_actor(args), reason=args.reason
        )
    payload = {
        "tenant": args.tenant,
        "switch": args.switch,
        "sequence_pattern": stored.get("sequence_pattern"),
        "sequence_modulus": stored.get("sequence_modulus"),
    }
    text = (
        f"{args.tenant}/{args.switch}: sequence {payload['sequence_pattern'] or 'not checked'}"
        + (f", wraps at {payload['sequence_modulus']}" if payload["sequence_modulus"] else "")
    )
    emit(args, payload, text)
    return 0


@guarded
def run_assurance(args: argparse.Namespace) -> int:
    if args.set is not None:
        return _set_thresholds(args)
    from functions.ingest.assurance import run_assurance as check
    from functions.store import accounts, events, files, lake

    result = check(
        args.tenant,
        args.day,
        files=files,
        accounts=accounts,
        lake=lake,
        events=events,
        now=dt.datetime.now(dt.UTC),
        switch=args.switch,
        publish=args.publish,
    )
    payload = result.as_json()
    emit(args, payload, _table(payload))
    return 0


def _set_thresholds(args: argparse.Namespace) -> int:
    from functions.ingest.assurance import thresholds_from
    from functions.store import accounts

    if args.switch or args.publish:
        raise CliError("--switch and --publish go with --day, not --set")
    changes: dict[str, Any] = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise CliError(f"--set {item!r}: use NAME=VALUE")
        changes[name.strip()] = value.strip() or None
    stored, _ = accounts.set_assurance_settings(
        args.tenant, changes, actor=_actor(args), reason=args.reason
    )
    payload = {"tenant": args.tenant, "thresholds": thresholds_from(stored).as_json()}
    text = "\n".join(f"{k:18} {v}" for k, v in payload["thresholds"].items())
    emit(args, payload, f"{args.tenant}: assurance thresholds\n{text}")
    return 0


def _table(payload: dict[str, Any]) -> str:
    """One line per switch, then the alerts."""
    head = (
        "switch",
        "files",
        "refused",
        "missing",
        "resets",
        "silent",
        "late",
        "dup files",
        "dup calls",
        "quarantine",
        "unrated",
        "no account",
        "not billed",
    )
    rows = [head]
    alerts = []
    for s in payload["switches"]:
        rows.append(
            (
                s["switch"],
                str(len(s["files"]["received"])),
                str(len(s["rejected_files"])),
                str(s["sequence"]["missing"]),
                str(len(s["sequence"]["resets"])),
                ",".join(f"{h:02d}h" for h in s["hours"]["silent"]) or "-",
                str(len(s["late_files"])),
                str(len(s["duplicate_files"])),
                str(s["duplicate_calls"]),
                s["quarantine"]["share"],
                s["calls"]["unrated_share"],
                str(s["unknown_account"]["calls"]),
                f"{s['money_not_billed']} {s['currency'] or ''}".strip(),
            )
        )
        alerts += [
            f"  {s['switch']}: {a['check']} {a['value']} (threshold {a['threshold']})"
            for a in s["alerts"]
        ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    title = f"{payload['tenant']} {payload['day']}: revenue assurance"
    tail = ["alerts:", *alerts] if alerts else ["no alerts"]
    if payload["published"]:
        tail.append(f"published {len(payload['published'])} alert(s)")
    return "\n".join([title, *lines, *tail])
