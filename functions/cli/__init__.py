"""`tollgate`: the operator's command line. Each module here registers one command group.

Every command takes --json and then prints exactly one JSON document on stdout (a list where
there are many records); errors go to stderr as one line. Exit status: 0 done, 1 error (AWS
unreachable or refusing, a conflict with the stored state, an unexpected failure), 2 bad usage
or bad input (an unknown option, an invalid value or file, an unknown tenant, switch, account
or file).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import gc
import importlib
import json
import re
import sys
import zoneinfo
from collections.abc import Callable
from decimal import InvalidOperation
from typing import Any

from functions.shared.money import AMOUNT_SCALE, to_units, units_to_str

# Command modules, each with `register(subparsers)`, by the top-level commands each registers.
# A command line naming one of them imports that module alone: one command's imports (boto3,
# moto, duckdb) never slow another down, and `tollgate rate` starts as fast as it can.
COMMAND_MODULES = {
    "rate": ("rate",),
    "deck": ("deck", "plan"),
    "ops": ("tenant", "switch", "account", "cdr", "file"),
    "recovery": ("dlq",),
    "access": ("access",),
    "ledger": ("balance", "adjust", "statement"),
    "payments": ("payment",),
    "dunning": ("dunning",),
    "rerate": ("rerate",),
    "finance": ("query", "report"),
    "local": ("local",),
    "demo": ("demo",),
    "products": ("did", "recurring"),
    "contracts": ("tier", "bundle"),
    "invoices": ("billing", "invoice"),
    "fraud": ("fraud",),
    "apikeys": ("apikey",),
    "users": ("user",),
    "audit": ("audit",),
    "routes": ("routes",),
    "authz": ("authz", "authz-cap"),
    "assurance": ("assurance",),
    "reconcile": ("reconcile",),
}
_MODULE_OF = {command: module for module, names in COMMAND_MODULES.items() for command in names}

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
EXIT_CODES = """\
exit status:
  0  done (also when there was nothing to do, e.g. a payment reference already recorded)
  1  error: AWS unreachable or refusing, a conflict with the stored state (already exists,
     changed meanwhile, a change that would break history or the reseller chain), an
     unexpected failure
  2  bad usage or bad input: an unknown command or option, an invalid value or file, an
     unknown tenant, switch, account or file

With --json a command prints exactly one JSON document on stdout (a list where there are
many records); errors are one line on stderr whatever the format."""


class CliError(Exception):
    """A failure reported as one clear line; by default bad usage or input (exit status 2)."""

    exit_code = EXIT_USAGE


class OperationError(CliError):
    """A well-formed request that could not be carried out (AWS, a store conflict): exit 1."""

    exit_code = EXIT_ERROR


# --- what every command module shares ----------------------------------------------------


def cli_error(error: Exception) -> CliError | None:
    """The adapters' and AWS's errors as one clear line with its exit status; None: a bug."""
    # Imported here: building the parser must not pay for boto3.
    from botocore.exceptions import BotoCoreError, ClientError
    from pynamodb.exceptions import PynamoDBException

    from functions.store import NotFoundError, StoreError

    if isinstance(error, CliError):
        return error
    if isinstance(error, NotFoundError | ValueError):  # a name or value the operator typed
        return CliError(str(error))
    if isinstance(error, StoreError):  # a conflict with the stored state
        return OperationError(str(error))
    if isinstance(error, ClientError):
        return OperationError(f"AWS refused: {error}")
    if isinstance(error, BotoCoreError):
        return OperationError(f"cannot reach AWS: {error}")
    if isinstance(error, PynamoDBException):  # DynamoDB through PynamoDB
        if isinstance(error.cause, BotoCoreError):
            return OperationError(f"cannot reach AWS: {error.cause}")
        return OperationError(f"DynamoDB refused: {error.cause_response_message or error.msg}")
    return None


Command = Callable[[argparse.Namespace], int]


def guarded_by(translate: Callable[[Exception], CliError | None]) -> Callable[[Command], Command]:
    """A decorator turning the errors `translate` knows into one clear CliError line; the
    others (None: a bug) propagate with their traceback."""

    def decorate(run: Command) -> Command:
        @functools.wraps(run)
        def wrapper(args: argparse.Namespace) -> int:
            try:
                return run(args)
            except Exception as error:
                translated = translate(error)
                if translated is None or translated is error:
                    raise
                raise translated from error

        return wrapper

    return decorate


guarded = guarded_by(cli_error)  # the adapters' and AWS's errors (see `cli_error`)


def day_arg(text: str) -> dt.date:
    """A day typed as YYYY-MM-DD (an argparse type: its error names the option)."""
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid date {text!r}: use YYYY-MM-DD") from None


def tenant_today(tenant: Any) -> dt.date:
    """Today in the tenant's time zone: the day its statements, DIDs and bundles count in."""
    from zoneinfo import ZoneInfo

    return dt.datetime.now(ZoneInfo(tenant.timezone)).date()


def parse_amount(text: str, what: str) -> int:
    """An exact decimal amount (a sign allowed) in micro-units; never through float."""
    try:
        return to_units(text.strip(), AMOUNT_SCALE)
    except (InvalidOperation, ValueError) as error:
        detail = str(error) if isinstance(error, ValueError) else "not a number"
        raise CliError(f"invalid {what} {text!r}: {detail}") from None


def money_text(units: int) -> str:
    """Micro-units as a decimal string with 6 places."""
    return units_to_str(units, AMOUNT_SCALE)


def currency_code(text: str) -> str:
    code = text.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise CliError(f"invalid currency {text!r}: use a 3-letter ISO code such as USD")
    return code


def timezone_name(text: str) -> str:
    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise CliError(
            f"unknown time zone {text!r}: use an IANA name such as Europe/London"
        ) from None
    return text


def emit(args: argparse.Namespace, payload: dict[str, Any] | list[Any], text: str) -> None:
    """Print the payload as one JSON document with --json, else the human text."""
    print(json.dumps(payload) if args.json else text)


def by_flag(parser: argparse.ArgumentParser) -> None:
    """`--by NAME`: who makes a change, recorded with it."""
    parser.add_argument(
        "--by",
        metavar="NAME",
        help="who makes the change, recorded with it (default: $TOLLGATE_OPERATOR, else your "
        "AWS identity)",
    )


def json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document for scripts (a list where there are many records)",
    )


# --- the command line ----------------------------------------------------------------------


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or with `command` (a top-level command) only the group that
    registers it, which parses that command's arguments exactly as the whole one does."""
    parser = argparse.ArgumentParser(
        prog="tollgate",
        description="Operate Tollgate, serverless billing for wholesale VoIP carriers.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    names = [_MODULE_OF[command]] if command in _MODULE_OF else list(COMMAND_MODULES)
    for name in names:
        module = importlib.import_module(f"functions.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status (argparse exits 2 itself on bad usage).

    Anything else is a bug: it propagates, so Python prints its traceback and exits 1.
    """
    argv = sys.argv[1:] if argv is None else argv
    # Only the named command's group; anything else (--help, a typo) gets the whole parser.
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or EXIT_OK)
    except BrokenPipeError:
        return EXIT_OK
    except Exception as error:
        failure = cli_error(error)
        if failure is None:
            raise
        print(f"tollgate: error: {failure}", file=sys.stderr)
        return failure.exit_code


def process_main() -> int:
    """`tollgate` as a process (the console script, `python -m functions.cli`): `main`, then
    an exit without the collector's passes over every object left (modules, decks, Arrow
    wrappers), which took ~25 ms after `tollgate rate`. Objects go on being freed by their
    reference counts; every file a command writes is closed before it returns. Tests call
    `main` itself, in a process that goes on."""
    code = main()
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(main())
