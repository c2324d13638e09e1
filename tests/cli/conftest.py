"""Running `tollgate` commands in-process, as the CLI and local-stack tests do."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest

from functions.cli import build_parser, main
from tests.conftest import operator_account


def tollgate(*argv: str) -> int:
    """One command line parsed as `main` parses it; its CliError raised, not printed."""
    args = build_parser(argv[0]).parse_args(list(argv))
    return args.run(args)


def last_json(capsys) -> dict:
    """The last line the command printed, as JSON."""
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def run_command(capsys, *argv: str) -> tuple[int, str, str]:
    """One command line through `main`, as a shell runs it: exit status, stdout, stderr."""
    capsys.readouterr()
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def json_document(capsys, *argv: str) -> Any:
    """The one JSON document a command prints with --json (the whole of its stdout)."""
    status, out, err = run_command(capsys, *argv, "--json")
    assert status == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def tenant_numbers() -> Iterator[itertools.count]:
    """One moto account for a test module (provisioning it costs a second or two), shared by
    its tests, each of which makes a tenant of its own in it: `f"acme{next(numbers)}"`."""
    with operator_account():
        yield itertools.count(1)
