"""Issue 10 §1 through the pipeline: one file carrying calls of two rate plans.

`retail` (under `resellco`, which has only a default deck) buys a premium `cli` product,
chosen by the ingress trunk its calls arrive on, and an economy `ncli` one, chosen by the
calling number (French callers). Each call lands in the lake with its plan and is charged by
that plan's deck, its reseller by its own default deck, and the balances move once however
often the file is delivered; re-rating after a plan deck is corrected moves only its calls.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from functions.store import lake, ledger
from tests.pipeline.carrier import (
    DAY,
    SWITCH,
    TENANT,
    drop,
    ingest_drop,
    rate_ingested,
    run,
    set_up_carrier,
)

D = Decimal
ZERO = D(0)
PLAN_DECKS = {
    "cli": "prefix,destination,rate\n44,UK CLI,0.0207\n",
    "ncli": "prefix,destination,rate,increment\n44,UK NCLI,0.0043,60/60\n",
}
HEADER = (
    "call_id,caller,callee,start_time,answer_time,end_time,billsec,disposition,customer,"
    "supplier,ingress_trunk"
)
# call id, caller, ingress trunk, billsec -> the plan it must be priced on
CALLS = [
    ("p1", "15551230000", "TG-CLI", 61, "cli"),  # the trunk names cli
    ("p2", "+33612345678", "TG-R", 61, "ncli"),  # no trunk plan: the caller rule (33)
    ("p3", "+33612345678", "TG-CLI", 47, "cli"),  # the trunk beats the caller rule
    ("p4", "15551230000", "TG-R", 125, "default"),  # neither: default
]
# The customer's, its reseller's and the supplier's deck terms per plan: rate, increment.
RETAIL = {"default": (D("0.015"), 1, 1), "cli": (D("0.0207"), 1, 1), "ncli": (D("0.0043"), 60, 60)}
RESELLCO = (D("0.010"), 1, 1)
BT_RATE, BT_FEE = D("0.006"), D("0.0002")


def line(call_id: str, caller: str, trunk: str, billsec: int) -> str:
    end = f"2024-05-01T10:{(5 + billsec) // 60:02d}:{(5 + billsec) % 60:02d}Z"
    return (
        f"{call_id},{caller},442071234567,2024-05-01T10:00:00Z,2024-05-01T10:00:05Z,{end},"
        f"{billsec},ANSWERED,,bt,{trunk}"
    )


def amount(rate: D, first: int, step: int, seconds: int, fee: D = ZERO) -> D:
    billed = first if seconds <= first else first + -(-(seconds - first) // step) * step
    return (fee + rate * billed / 60).quantize(D("0.000001"), rounding=ROUND_HALF_UP)


def micro(value: D) -> int:
    return int(value.scaleb(6))


def test_a_file_with_calls_of_two_plans_lands_with_each_plans_prices_once(aws, tmp_path):
    set_up_carrier(tmp_path)
    for plan, text in PLAN_DECKS.items():
        path = tmp_path / f"retail-{plan}.csv"
        path.write_text(text)
        run("deck", "upload", TENANT, "retail", str(path), "--plan", plan)
    run("plan", "rule", TENANT, "retail", "ncli", "--callers", "33")
    run("switch", "map", TENANT, SWITCH, "--ingress", "TG-CLI", "retail", "--plan", "cli")
    run("switch", "map", TENANT, SWITCH, "--ingress", "TG-R", "retail")
    before = {a: ledger.get_balance(TENANT, a)[0] for a in ("retail", "resellco", "bt")}

    text = "\n".join([HEADER, *(line(c, caller, t, s) for c, caller, t, s, _ in CALLS)]) + "\n"
    dropped = drop("plans.csv", text)
    for _ in range(2):  # the same S3 event delivered twice
        ingest_drop(dropped)
        rate_ingested(dropped.file_id)

    charges = {
        (r["call_id"], r["account"]): r
        for r in lake.get_table("charges", TENANT, DAY, dropped.file_id).to_pylist()
    }
    rated = {
        r["call_id"]: r for r in lake.get_table("rated", TENANT, DAY, dropped.file_id).to_pylist()
    }
    expected = {"retail": D(0), "resellco": D(0), "bt": D(0)}
    for call_id, _, _, seconds, plan in CALLS:
        want = {
            "retail": (plan, amount(*RETAIL[plan], seconds)),
            "resellco": ("default", amount(*RESELLCO, seconds)),  # no deck of cli or ncli
            "bt": ("default", amount(BT_RATE, 1, 1, seconds, BT_FEE)),
        }
        for account, (deck_plan, value) in want.items():
            row = charges[(call_id, account)]
            assert (row["status"], row["plan"], row["amount"]) == ("rated", deck_plan, value)
            expected[account] += value
        assert (rated[call_id]["plan"], rated[call_id]["customer"]) == (plan, "retail")
        assert rated[call_id]["customer_amount"] == want["retail"][1]

    after = {a: ledger.get_balance(TENANT, a)[0] for a in expected}
    assert after["retail"] - before["retail"] == -micro(expected["retail"])
    assert after["resellco"] - before["resellco"] == -micro(expected["resellco"])
    assert after["bt"] - before["bt"] == micro(expected["bt"])

    # A corrected cli deck from April: re-rating moves retail by the cli calls' difference
    # only (its other plans, its reseller and the supplier are unchanged).
    corrected = tmp_path / "retail-cli-corrected.csv"
    corrected.write_text("prefix,destination,rate\n44,UK CLI,0.0211\n")
    run("deck", "upload", TENANT, "retail", str(corrected), "--plan", "cli",
        "--effective", "2024-04-01")  # fmt: skip
    run("rerate", TENANT, "--from", str(DAY), "--to", str(DAY))
    cli_calls = [s for _, _, _, s, plan in CALLS if plan == "cli"]
    difference = sum(amount(D("0.0211"), 1, 1, s) - amount(D("0.0207"), 1, 1, s) for s in cli_calls)
    rerated = {a: ledger.get_balance(TENANT, a)[0] for a in expected}
    assert rerated["retail"] - after["retail"] == -micro(difference)
    assert (rerated["resellco"], rerated["bt"]) == (after["resellco"], after["bt"])
    plans = lake.get_table("charges", TENANT, DAY, dropped.file_id).column("plan").to_pylist()
    assert plans.count("cli") == len(cli_calls)  # the re-rated table keeps each call's plan
