"""Running `tollgate` commands in-process, as the CLI tests do."""

from __future__ import annotations

import json

from functions.cli import build_parser


def tollgate(*argv: str) -> int:
    """One command line parsed as `main` parses it; its CliError raised, not printed."""
    args = build_parser(argv[0]).parse_args(list(argv))
    return args.run(args)


def last_json(capsys) -> dict:
    """The last line the command printed, as JSON."""
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])
