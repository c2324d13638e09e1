"""`tollgate deck ... --plan`, `tollgate plan rule|rules|unrule` and `switch map --plan` on moto."""

from __future__ import annotations

import pytest

from functions.cli import main
from functions.store import accounts, lake
from tests.cli.conftest import json_document, run_command

DEFAULT = "prefix,destination,rate\n44,UK,0.010\n"
CLI = "prefix,destination,rate\n44,UK CLI,0.020\n"
NCLI = "prefix,destination,rate\n44,UK NCLI,0.005\n"


@pytest.fixture
def acme(aws, tmp_path):
    """A tenant, a customer and a supplier; `deck(name, text)` writes a deck file."""
    assert main(["tenant", "create", "acme"]) == 0
    assert main(["account", "create", "acme", "cust", "--kind", "customer"]) == 0
    assert main(["account", "create", "acme", "tata", "--kind", "supplier"]) == 0

    def deck(name: str, text: str) -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return deck


def test_each_plan_is_its_own_deck_timeline(acme, capsys):
    first = json_document(capsys, "deck", "upload", "acme", "cust", acme("d.csv", DEFAULT))
    cli = json_document(
        capsys, "deck", "upload", "acme", "cust", acme("c.csv", CLI), "--plan", "cli"
    )
    ncli = json_document(
        capsys, "deck", "upload", "acme", "cust", acme("n.csv", NCLI), "--plan", "ncli"
    )
    assert [(d["plan"], d["version"], d["base"]) for d in (first, cli, ncli)] == [
        ("default", 1, None),
        ("cli", 2, None),  # a plan's first version: composed on nothing, not on default's
        ("ncli", 3, None),
    ]
    # The same file again on its plan changes nothing; on another plan it is a new version.
    again = json_document(
        capsys, "deck", "upload", "acme", "cust", acme("c.csv", CLI), "--plan", "cli"
    )
    assert (again["created"], again["version"]) == (False, 2)
    # The lake path has no plan: versions are unique per account.
    assert lake.get_deck("acme", "cust", 2).column("destination").to_pylist() == ["UK CLI"]

    listing = json_document(capsys, "deck", "list", "acme", "cust")
    assert listing["plans"] == {"default": 1, "cli": 2, "ncli": 3}
    assert [(v["plan"], v["active"]) for v in listing["versions"]] == [
        ("default", True),
        ("cli", True),
        ("ncli", True),
    ]
    only = json_document(capsys, "deck", "list", "acme", "cust", "--plan", "cli")
    assert [v["version"] for v in only["versions"]] == [2]

    shown = json_document(capsys, "deck", "show", "acme", "cust", "--plan", "ncli")
    assert (shown["plan"], shown["version"]) == ("ncli", 3)
    assert [e["rate"] for e in shown["entries"]] == ["0.00500000"]
    default = json_document(capsys, "deck", "show", "acme", "cust")
    assert default["entries"][0]["rate"] == "0.01000000"

    shown = json_document(capsys, "account", "show", "acme", "cust")
    assert shown["plans"] == {"default": 1, "cli": 2, "ncli": 3}
    _, out, _ = run_command(capsys, "account", "show", "acme", "cust")
    assert "plans             default v1, cli v2, ncli v3" in out


def test_rollback_stays_within_its_plan(acme, capsys):
    main(["deck", "upload", "acme", "cust", acme("c.csv", CLI), "--plan", "cli"])
    main(["deck", "upload", "acme", "cust", acme("n.csv", NCLI), "--plan", "cli"])
    main(["deck", "upload", "acme", "cust", acme("d.csv", DEFAULT)])
    status, _, err = run_command(capsys, "deck", "rollback", "acme", "cust", "1")
    assert status == 2
    assert "deck v1 of acme/cust is of plan cli, not default: give --plan cli" in err
    back = json_document(capsys, "deck", "rollback", "acme", "cust", "1", "--plan", "cli")
    assert (back["plan"], back["version"], back["restores"]) == ("cli", 4, 1)
    account = accounts.get_account("acme", "cust")
    assert (account.deck_version, account.plan_versions) == (3, {"cli": 4})


def test_show_of_a_plan_without_a_deck_says_so(acme, capsys):
    status, _, err = run_command(capsys, "deck", "show", "acme", "cust", "--plan", "eea")
    assert (status, err.strip()) == (2, "tollgate: error: acme/cust plan eea has no deck yet")


def test_caller_rules_are_set_listed_and_removed(acme, capsys):
    main(["deck", "upload", "acme", "cust", acme("n.csv", NCLI), "--plan", "ncli"])
    ruled = json_document(
        capsys, "plan", "rule", "acme", "cust", "ncli", "--callers", "+33,0049,336"
    )
    assert ruled["rules"] == [
        {"callers": "33", "plan": "ncli"},
        {"callers": "336", "plan": "ncli"},
        {"callers": "49", "plan": "ncli"},
    ]
    json_document(capsys, "plan", "rule", "acme", "cust", "cli", "--callers", "336")
    status, out, _ = run_command(capsys, "plan", "rules", "acme", "cust")
    assert status == 0
    assert "callers 336...  -> cli (no deck: its calls stay unrated)" in out
    assert "callers 33...  -> ncli (v1)" in out
    rules = json_document(capsys, "plan", "rules", "acme", "cust")
    assert {r["callers"]: r["plan"] for r in rules["rules"]} == {
        "33": "ncli",
        "336": "cli",
        "49": "ncli",
    }
    left = json_document(capsys, "plan", "unrule", "acme", "cust", "--callers", "49,336")
    assert left["rules"] == [{"callers": "33", "plan": "ncli"}]
    assert accounts.get_account("acme", "cust").plan_rules == {"33": "ncli"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("plan", "rule", "acme", "cust", "eea", "--callers", "3x"), "invalid caller prefix '3x'"),
        (("plan", "rule", "acme", "cust", "e e", "--callers", "33"), "invalid plan id 'e e'"),
        (("plan", "rule", "acme", "ghost", "eea", "--callers", "33"), "unknown account 'ghost'"),
        (("plan", "rule", "acme", "tata", "eea", "--callers", "33"), "is a supplier"),
        (("plan", "unrule", "acme", "cust", "--callers", "44"), "no plan rule for caller prefix"),
        (("plan", "rule", "acme", "cust", "eea"), "--callers"),
        (("deck", "list", "acme", "cust", "--plan", "a/b"), "invalid plan id 'a/b'"),
    ],
)
def test_bad_plan_commands_exit_2_with_one_clear_line(acme, capsys, argv, message):
    try:
        status, out, err = run_command(capsys, *argv)
    except SystemExit as usage:  # argparse refuses the value itself
        (status, (out, err)) = usage.code, capsys.readouterr()
    assert status == 2
    assert message in err
    assert out == ""


def test_an_ingress_trunk_mapping_names_a_plan(acme, capsys):
    main(["switch", "create", "acme", "sbc", "--format", "generic"])
    mapped = json_document(
        capsys, "switch", "map", "acme", "sbc", "--ingress", "TG-P", "cust", "--plan", "cli"
    )
    assert (mapped["account"], mapped["plan"]) == ("cust", "cli")
    shown = json_document(capsys, "switch", "show", "acme", "sbc")
    assert (shown["ingress"], shown["ingress_plans"]) == ({"TG-P": "cust"}, {"TG-P": "cli"})
    status, out, _ = run_command(capsys, "switch", "show", "acme", "sbc")
    assert "TG-P  -> cust (plan cli)" in out
    status, _, err = run_command(
        capsys, "switch", "map", "acme", "sbc", "--egress", "out", "tata", "--plan", "cli"
    )
    assert (status, "chosen by the ingress trunk" in err) == (2, True)
