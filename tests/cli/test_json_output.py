"""Every command with --json prints exactly one JSON document on stdout.

Issue 9 §6: `file status --json` printed JSON Lines (one object per file), `query` and
`report --format json` printed JSON Lines, and `rate`, `deck check`, `local up`, `demo`,
`query` and `report` had no --json at all: each of those cases fails on that code. The walk
over the parser makes a command added later without a case here fail too.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from functions.cli import build_parser, main
from functions.ingest.service import DroppedFile
from functions.shared.settings import settings
from functions.store import accounts, apikeys, billing, client, lake, users
from tests.conftest import operator_account
from tests.invoice.samples import seed_invoice
from tests.pipeline.carrier import (
    DAY,
    DECKS,
    FIRST_FILE,
    SWITCH,
    TENANT,
    ingest_drop,
    process_file,
    set_up_carrier,
)
from tests.pipeline.deliveries import with_dead_letter_queues

ROOT = Path(__file__).resolve().parents[2]
TODAY = dt.date.today().isoformat()

# Each command (as the parser names it), run with --json on the world below. {name} is a
# file of the world. Commands listed in LISTS print a list, the others one object.
COMMANDS: dict[str, tuple[str, ...]] = {
    "rate": ("rate", "{cdrs}", "--format", "generic", "--customer-deck", "{sell}",
             "--supplier-deck", "{buy}", "--out", "{out}"),
    "deck check": ("deck", "check", "{sell}"),
    "deck diff": ("deck", "diff", "{buy}", "{sell}", "--notice-date", "2024-05-01"),
    "deck upload": ("deck", "upload", TENANT, "direct", "{sell}"),
    "deck list": ("deck", "list", TENANT, "direct"),
    "deck show": ("deck", "show", TENANT, "direct", "--at", "2024-05-01"),
    "deck rollback": ("deck", "rollback", TENANT, "direct", "1"),
    "deck impact": ("deck", "impact", TENANT, "tata", "{buy}"),
    "plan rule": ("plan", "rule", TENANT, "direct", "eea", "--callers", "33,49"),
    "plan rules": ("plan", "rules", TENANT, "direct"),
    "plan unrule": ("plan", "unrule", TENANT, "direct", "--callers", "44"),
    "did add": ("did", "add", TENANT, "+15550002222", "--account", "retail", "--monthly", "1.5"),
    "did list": ("did", "list", TENANT),
    "did release": ("did", "release", TENANT, "+15550001111", "--to", "2024-05-31"),
    "recurring run": ("recurring", "run", TENANT, "--period", "2024-05"),
    "tier set": ("tier", "set", TENANT, "direct", "uk", "--prefixes", "44", "--mode", "volume",
                 "--tiers", "100:0.012,:0.010"),
    "tier list": ("tier", "list", TENANT, "direct"),
    "tier show": ("tier", "show", TENANT, "direct", "india", "--period", "2024-05"),
    "tier close": ("tier", "close", TENANT, "--period", "2024-05"),
    "bundle set": ("bundle", "set", TENANT, "retail", "uk", "--prefixes", "44", "--minutes", "100",
                   "--fee", "10"),
    "bundle list": ("bundle", "list", TENANT, "retail"),
    "tenant create": ("tenant", "create", "json-co"),
    "tenant list": ("tenant", "list"),
    "tenant show": ("tenant", "show", TENANT),
    "tenant update": ("tenant", "update", TENANT, "--timezone", "Europe/Paris"),
    "switch create": ("switch", "create", TENANT, "json-sw", "--format", "generic"),
    "switch map": ("switch", "map", TENANT, SWITCH, "--ingress", "TG-J", "direct"),
    "switch unmap": ("switch", "unmap", TENANT, SWITCH, "--ingress", "TG-U"),
    "switch show": ("switch", "show", TENANT, SWITCH),
    "switch numbering": ("switch", "numbering", TENANT, SWITCH, "--strip", "9999"),
    "switch credentials": ("switch", "credentials", TENANT, SWITCH),
    "switch watch": ("switch", "watch", TENANT, SWITCH, "--silence-hours", "6"),
    "switch list": ("switch", "list", TENANT),
    "switch update": ("switch", "update", TENANT, SWITCH, "--timezone", "Europe/London"),
    "switch columns": ("switch", "columns", TENANT, "json-mapped", "--column", "callee=DST",
                       "--column", "start=S", "--column", "duration=D"),
    "account create": ("account", "create", TENANT, "json-cust", "--kind", "customer"),
    "account list": ("account", "list", TENANT),
    "account show": ("account", "show", TENANT, "direct"),
    "account update": ("account", "update", TENANT, "direct", "--credit-limit", "5"),
    "account suspend": ("account", "suspend", TENANT, "bt", "--reason", "json test"),
    "account resume": ("account", "resume", TENANT, "tata", "--reason", "json test"),
    "account history": ("account", "history", TENANT, "direct"),
    "cdr drop": ("cdr", "drop", TENANT, SWITCH, "{cdrs}"),
    "file status": ("file", "status", TENANT),
    "file retry": ("file", "retry", TENANT, "lost.csv"),
    "file reindex": ("file", "reindex", TENANT),
    "dlq list": ("dlq", "list"),
    "dlq redrive": ("dlq", "redrive"),
    "access provision": ("access", "provision", TENANT),
    "balance": ("balance", TENANT, "direct"),
    "payment record": ("payment", "record", TENANT, "direct", "10", "--reference", "J-1"),
    "payment list": ("payment", "list", TENANT, "--account", "direct"),
    "dunning run": ("dunning", "run", TENANT, "--day", str(DAY)),
    "dunning policy set": ("dunning", "policy", "set", TENANT, "--reminders", "2,5"),
    "dunning policy show": ("dunning", "policy", "show", TENANT, "direct"),
    "adjust": ("adjust", TENANT, "direct", "-1.5", "--reason", "json", "--reference", "J-2"),
    "statement": ("statement", TENANT, "direct", "--from", "2024-05-01", "--to", TODAY),
    "rerate": ("rerate", TENANT, "--from", str(DAY), "--to", str(DAY)),
    "query": ("query", "--tenant", TENANT, "SELECT customer, customer_amount FROM cdrs_rated",
              "--engine", "duckdb"),
    "report": ("report", TENANT, "--from", str(DAY), "--to", str(DAY), "--engine", "duckdb"),
    "billing set": ("billing", "set", TENANT, "direct", "--legal-name", "Direct Ltd",
                    "--tax", "standard:20", "--cycle", "monthly"),
    "billing show": ("billing", "show", TENANT),
    "billing fx": ("billing", "fx", TENANT, "--from", "USD", "--to", "EUR", "--rate", "0.92",
                   "--day", str(DAY)),
    # Started only: the world's state machine is not executed (moto's default). Its run to
    # the end, with --wait, is tests/invoice/test_invoice_cycle.py's, on the local stack.
    "invoice run": ("invoice", "run", TENANT, "--period", "2024-05", "--issue-date",
                    "2024-06-01"),
    "invoice list": ("invoice", "list", TENANT),
    "invoice show": ("invoice", "show", TENANT, "{invoice}"),
    "invoice download": ("invoice", "download", TENANT, "{invoice}", "--format", "pdf",
                         "--out", "{pdf}"),
    "invoice credit": ("invoice", "credit", TENANT, "{invoice}", "--amount", "1.50",
                       "--reason", "json"),
    "fraud evaluate": ("fraud", "evaluate", TENANT, "--at", "2024-05-01T12:00Z"),
    "fraud alerts": ("fraud", "alerts", TENANT),
    "fraud rules": ("fraud", "rules", TENANT, "--account", "direct", "--set", "spike.k=4"),
    "fraud ranges": ("fraud", "ranges", TENANT, "--add", "25261:premium"),
    "apikey create": ("apikey", "create", TENANT, "--role", "customer", "--account", "direct",
                      "--allow-ip", "203.0.113.0/24"),
    "apikey list": ("apikey", "list", TENANT),
    "apikey revoke": ("apikey", "revoke", TENANT, "{apikey}"),
    "user create": ("user", "create", TENANT, "json.user", "--role", "finance",
                    "--password-file", "{password}"),
    "user list": ("user", "list", TENANT),
    "user disable": ("user", "disable", TENANT, "json.leaver"),
    "audit": ("audit", TENANT, "--subject", "apikey"),
    "routes": ("routes", TENANT, "917012345678", "--account", "direct", "--time",
               "2024-05-01T10:00Z"),
    "authz": ("authz", TENANT, "direct", "917012345678", "--time", "2024-05-01T10:00Z"),
    "authz-cap": ("authz-cap", TENANT, "3600"),
    # revenue assurance (issue 15 D)
    "switch assurance": ("switch", "assurance", TENANT, SWITCH, "--sequence-pattern",
                         r"first(\d*)\.csv"),
    "assurance": ("assurance", TENANT, "--day", str(DAY)),
    "reconcile": ("reconcile", TENANT, "tata", "{cdrs}", "--from", str(DAY), "--to", str(DAY)),
}  # fmt: skip
LISTS = {
    "tenant list", "switch list", "account list", "account history", "file status",
    "file retry", "dlq list", "dlq redrive", "query", "report", "did list", "recurring run",
    "tier list", "tier close", "bundle list", "payment list", "invoice list", "fraud alerts",
    "fraud ranges", "apikey list", "user list",
    "audit",
}  # fmt: skip
# They start a stack or a demo of their own, outside the world's moto: tested below.
OWN_PROCESS = {"local up", "demo"}


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Every runnable command of the parser, by its first name (aliases are the same)."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        yield " ".join(path)
        return
    seen: set[int] = set()
    for name, sub in groups[0].choices.items():
        if id(sub) not in seen:
            seen.add(id(sub))
            yield from commands(sub, (*path, name))


def test_every_command_has_a_case_here():
    assert set(commands(build_parser())) == set(COMMANDS) | OWN_PROCESS


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A carrier that has rated a file, with a rejected file and a mapped trunk."""
    folder = tmp_path_factory.mktemp("world")
    with operator_account():
        with_dead_letter_queues()
        set_up_carrier(folder)
        process_file("first.csv", FIRST_FILE)
        # A file from a switch nobody registered: rejected, to be retried.
        lost = lake.put_cdr(TENANT, "sbc-lost", "lost.csv", FIRST_FILE.encode())
        _, etag = lake.get_cdr(TENANT, "sbc-lost", "lost.csv")
        ingest_drop(
            DroppedFile(settings().cdr_bucket, lost.key, etag, TENANT, "sbc-lost", "lost.csv", DAY)
        )
        assert main(["switch", "map", TENANT, SWITCH, "--ingress", "TG-U", "direct"]) == 0
        assert main(["switch", "create", TENANT, "json-mapped", "--format", "mapped"]) == 0
        assert main(["plan", "rule", TENANT, "direct", "uk", "--callers", "44"]) == 0
        did = ("+15550001111", "--account", "direct", "--monthly", "2", "--from", str(DAY))
        assert main(["did", "add", TENANT, *did]) == 0
        india = (
            "india",
            "--prefixes",
            "917",
            "--mode",
            "graduated",
            "--tiers",
            "1:0.006,:0.005",
        )
        assert main(["tier", "set", TENANT, "direct", *india]) == 0
        paths = {"cdrs": folder / "cdrs.csv", "out": folder / "rated.csv"}
        paths["cdrs"].write_text(FIRST_FILE)
        for name, account in (("sell", "direct"), ("buy", "tata")):
            paths[name] = folder / f"{name}.csv"
            paths[name].write_text(DECKS[account])
        paths["pdf"] = folder / "invoice.pdf"
        invoice_cycle_machine()
        operator = accounts.Actor(by="json", principal="arn:aws:iam::123456789012:user/json")
        key, _ = apikeys.create_key(TENANT, "finance", actor=operator)
        paths["password"] = folder / "password.txt"
        paths["password"].write_text("a long enough password\n")
        users.create_user(
            TENANT, "json.leaver", "a long enough password", "finance", account=None,
            actor=operator,
        )  # fmt: skip
        yield {name: str(path) for name, path in paths.items()} | {
            "invoice": issue_invoice(),
            "apikey": key.key_id,
        }


def invoice_cycle_machine() -> None:
    """The cycle's state machine in moto, from the deployed ASL file (its tasks never run)."""
    from functions.local.states import ASL_PATH, function_for, render, substitution_names

    account = client("sts").get_caller_identity()["Account"]
    sfn = client("stepfunctions")
    definition = ASL_PATH.read_text()
    arns = {
        name: f"arn:aws:lambda:{sfn.meta.region_name}:{account}:function:{function_for(name)}"
        for name in substitution_names(definition)
    }
    sfn.create_state_machine(
        name=settings().invoice_state_machine,
        definition=render(definition, arns),
        roleArn=f"arn:aws:iam::{account}:role/invoice-cycle",
    )


def issue_invoice() -> str:
    """The seed's Reseller A invoice as direct's, numbered and its documents stored, as the
    cycle's number and render steps leave it; its number."""
    from functions.invoice import cycle
    from functions.invoice.handler import ports

    invoice = dataclasses.replace(seed_invoice(), account="direct")
    billing.save_draft(invoice)
    number = billing.number_draft(TENANT, invoice.period, "direct")
    cycle.store_documents(ports(), billing.get_invoice(TENANT, number).invoice, None)
    return number


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_command_prints_one_json_document(world, capsys, command):
    argv = [arg.format(**world) for arg in COMMANDS[command]]
    capsys.readouterr()
    status = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert status == 0, err
    document = json.loads(out)  # the whole of stdout: one document, nothing else
    assert isinstance(document, list if command in LISTS else dict)


def test_query_and_report_take_json_as_format_json(world, capsys):
    capsys.readouterr()
    main(["query", "--tenant", TENANT, "SELECT call_id FROM cdrs_rated", "--engine", "duckdb",
          "--format", "json"])  # fmt: skip
    by_format = json.loads(capsys.readouterr().out)
    main(["query", "--tenant", TENANT, "SELECT call_id FROM cdrs_rated", "--engine", "duckdb",
          "--json"])  # fmt: skip
    assert json.loads(capsys.readouterr().out) == by_format
    assert sorted(row["call_id"] for row in by_format) == ["c1", "c2", "c3", "c4", "c5"]
    with pytest.raises(SystemExit) as usage:
        main(["report", TENANT, "--from", str(DAY), "--to", str(DAY), "--json", "--format", "csv"])
    assert usage.value.code == 2


# --- commands that run a stack or a demo of their own, outside moto -----------------------------


def tollgate_process(*argv: str, **options) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.Popen(
        [sys.executable, "-m", "functions.cli", *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **options,
    )


class StackThatIsInterrupted:
    """A stand-in for LocalStack (tests/local start real ones): up at once, then Ctrl-C."""

    def __init__(self, port: int, *, host: str, visibility_timeout: int | None) -> None:
        self.endpoint_url = f"http://{host}:{port or 49152}"
        self.runner = type("Runner", (), {"function_names": ["ingest", "rate"]})()
        self.calls: list[str] = []
        STACKS.append(self)

    def start(self) -> StackThatIsInterrupted:
        self.calls.append("start")
        signal.raise_signal(signal.SIGINT)  # the operator's Ctrl-C, caught by `local up`
        return self

    def stop(self) -> None:
        self.calls.append("stop")


STACKS: list[StackThatIsInterrupted] = []


def test_local_up_prints_one_json_document_then_stops_on_ctrl_c(monkeypatch, capsys):
    import functions.local.stack

    monkeypatch.setattr(functions.local.stack, "LocalStack", StackThatIsInterrupted)
    capsys.readouterr()
    assert main(["local", "up", "--port", "0", "--json"]) == 0
    out, err = capsys.readouterr()
    document = json.loads(out)
    assert document["endpoint_url"] == "http://127.0.0.1:49152"
    assert document["environment"]["AWS_ENDPOINT_URL"] == document["endpoint_url"]
    assert STACKS[-1].calls == ["start", "stop"]
    assert "tollgate local: stopped" in err


def test_the_offline_demo_prints_one_json_document(tmp_path):
    process = tollgate_process(
        "demo", "--offline", "--cdrs", "1000", "--workdir", str(tmp_path), "--json"
    )
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    document = json.loads(out)
    assert document["rows_in"] == document["rated"] + document["unrated"] + document["quarantined"]
    assert document["rows_in"] >= 1000 and document["reconciles"] is True
    assert "$ tollgate rate" in err  # the narrative went to stderr
