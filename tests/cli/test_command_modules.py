"""The command line imports only the group of the command it runs (functions.cli.main)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from functions.cli import COMMAND_MODULES, build_parser

ROOT = Path(__file__).resolve().parents[2]


def top_level_commands(parser) -> set[str]:
    (group,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return set(group.choices)


@pytest.mark.parametrize("module", sorted(COMMAND_MODULES))
def test_each_group_registers_the_commands_it_is_listed_with(module):
    for command in COMMAND_MODULES[module]:
        assert top_level_commands(build_parser(command)) == set(COMMAND_MODULES[module])


def test_the_whole_parser_is_every_group():
    every = {command for names in COMMAND_MODULES.values() for command in names}
    assert top_level_commands(build_parser()) == every


def test_a_command_parses_the_same_through_its_group_as_through_the_whole():
    argv = [
        "rate",
        "c.csv",
        "--format",
        "generic",
        "--customer-deck",
        "s.csv",
        "--out",
        "r.parquet",
    ]
    alone, whole = build_parser("rate").parse_args(argv), build_parser().parse_args(argv)
    assert vars(alone) == vars(whole)


def test_a_command_line_loads_its_own_group_alone():
    probe = (
        "import sys; from functions.cli import build_parser; build_parser(sys.argv[1]); "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('functions.cli.'))))"
    )

    def loaded(command: str) -> set[str]:
        run = [sys.executable, "-c", probe, command]
        out = subprocess.run(run, cwd=ROOT, capture_output=True, text=True, check=True).stdout
        return {name.removeprefix("functions.cli.") for name in out.split()}

    assert loaded("rate") == {"rate"}
    assert loaded("dlq") == {"recovery"}
    assert loaded("--help") >= set(COMMAND_MODULES)
