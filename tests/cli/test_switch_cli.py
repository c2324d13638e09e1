"""`tollgate switch map|unmap|show|numbering` and `switch create --template`, on moto.

New in issue 8 §4: none of these commands or options existed, so every test fails on the code
before it.
"""

from __future__ import annotations

import pytest

from functions.cli import main
from functions.store import accounts
from tests.cli.conftest import last_json

TEMPLATE = "uuid,destination_number,start_stamp,answer_stamp,billsec,sip_gateway_name"


def tollgate(*argv: str) -> int:
    return main(list(argv))


def error(capsys) -> str:
    return capsys.readouterr().err.strip()


@pytest.fixture
def acme(aws, capsys):
    for argv in (
        ("tenant", "create", "acme", "--timezone", "Europe/London"),
        ("account", "create", "acme", "cust", "--kind", "customer"),
        ("account", "create", "acme", "bt", "--kind", "supplier"),
        ("switch", "create", "acme", "fs1", "--format", "freeswitch-csv", "--template", TEMPLATE),
    ):
        assert tollgate(*argv) == 0
    capsys.readouterr()


def test_map_show_and_unmap_trunks(acme, capsys):
    assert tollgate("switch", "map", "acme", "fs1", "--ingress", "custA", "cust") == 0
    assert capsys.readouterr().out == "acme/fs1: ingress custA -> cust\n"
    assert tollgate("switch", "map", "acme", "fs1", "--ingress", "198.51.100.4", "cust") == 0
    assert tollgate("switch", "map", "acme", "fs1", "--egress", "vendorB", "bt", "--json") == 0
    assert last_json(capsys) == {
        "tenant": "acme",
        "switch": "fs1",
        "direction": "egress",
        "key": "vendorB",
        "account": "bt",
    }
    assert tollgate("switch", "show", "acme", "fs1", "--json") == 0
    assert last_json(capsys) == {
        "tenant": "acme",
        "switch": "fs1",
        "format": "freeswitch-csv",
        "timezone": "Europe/London",
        "customer_field": "customer",
        "supplier_field": "supplier",
        "default_supplier": None,
        "template": TEMPLATE.split(","),
        "numbering": {
            "strip": [],
            "international_prefix": "00",
            "national_prefix": None,
            "country_code": None,
        },
        "column_mapping": None,
        "ingress": {"198.51.100.4": "cust", "custA": "cust"},
        "egress": {"vendorB": "bt"},
        "ingress_plans": {},  # no ingress trunk names a rate plan
        "history": [],
    }
    assert tollgate("switch", "unmap", "acme", "fs1", "--ingress", "custA", "--json") == 0
    assert last_json(capsys)["account"] == "cust"
    assert tollgate("switch", "show", "acme", "fs1") == 0
    shown = capsys.readouterr().out
    assert "switch acme/fs1: freeswitch-csv, Europe/London" in shown
    assert f"  template          {TEMPLATE}\n" in shown
    assert "  ingress 198.51.100.4  -> cust\n" in shown
    assert "  egress  vendorB       -> bt\n" in shown
    assert "custA" not in shown
    assert dict(accounts.get_trunk_plan("acme", "fs1").ingress) == {"198.51.100.4": "cust"}


def test_mapping_errors_name_what_is_wrong_and_change_nothing(acme, capsys):
    cases = [
        (
            ("--ingress", "custA", "bt"),
            "ingress 'custA': account 'bt' is a supplier, not a customer",
        ),
        (("--egress", "vendorB", "cust"), "egress 'vendorB': account 'cust' is a customer"),
        (("--egress", "vendorB", "ghost"), "unknown account 'ghost' in tenant 'acme'"),
        (("--egress", "vendor B", "bt"), "invalid trunk key 'vendor B'"),
    ]
    for argv, message in cases:
        assert tollgate("switch", "map", "acme", "fs1", *argv) == 2
        assert message in error(capsys)
    assert tollgate("switch", "map", "acme", "nope", "--egress", "v", "bt") == 2
    assert "unknown switch 'nope' in tenant 'acme'" in error(capsys)
    assert tollgate("switch", "unmap", "acme", "fs1", "--egress", "vendorB") == 2
    assert "egress 'vendorB' is not mapped on switch 'fs1'" in error(capsys)
    assert accounts.list_trunks("acme", "fs1") == []


def test_map_needs_exactly_one_direction(acme, capsys):
    with pytest.raises(SystemExit):
        tollgate("switch", "map", "acme", "fs1", "custA", "cust")
    assert "one of the arguments --ingress --egress is required" in error(capsys)
    with pytest.raises(SystemExit):
        tollgate("switch", "map", "acme", "fs1", "--ingress", "--egress", "custA", "cust")


def test_numbering_sets_merges_and_clears_the_switchs_rules(acme, capsys):
    argv = ("switch", "numbering", "acme", "fs1")
    assert tollgate(*argv, "--strip", "#123", "9999", "--national-prefix", "0") == 2
    assert "--national-prefix and --country-code go together" in error(capsys)
    assert tollgate(*argv, "--strip", "#123", "9999", "--national-prefix", "0",
                    "--country-code", "44", "--json") == 0  # fmt: skip
    assert last_json(capsys) == {
        "tenant": "acme",
        "switch": "fs1",
        "strip": ["#123", "9999"],
        "international_prefix": "00",
        "national_prefix": "0",
        "country_code": "44",
    }
    # Only what is given changes.
    assert tollgate(*argv, "--international-prefix", "011") == 0
    assert capsys.readouterr().out == (
        "acme/fs1: strip #123 9999; international prefix + or 011; national 0... -> 44...\n"
    )
    plan = accounts.get_switch("acme", "fs1").numbering
    assert (plan.strip, plan.international_prefix, plan.country_code) == (
        ("#123", "9999"),
        "011",
        "44",
    )
    assert tollgate(*argv, "--clear", "--strip", "*77", "--json") == 0
    assert last_json(capsys) == {
        "tenant": "acme",
        "switch": "fs1",
        "strip": ["*77"],
        "international_prefix": "00",
        "national_prefix": None,
        "country_code": None,
    }


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--country-code", "4x", "--national-prefix", "0"), "--country-code: invalid value '4x'"),
        (("--international-prefix", "+"), "--international-prefix: invalid value '+'"),
        (("--strip", "#1 2"), "--strip: invalid tech prefix '#1 2'"),
        (("--strip", "9", "9"), "--strip: a tech prefix is listed twice"),
        ((), "nothing to set"),
    ],
)
def test_numbering_errors_name_the_flag(acme, capsys, flags, message):
    assert tollgate("switch", "numbering", "acme", "fs1", *flags) == 2
    assert message in error(capsys)
    assert accounts.get_switch("acme", "fs1").numbering.strip == ()


def test_a_template_must_bill_and_belongs_to_freeswitch_csv(acme, capsys):
    create = ("switch", "create", "acme")
    assert tollgate(*create, "fs2", "--format", "freeswitch-csv", "--template", "uuid,billsec") == 2
    assert "template: lacks destination_number, start_stamp, answer_stamp" in error(capsys)
    assert tollgate(*create, "ast", "--format", "asterisk-csv", "--template", TEMPLATE) == 2
    assert "template: only a freeswitch-csv switch takes one" in error(capsys)
    assert tollgate(*create, "fs3", "--format", "freeswitch-csv", "--json") == 0
    assert "template" not in last_json(capsys)
    assert tollgate("switch", "show", "acme", "fs3", "--json") == 0
    assert last_json(capsys)["template"] is None
