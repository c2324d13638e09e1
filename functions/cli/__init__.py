"""`tollgate`: the operator's command line. Each module here registers one command group."""

from __future__ import annotations

import argparse
import importlib
import sys

# Command modules, each with `register(subparsers)`. Imported lazily by name so that one
# command's heavy imports (moto, duckdb) never slow another command down.
COMMAND_MODULES = ("rate", "deck", "ops", "rerate", "finance", "local", "demo")


class CliError(Exception):
    """A user-facing failure: printed as one clear line, exit status 2."""


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
