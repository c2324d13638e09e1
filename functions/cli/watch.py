"""`tollgate switch watch`: alarm when a switch stops sending CDR files."""

from __future__ import annotations

import argparse

from functions.cli import CliError, emit, guarded, json_flag


def register(switch_actions: argparse._SubParsersAction) -> None:
    """Add `watch` to the `switch` group (functions/cli/ops.py)."""
    watch = switch_actions.add_parser(
        "watch", help="alarm when a switch sends no CDR file for N hours"
    )
    watch.add_argument("tenant")
    watch.add_argument("switch")
    which = watch.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--silence-hours",
        type=int,
        metavar="N",
        help="hours without a file before the alarm fires (1-168); replaces an earlier watch",
    )
    which.add_argument("--off", action="store_true", help="stop watching the switch")
    watch.add_argument(
        "--notify",
        action="append",
        default=[],
        metavar="TOPIC_ARN",
        help="SNS topic to notify (the stack's AlarmTopicArn output); may be repeated",
    )
    json_flag(watch)
    watch.set_defaults(run=run_switch_watch)


@guarded
def run_switch_watch(args: argparse.Namespace) -> int:
    from functions.store import accounts, monitoring

    switch = accounts.get_switch(args.tenant, args.switch)  # a watch names a real switch
    if args.off:
        if args.notify:
            raise CliError("--notify goes with --silence-hours, not --off")
        monitoring.delete_switch_silence_alarm(switch.tenant, switch.switch)
        payload = {"tenant": switch.tenant, "switch": switch.switch, "watched": False}
        emit(args, payload, f"{switch.tenant}/{switch.switch}: no longer watched")
        return 0
    alarm = monitoring.put_switch_silence_alarm(
        switch.tenant, switch.switch, args.silence_hours, actions=tuple(args.notify)
    )
    payload = {
        "tenant": alarm.tenant,
        "switch": alarm.switch,
        "watched": True,
        "alarm": alarm.name,
        "silence_hours": alarm.hours,
        "notify": list(alarm.actions),
    }
    notify = f", notifying {', '.join(alarm.actions)}" if alarm.actions else ""
    emit(
        args,
        payload,
        f"{alarm.tenant}/{alarm.switch}: alarm {alarm.name} fires after {alarm.hours} h "
        f"without a file{notify}",
    )
    return 0
