"""Issue 8 end to end: the operator's commands, then files through ingest and rate.

Every scenario runs twice: with the services called in-process on moto, and on the embedded
local stack (moto server, the handlers of app.py polled from their SQS queues) where the file
is dropped with `tollgate cdr drop`. Balances and re-rating go through the CLI in both. Each
scenario is what a carrier's billing engineer tried on the pipeline before issue 8:
a late file after a vendor's change notice, a chain five levels deep, a trunk nobody mapped,
a contract that rounds up to cents. Every amount is asserted to the micro-unit, in the lake
and in the balances, and the named query `balance_check` must reconcile the two.
"""

from __future__ import annotations

import contextlib
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest

from functions.cli import main
from functions.local.stack import LocalStack
from functions.store import lake
from tests.conftest import local_stack, moto_account
from tests.pipeline.carrier import DAY, HEADER, SWITCH, TENANT, cdr_line, process_file

# generic CDRs with trunks: where the call came in and went out, not which account it was
TRUNK_HEADER = HEADER + ",ingress_trunk,egress_trunk"


def run(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(list(argv))
    assert status == 0, (argv, out.getvalue())
    return out.getvalue()


def deck(tmp_path: Path, account: str, text: str, *options: str) -> None:
    path = tmp_path / f"{account}-{len(list(tmp_path.iterdir()))}.csv"
    path.write_text(text)
    run("deck", "upload", TENANT, account, str(path), *options)


class InProcess:
    """The ingest and rate services called directly, with the real adapters, on moto."""

    def process(self, name: str, text: str) -> str:
        return process_file(name, text)


class OnTheLocalStack:
    """The file dropped with the CLI; the stack's runner delivers it through SQS."""

    def __init__(self, stack: LocalStack, tmp_path: Path) -> None:
        self.stack, self.folder = stack, tmp_path / "drops"
        self.folder.mkdir(parents=True)

    def process(self, name: str, text: str) -> str:
        path = self.folder / name
        path.write_text(text)
        run("cdr", "drop", TENANT, SWITCH, str(path))
        self.stack.wait_idle(timeout=60)
        assert list(self.stack.runner.errors) == []
        [status] = json.loads(run("file", "status", TENANT, name, "--json"))
        assert status["status"] == "done", status
        return status["file_id"]


@pytest.fixture(params=["in_process", "local_stack"])
def pipeline(request, aws_environment, tmp_path):
    if request.param == "in_process":
        with moto_account():
            yield InProcess()
        return
    with local_stack() as stack:
        yield OnTheLocalStack(stack, tmp_path)


def charges(file_id: str, day: str = "2024-05-01") -> dict[tuple[str, str], dict]:
    table = lake.get_table("charges", TENANT, day, file_id)
    return {(r["call_id"], r["account"]): r for r in table.to_pylist()}


def balance(account: str) -> int:
    payload = json.loads(run("balance", TENANT, account, "--json"))
    return micro(Decimal(payload["balance"]))


def rerate(*argv: str) -> dict:
    return json.loads(run("rerate", TENANT, "--from", str(DAY), "--to", str(DAY), *argv, "--json"))


def balance_check() -> dict[str, Decimal]:
    rows = run(
        "query", "--tenant", TENANT, "--named", "balance_check",
        "--engine", "duckdb", "--format", "json",
    )  # fmt: skip
    return {r["account"]: Decimal(r["balance_effect"]) for r in json.loads(rows)}


def micro(amount: Decimal) -> int:
    return int(amount * 1_000_000)


def tenant() -> None:
    run("tenant", "create", TENANT)
    run("switch", "create", TENANT, SWITCH, "--format", "generic")


def test_a_late_file_after_a_change_notice_is_priced_by_the_rates_of_its_day(pipeline, tmp_path):
    tenant()
    run("account", "create", TENANT, "direct", "--kind", "customer")
    run("account", "create", TENANT, "tata", "--kind", "supplier")
    deck(tmp_path, "direct", "prefix,destination,rate\n44,UK,0.010\n917,India - Mobile,0.008\n")
    deck(tmp_path, "tata", "prefix,destination,rate\n44,UK,0.006\n91,India,0.0065\n")
    # The vendor's notice from 10 May: a new code 4420 (London) and India up. The customer's
    # sell deck gains London too; everything else keeps its entries.
    notice = "prefix,destination,rate,effective_from\n4420,UK - London,0.004,2024-05-10\n"
    deck(tmp_path, "tata", notice, "--mode", "changes")
    deck(
        tmp_path, "direct",
        "prefix,destination,rate,effective_from\n4420,UK - London,0.009,2024-05-10\n",
        "--mode", "changes",
    )  # fmt: skip
    # The switch's backlog from 1 May arrives after both uploads.
    late = pipeline.process(
        "backlog.csv",
        "\n".join([HEADER, cdr_line("late", "direct", "tata", "442071234567", 60)]) + "\n",
    )
    priced = charges(late)
    assert priced[("late", "direct")]["prefix"] == "44"  # before: 4420 did not exist yet
    assert priced[("late", "direct")]["amount"] == Decimal("0.010000")
    assert priced[("late", "tata")]["prefix"] == "44"
    assert priced[("late", "tata")]["amount"] == Decimal("0.006000")
    # A call of 11 May is priced by the notice.
    may11 = (HEADER + "\n" + cdr_line("new", "direct", "tata", "442071234567", 60)).replace(
        "2024-05-01", "2024-05-11"
    )
    current = charges(pipeline.process("may11.csv", may11 + "\n"), "2024-05-11")
    assert current[("new", "direct")]["prefix"] == "4420"
    assert current[("new", "direct")]["amount"] == Decimal("0.009000")
    assert current[("new", "tata")]["amount"] == Decimal("0.004000")
    assert balance("direct") == -(10_000 + 9_000)
    assert balance("tata") == 6_000 + 4_000


def test_a_chain_five_levels_deep_charges_every_party_and_reconciles_with_the_lake(
    pipeline, tmp_path
):
    tenant()
    parent = None
    for level in range(4, 0, -1):  # r4 buys from the carrier, r1 sells to the customer
        options = ["--parent", parent] if parent else []
        run("account", "create", TENANT, f"r{level}", "--kind", "reseller", *options)
        parent = f"r{level}"
    run("account", "create", TENANT, "cust", "--kind", "customer", "--parent", "r1")
    run("account", "create", TENANT, "tata", "--kind", "supplier")
    # Each level sells a little dearer than it buys; r2 has no rate for the UK.
    rates = {"r4": "0.0070", "r3": "0.0072", "r2": "0.0074", "r1": "0.0076", "cust": "0.0080"}
    for account, rate in rates.items():
        uk = "" if account == "r2" else "44,UK,0.02\n"
        deck(tmp_path, account, f"prefix,destination,rate\n917,India - Mobile,{rate}\n{uk}")
    deck(tmp_path, "tata", "prefix,destination,rate\n91,India,0.0065\n44,UK,0.01\n")
    file_id = pipeline.process(
        "chain.csv",
        "\n".join(
            [
                HEADER,
                cdr_line("india", "cust", "tata", "917012345678", 60),
                cdr_line("uk", "cust", "tata", "442071234567", 60, minute=1),
            ]
        )
        + "\n",
    )
    priced = charges(file_id)
    # Every level is charged by its own deck and pays its parent, at any depth.
    for level, (account, rate) in enumerate(rates.items().__reversed__()):
        row = priced[("india", account)]
        assert (row["status"], row["level"], row["amount"]) == ("rated", level, Decimal(rate))
    assert priced[("india", "r4")]["counterparty"] == "carrier"
    assert priced[("india", "cust")]["counterparty"] == "r1"
    # r2 cannot price the UK call: it alone is unrated; the others, and the supplier, are not.
    assert (priced[("uk", "r2")]["status"], priced[("uk", "r2")]["reason"]) == (
        "unrated",
        "no_rate",
    )
    for account in ("cust", "r1", "r3", "r4"):
        assert priced[("uk", account)]["amount"] == Decimal("0.020000")
    assert priced[("uk", "tata")]["amount"] == Decimal("0.010000")
    rated = {r["call_id"]: r for r in lake.get_table("rated", TENANT, DAY, file_id).to_pylist()}
    assert rated["india"]["margin"] == Decimal("0.000500")  # r4's 0.0070 - tata's 0.0065
    assert rated["uk"]["margin"] == Decimal("0.010000")

    expected = {
        "cust": -(8_000 + 20_000),
        "r1": -(7_600 + 20_000),
        "r2": -7_400,
        "r3": -(7_200 + 20_000),
        "r4": -(7_000 + 20_000),
        "tata": 6_500 + 10_000,
    }
    assert {a: balance(a) for a in expected} == expected
    assert {a: micro(v) for a, v in balance_check().items()} == expected


def test_an_unmapped_trunk_is_counted_then_charged_once_mapped_and_rerated(pipeline, tmp_path):
    tenant()
    run("account", "create", TENANT, "direct", "--kind", "customer")
    run("account", "create", TENANT, "other", "--kind", "customer")
    run("account", "create", TENANT, "tata", "--kind", "supplier")
    deck(tmp_path, "direct", "prefix,destination,rate\n917,India - Mobile,0.008\n")
    deck(tmp_path, "other", "prefix,destination,rate\n917,India - Mobile,0.009\n")
    deck(tmp_path, "tata", "prefix,destination,rate\n91,India,0.0065\n")
    run("switch", "map", TENANT, SWITCH, "--ingress", "TG-DIRECT", "direct")
    run("switch", "map", TENANT, SWITCH, "--egress", "TG-TATA", "tata")
    text = "\n".join(
        [
            TRUNK_HEADER,
            cdr_line("a", "", "", "917012345678", 60) + ",TG-DIRECT,TG-TATA",
            cdr_line("b", "", "", "917012345679", 60, minute=1) + ",TG-NEW,TG-TATA",
        ]
    )
    file_id = pipeline.process("trunks.csv", text + "\n")
    [status] = json.loads(run("file", "status", TENANT, file_id, "--json"))
    assert status["unknown_account"] == 1
    assert status["rows"] == status["rated"] + status["unrated"] + status["quarantined"]
    priced = charges(file_id)
    assert priced[("b", None)]["reason"] == "unknown_account"
    assert priced[("b", "tata")]["amount"] == Decimal("0.006500")  # the vendor still bills it
    assert (balance("direct"), balance("other"), balance("tata")) == (-8_000, 0, 13_000)

    run("switch", "map", TENANT, SWITCH, "--ingress", "TG-NEW", "other")
    report = rerate()
    assert {t["status"] for t in report["tables"]} == {"rerated"}
    assert [a["difference"] for a in report["accounts"] if a["account"] == "other"] == ["-0.009000"]
    assert charges(file_id)[("b", "other")]["amount"] == Decimal("0.009000")
    assert (balance("direct"), balance("other"), balance("tata")) == (-8_000, -9_000, 13_000)
    # A second run finds nothing to change: the mapping is charged once.
    rerate()
    assert balance("other") == -9_000


def test_an_accounts_rounding_rule_is_applied_once_per_charge_and_by_rerate(pipeline, tmp_path):
    tenant()
    run(
        "account", "create", TENANT, "direct", "--kind", "customer",
        "--rounding", "up", "--decimals", "2",
    )  # fmt: skip
    run("account", "create", TENANT, "tata", "--kind", "supplier")
    deck(tmp_path, "direct", "prefix,destination,rate,increment\n917,India - Mobile,0.008,1/1\n")
    deck(tmp_path, "tata", "prefix,destination,rate,increment\n91,India,0.0065,1/1\n")
    # 61 s at 0.008 = 0.0081333...: up to cents is 0.01; the supplier keeps 6 places, half-up.
    file_id = pipeline.process(
        "round.csv",
        "\n".join([HEADER, cdr_line("r", "direct", "tata", "917012345678", 61)]) + "\n",
    )
    priced = charges(file_id)
    assert priced[("r", "direct")]["amount"] == Decimal("0.010000")
    assert priced[("r", "tata")]["amount"] == Decimal("0.006608")
    assert balance("direct") == -10_000

    run("account", "set", TENANT, "direct", "--rounding", "down", "--decimals", "3")
    rerate()
    assert charges(file_id)[("r", "direct")]["amount"] == Decimal("0.008000")
    assert balance("direct") == -8_000
    assert balance("tata") == 6_608


def test_a_new_local_stack_prices_with_its_own_decks_not_a_previous_stacks(
    aws_environment, tmp_path
):
    """A fresh local stack is a fresh AWS account. The rate handler's warm deck cache, keyed by
    (tenant, account, version), outlived the stack it was filled from, so a second stack with
    the same names priced with the first stack's deck (seen as a flaky scenario test)."""
    prices = {}
    for run_number, rate in enumerate(("0.0065", "0.0071")):
        with local_stack() as stack:
            tenant()
            run("account", "create", TENANT, "direct", "--kind", "customer")
            run("account", "create", TENANT, "tata", "--kind", "supplier")
            deck(tmp_path, "direct", "prefix,destination,rate\n917,India - Mobile,0.008\n")
            deck(tmp_path, "tata", f"prefix,destination,rate\n91,India,{rate}\n")
            file_id = OnTheLocalStack(stack, tmp_path / str(run_number)).process(
                "f.csv",
                "\n".join([HEADER, cdr_line("c", "direct", "tata", "917012345678", 60)]) + "\n",
            )
            prices[rate] = charges(file_id)[("c", "tata")]["amount"]
    assert prices == {"0.0065": Decimal("0.006500"), "0.0071": Decimal("0.007100")}
