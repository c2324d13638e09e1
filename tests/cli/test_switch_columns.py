"""`tollgate switch columns`: a switch's column mapping set, shown, refused and cleared."""

from __future__ import annotations

import json

import pytest

from functions.store import accounts
from tests.cli.conftest import json_document, run_command

SANSAY = (
    "--column", "caller=SRC", "--column", "callee=DST", "--column", "start=Start",
    "--column", "answer=Answer", "--column", "end=End", "--column", "disposition=Status",
    "--column", "ingress_trunk=InTrunk", "--time-format", "%Y-%m-%d %H:%M:%S",
    "--timezone", "Europe/Paris", "--disposition", "Normal=ANSWERED,Busy=BUSY",
    "--delimiter", ";",
)  # fmt: skip
SANSAY_MAPPING = {
    "columns": {
        "caller": "SRC",
        "callee": "DST",
        "start": "Start",
        "answer": "Answer",
        "end": "End",
        "disposition": "Status",
        "ingress_trunk": "InTrunk",
    },
    "time_format": "%Y-%m-%d %H:%M:%S",
    "timezone": "Europe/Paris",
    "dispositions": {"Normal": "ANSWERED", "Busy": "BUSY"},
    "delimiter": ";",
}


@pytest.fixture
def tenant(tenant_numbers, capsys) -> str:
    name = f"acme{next(tenant_numbers)}"
    for argv in (
        ("tenant", "create", name),
        ("switch", "create", name, "sbc1", "--format", "mapped"),
        ("switch", "create", name, "fs1", "--format", "freeswitch-csv"),
    ):
        assert run_command(capsys, *argv)[0] == 0
    return name


def test_set_show_and_clear_a_mapping(tenant, capsys):
    answer = json_document(capsys, "switch", "columns", tenant, "sbc1", *SANSAY)
    assert answer["column_mapping"] == SANSAY_MAPPING
    assert answer["format"] == "mapped"
    assert answer["audit"]["changes"] == [
        {"field": "column_mapping", "old": None, "new": SANSAY_MAPPING}
    ]
    assert accounts.get_switch(tenant, "sbc1").column_mapping == SANSAY_MAPPING
    assert json_document(capsys, "switch", "show", tenant, "sbc1")["column_mapping"] == (
        SANSAY_MAPPING
    )
    status, out, _ = run_command(capsys, "switch", "show", tenant, "sbc1")
    assert status == 0
    assert (
        "  columns           caller=SRC, callee=DST, start=Start, answer=Answer, end=End, "
        "disposition=Status, ingress_trunk=InTrunk (times %Y-%m-%d %H:%M:%S; in Europe/Paris; "
        "dispositions Normal=ANSWERED,Busy=BUSY; delimiter ';')\n"
    ) in out
    cleared = json_document(capsys, "switch", "columns", tenant, "sbc1", "--clear")
    assert cleared["column_mapping"] is None
    assert accounts.get_switch(tenant, "sbc1").column_mapping is None


def test_a_mapping_from_a_json_file_with_a_duration(tenant, capsys, tmp_path):
    mapping = {"columns": {"callee": "NUMBER", "start": "DATE", "duration": "SECS"}}
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(mapping))
    answer = json_document(capsys, "switch", "columns", tenant, "sbc1", "--file", str(path))
    assert answer["column_mapping"] == {
        "columns": mapping["columns"],
        "time_format": "ISO",
        "timezone": None,
        "dispositions": {},
        "delimiter": ",",
    }


@pytest.mark.parametrize(
    ("argv", "member"),
    [
        (("--column", "calee=DST", "--column", "start=S", "--column", "duration=D"),
         "columns.calee: not a member"),
        (("--column", "callee=DST", "--column", "duration=D"), "columns.start: required"),
        (("--column", "callee=DST", "--column", "start=S", "--column", "answer=A"),
         "columns.end: required unless duration (billsec) is mapped"),
        (("--column", "callee=DST", "--column", "start=S", "--column", "duration=D",
          "--disposition", "Busy=BUZY"), "dispositions.Busy: 'BUZY' is not one of"),
        (("--column", "callee=DST", "--column", "start=S", "--column", "duration=D",
          "--time-format", "yesterday"), "time_format: 'yesterday' is not ISO"),
        (("--column", "callee=DST", "--column", "start=S", "--column", "duration=D",
          "--timezone", "Mars/Olympus"), "timezone: 'Mars/Olympus' is not an IANA time zone"),
        (("--column", "callee=DST", "--column", "start=S", "--column", "duration=D",
          "--delimiter", "::"), "delimiter: '::' is not one character"),
        (("--column", "callee"), "invalid --column 'callee': use MEMBER=HEADER"),
        ((), "give --column MEMBER=HEADER"),
    ],
)  # fmt: skip
def test_a_bad_mapping_exits_2_naming_the_member(tenant, capsys, argv, member):
    status, out, err = run_command(capsys, "switch", "columns", tenant, "sbc1", *argv, "--json")
    assert status == 2
    assert member in err
    assert out == ""
    assert accounts.get_switch(tenant, "sbc1").column_mapping is None


def test_only_a_mapped_switch_takes_a_mapping(tenant, capsys):
    status, _, err = run_command(capsys, "switch", "columns", tenant, "fs1", *SANSAY)
    assert status == 2
    assert (
        "column mapping: only a mapped, kamailio-acc-cdrs, kamailio-acc switch takes one, "
        "not freeswitch-csv"
    ) in err


def test_an_unknown_switch_exits_2(tenant, capsys):
    status, _, err = run_command(capsys, "switch", "columns", tenant, "nope", *SANSAY)
    assert status == 2
    assert "unknown switch 'nope'" in err


def test_a_mapped_switch_keeps_its_format_while_it_has_a_mapping(tenant, capsys):
    assert json_document(capsys, "switch", "columns", tenant, "sbc1", *SANSAY)
    status, _, err = run_command(capsys, "switch", "update", tenant, "sbc1", "--format", "generic")
    assert status == 2
    assert "column mapping: a generic switch takes none (clear it first" in err
    assert accounts.get_switch(tenant, "sbc1").format == "mapped"
    # Kamailio's formats read a mapping too: the switch may become one with its mapping.
    status, _, err = run_command(
        capsys, "switch", "update", tenant, "sbc1", "--format", "kamailio-acc-cdrs"
    )
    assert status == 0, err
    assert accounts.get_switch(tenant, "sbc1").column_mapping == SANSAY_MAPPING


def test_a_kamailio_acc_switch_renames_only_its_extras(tenant, capsys):
    created = run_command(capsys, "switch", "create", tenant, "kam", "--format", "kamailio-acc")
    assert created[0] == 0
    answer = json_document(capsys, "switch", "columns", tenant, "kam", "--column", "callee=ruri")
    assert answer["column_mapping"]["columns"] == {"callee": "ruri"}  # need not be complete
    status, _, err = run_command(
        capsys, "switch", "columns", tenant, "kam", "--column", "duration=d"
    )
    assert status == 2
    assert "columns.duration: kamailio-acc maps only call_id, caller, callee" in err
