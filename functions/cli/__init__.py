"""`tollgate`: the operator's command line. Each module here registers one command group."""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import re
import sys
import zoneinfo
from collections.abc import Callable
from decimal import InvalidOperation
from typing import Any

from functions.shared.money import to_units, units_to_str

# Command modules, each with `register(subparsers)`. Imported lazily by name so that one
# command's heavy imports (moto, duckdb) never slow another command down.
COMMAND_MODULES = ("rate", "deck", "ops", "ledger", "rerate", "finance", "local", "demo")
AMOUNT_SCALE = 6  # balances, payments, adjustments and credit limits are micro-units


class CliError(Exception):
    """A user-facing failure: printed as one clear line, exit status 2."""


# --- what every command module shares ----------------------------------------------------


def guarded(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn the adapters' errors into one clear CliError line."""

    @functools.wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        # Imported here: building the parser must not pay for boto3.
        from botocore.exceptions import BotoCoreError

        from functions.store import StoreError

        try:
            return run(args)
        except (StoreError, ValueError) as error:
            raise CliError(str(error)) from error
        except BotoCoreError as error:
            raise CliError(f"cannot reach AWS: {error}") from error

    return wrapper


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


def emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    """Print the payload as JSON with --json, else the human text."""
    print(json.dumps(payload) if args.json else text)


def json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


# --- the command line ----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tollgate", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"functions.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except CliError as error:
        print(f"tollgate: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
