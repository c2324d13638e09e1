"""Routing on the stores: supplier targets and blocks (audited), the routing policy, the
quality stats fed once per rated file (redelivered events count nothing twice), the route
service the authorization calls, and `tollgate routes`."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from functions.cli import main
from functions.rate.route_service import RouteService, record_file_quality
from functions.rate.routing import Stats, check_target
from functions.store import accounts, files, lake, ledger, quality
from functions.store import routes as routes_store
from tests.conftest import operator_account
from tests.pipeline.carrier import HEADER, TENANT, process_file, run, set_up_carrier

OPERATOR = accounts.Actor(by="ops", principal="arn:aws:iam::123456789012:user/ops")
AT = dt.datetime(2024, 5, 1, 11, 0, tzinfo=dt.UTC)
HOUR = int(dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC).timestamp()) // 3600


def cdr(call_id: str, supplier: str, callee: str, billsec: int, pdd_ms: int | None) -> str:
    start = "2024-05-01T10:10:00Z"
    pdd = "" if pdd_ms is None else str(pdd_ms)
    if billsec == 0:
        return (
            f"{call_id},15551230000,{callee},{start},,{start},0,NO_ANSWER,direct,{supplier},{pdd}"
        )
    end = f"2024-05-01T10:{10 + billsec // 60:02d}:{billsec % 60:02d}Z"
    return (
        f"{call_id},15551230000,{callee},{start},{start},{end},{billsec},ANSWERED,"
        f"direct,{supplier},{pdd}"
    )


# cheapuk: 25 attempts, 5 answered (20 % ASR) of 60 s, PDD 3 s on each answered call.
# bt: 25 attempts, 20 answered (80 %) of 30 s, PDD 1 s on all 25.
QUALITY_FILE = (
    "\n".join(
        [
            HEADER + ",pdd_ms",
            *(
                cdr(f"q{i}", "cheapuk", "447700900123", 60 if i < 5 else 0, 3000 if i < 5 else None)
                for i in range(25)
            ),
            *(cdr(f"b{i}", "bt", "442071234567", 30 if i < 20 else 0, 1000) for i in range(25)),
        ]
    )
    + "\n"
)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("routes")
    with operator_account():
        set_up_carrier(folder)
        for name, text in (
            ("cheapuk", "prefix,destination,rate\n44,UK,0.0055\n"),
            ("orange", "prefix,destination,rate\n44,UK,0.0050\n"),
        ):
            run("account", "create", TENANT, name, "--kind", "supplier")
            path = folder / f"{name}.csv"
            path.write_text(text)
            run("deck", "upload", TENANT, name, str(path))
        run("account", "suspend", TENANT, "orange", "--reason", "test")
        file_id = process_file("quality.csv", QUALITY_FILE)
        yield {"file_id": file_id, "folder": folder}


def service() -> RouteService:
    return RouteService(
        routes=routes_store, lake=lake, quality=quality, accounts=accounts, ttl_seconds=0
    )


def test_a_rated_file_is_counted_once_per_bucket_however_often_it_comes(world):
    file_id = world["file_id"]
    first = record_file_quality(TENANT, file_id, files=files, lake=lake, quality=quality)
    again = record_file_quality(TENANT, file_id, files=files, lake=lake, quality=quality)
    assert (first, again) == (2, 0)  # one update per (supplier, hour), then none
    # Keyed by the supplier deck's destination name ("UK" on both decks' 44).
    found = quality.get_stats(TENANT, [("cheapuk", "uk"), ("bt", "uk")], HOUR - 2, HOUR + 2)
    assert found == {
        ("cheapuk", "uk"): Stats(25, 5, 300, 15_000, 5),
        ("bt", "uk"): Stats(25, 20, 600, 25_000, 25),
    }
    assert quality.get_stats(TENANT, [("bt", "uk")], HOUR + 1, HOUR + 3) == {}
    assert quality.get_stats(TENANT, [("bt", "44")], HOUR - 2, HOUR + 2) == {}  # not per prefix


def test_the_route_service_orders_by_cost_then_quality_and_guards_the_margin(world):
    record_file_quality(TENANT, world["file_id"], files=files, lake=lake, quality=quality)
    routes = service().routes_for(TENANT, "direct", "447700900123", AT, None)
    # orange (0.0050) is suspended; cheapuk (0.0055) answers 20 %: penalised, it ranks below
    # bt (0.006 + a 0.0002 connect fee). Both are priced at the destination's ACD: 900 s
    # over 25 answered calls = 36 s.
    assert [(r["supplier"], r["quality"], r["asr"], r["calls"]) for r in routes] == [
        ("bt", "ok", "80.0", 25),
        ("cheapuk", "poor", "20.0", 25),
    ]
    assert [(r["expected_seconds"], r["cost_per_minute"], r["pdd"]) for r in routes] == [
        (36, "0.00600000", 1000),
        (36, "0.00550000", 3000),
    ]
    # direct pays 0.012 a minute for 44.
    # 36 s at 1/1: bt 0.0002 + 0.006 * 36 / 60 = 0.0038; cheapuk 0.0055 * 36 / 60 = 0.0033,
    # cheaper, but ranked as 0.0033 * 1.5 = 0.00495 for its 20 % ASR.
    assert [(r["cost"], r["increment"], r["penalty"]) for r in routes] == [
        ("0.003800", "1/1", "0"),
        ("0.003300", "1/1", "50"),
    ]
    assert [(r["margin"], r["margin_percent"], r["flagged"]) for r in routes] == [
        ("0.00600000", "50.00", False),
        ("0.00650000", "54.17", False),
    ]


def test_a_files_stats_cost_updates_per_supplier_and_hour_not_per_destination(world):
    """A file over 100 of a supplier's destinations in one hour: 100 x 5 counters in updates
    of at most 100 clauses, five in all, not one per destination; once."""
    hour = HOUR + 30
    buckets = {("bt", f"{4400 + i}", hour): Stats(2, 1, 30, 4000, 1) for i in range(100)}
    assert quality.add_stats(TENANT, "many-prefixes", buckets) == 5
    assert quality.add_stats(TENANT, "many-prefixes", buckets) == 0  # redelivered
    found = quality.get_stats(TENANT, [("bt", "4400"), ("bt", "4499"), ("bt", "4500")], hour, hour)
    assert found == {
        ("bt", "4400"): Stats(2, 1, 30, 4000, 1),
        ("bt", "4499"): Stats(2, 1, 30, 4000, 1),
    }


def test_destination_names_of_any_text_are_stored_under_bounded_attribute_names(world):
    """Names with spaces, '#', '|', accents or over the length are their own counters (long
    or '#' names hashed into a bounded attribute name); a control character, an empty or an
    overlong key, or a key that is not text is refused before anything is written."""
    hour = HOUR + 40
    names = ["india mobile", "côte d'ivoire | orange", "#1 destination", "x" * 256, "x" * 255]
    buckets = {("bt", name, hour): Stats(i + 1, 1, 10, 0, 0) for i, name in enumerate(names)}
    assert quality.add_stats(TENANT, "names", buckets) == 1
    found = quality.get_stats(TENANT, [("bt", n) for n in names], hour, hour)
    assert found == {("bt", n): Stats(i + 1, 1, 10, 0, 0) for i, n in enumerate(names)}
    item = quality._batch_get([quality._key(TENANT, "bt", hour)])[0]
    assert max(len(name) for name in item) <= 50
    for bad in ("", "a\x00b", "tab\there", "x" * 257, " padded", 44):
        with pytest.raises(ValueError, match="destination"):
            quality.add_stats(TENANT, "bad", {("bt", bad, hour): Stats(1)})
        with pytest.raises(ValueError, match="destination"):
            quality.get_stats(TENANT, [("bt", bad)], hour, hour)
    assert quality.get_stats(TENANT, [("bt", "india mobile")], hour, hour) == {
        ("bt", "india mobile"): Stats(1, 1, 10, 0, 0)
    }


def test_thirty_thin_prefixes_of_one_destination_count_together(world):
    """Issue 14 section 2: a supplier deck names India Mobile on 30 prefixes, one call each
    (under the 20-call minimum per prefix); per destination they are 30 calls at 20 % ASR,
    so the cheaper route (0.0062) ranks below the one at 0.0065 with 85 %."""
    rows = "".join(f"9170{i:02d},India Mobile,0.0062\n" for i in range(30))
    for name, text in (
        ("thin", "prefix,destination,rate\n" + rows),
        ("solid", "prefix,destination,rate\n917,India Mobile,0.0065\n"),
    ):
        run("account", "create", TENANT, name, "--kind", "supplier")
        path = world["folder"] / f"{name}.csv"
        path.write_text(text)
        run("deck", "upload", TENANT, name, str(path))
    lines = [
        *(cdr(f"t{i}", "thin", f"9170{i:02d}123456", 60 if i < 6 else 0, None) for i in range(30)),
        *(cdr(f"s{i}", "solid", "917012123456", 60 if i < 17 else 0, None) for i in range(20)),
    ]
    file_id = process_file("india.csv", "\n".join([HEADER + ",pdd_ms", *lines]) + "\n")
    assert record_file_quality(TENANT, file_id, files=files, lake=lake, quality=quality) == 2
    found = quality.get_stats(TENANT, [("thin", "india mobile"), ("solid", "india mobile")],
                              HOUR, HOUR)  # fmt: skip
    assert found == {
        ("thin", "india mobile"): Stats(30, 6, 360, 0, 0),
        ("solid", "india mobile"): Stats(20, 17, 1020, 0, 0),
    }
    routes = service().routes_for(TENANT, None, "917012123456", AT, None)
    assert [(r["supplier"], r["prefix"], r["calls"], r["asr"], r["quality"]) for r in routes] == [
        ("solid", "917", 20, "85.0", "ok"),
        ("tata", "91", 0, None, "unknown"),  # 0.0065, no stats: the name breaks the tie
        ("thin", "917012", 30, "20.0", "poor"),
    ]
    assert [(r["cost_per_minute"], r["penalty"]) for r in routes] == [
        ("0.00650000", "0"),
        ("0.00650000", "0"),
        ("0.00620000", "50"),
    ]


def test_targets_and_blocks_are_stored_on_the_supplier_with_the_audit_trail(world):
    record_file_quality(TENANT, world["file_id"], files=files, lake=lake, quality=quality)
    target = check_target("sip.bt.example", 5061, "tls", prefix="0044#", gateway="bt-gw")
    supplier, entry = routes_store.set_target(TENANT, "bt", target, actor=OPERATOR)
    assert supplier.target == {
        "host": "sip.bt.example",
        "port": 5061,
        "transport": "tls",
        "prefix": "0044#",
        "gateway": "bt-gw",
    }
    assert routes_store.set_target(TENANT, "bt", target, actor=OPERATOR)[1] is None
    trail = accounts.list_audit(TENANT, "account", "bt")
    assert [(c.field, c.old, c.new) for c in trail[-1].changes] == [("route_target", None, target)]
    assert trail[-1].change_id == entry.change_id and trail[-1].by == "ops"
    with pytest.raises(ValueError, match="not a supplier"):
        routes_store.set_target(TENANT, "direct", target, actor=OPERATOR)
    with pytest.raises(ValueError, match="port"):
        check_target("sip.bt.example", 70000)

    routes_store.block(TENANT, "cheapuk", "4477", actor=OPERATOR)
    blocked = service().routes_for(TENANT, None, "447700900123", AT, None)
    assert [(r["supplier"], r["target"]) for r in blocked] == [("bt", target)]
    assert [r["margin"] for r in blocked] == [None]  # no account: no margin, no guard
    other = service().routes_for(TENANT, None, "442071234567", AT, None)
    assert [r["supplier"] for r in other] == ["bt", "cheapuk"]
    supplier, _ = routes_store.unblock(TENANT, "cheapuk", "4477", actor=OPERATOR)
    assert supplier.blocks == ()
    changes = [c for e in accounts.list_audit(TENANT, "account", "cheapuk") for c in e.changes]
    assert [(c.field, c.old, c.new) for c in changes if c.field == "route_blocks"] == [
        ("route_blocks", None, ["4477"]),
        ("route_blocks", ["4477"], None),
    ]
    routes_store.set_target(TENANT, "bt", None, actor=OPERATOR)


def run_json(capsys, *argv: str):
    capsys.readouterr()
    status = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert status == 0, err
    return json.loads(out)


def test_the_cli_shows_routes_and_sets_targets_blocks_and_policy(world, capsys):
    record_file_quality(TENANT, world["file_id"], files=files, lake=lake, quality=quality)
    shown = run_json(
        capsys, "routes", TENANT, "+44 7700 900123", "--account", "direct",
        "--time", "2024-05-01T11:00Z",
    )  # fmt: skip
    assert (shown["number"], shown["customer_rate"], shown["flagged"]) == (
        "447700900123",
        "0.01200000",
        False,
    )
    assert [r["supplier"] for r in shown["routes"]] == ["bt", "cheapuk"]

    policy = run_json(
        capsys, "routes", "policy", TENANT, "--set", "min_margin_percent=55", "--by", "ops"
    )
    assert (policy["min_margin_percent"], policy["min_margin"]) == ("55", "0")
    flagged = run_json(
        capsys, "routes", TENANT, "447700900123", "--account", "direct",
        "--time", "2024-05-01T11:00Z",
    )  # fmt: skip
    assert flagged["flagged"] is True
    assert [(r["supplier"], r["flagged"]) for r in flagged["routes"]] == [
        ("bt", True),
        ("cheapuk", True),
    ]
    trail = accounts.list_audit(TENANT, "tenant", TENANT)
    assert [(c.field, c.old, c.new) for c in trail[-1].changes] == [
        ("routing.min_margin_percent", None, "55")
    ]
    run_json(capsys, "routes", "policy", TENANT, "--set", "min_margin_percent=default")

    target = run_json(
        capsys, "routes", "target", TENANT, "cheapuk", "--host", "10.0.0.7",
        "--transport", "tcp", "--by", "ops",
    )  # fmt: skip
    assert target["target"] == {"host": "10.0.0.7", "port": 5060, "transport": "tcp"}
    assert target["changed"] is True
    blocked = run_json(capsys, "routes", "block", TENANT, "cheapuk", "44", "--by", "ops")
    assert blocked["blocks"] == ["44"]
    text_status = main(["routes", TENANT, "447700900123", "--time", "2024-05-01T11:00Z"])
    out = capsys.readouterr().out
    assert text_status == 0 and "bt" in out and "cheapuk" not in out
    run_json(capsys, "routes", "unblock", TENANT, "cheapuk", "44", "--by", "ops")
    run_json(capsys, "routes", "target", TENANT, "cheapuk", "--remove", "--by", "ops")

    assert main(["routes", "target", TENANT, "cheapuk", "--host", "bad host!"]) == 2
    assert "invalid host" in capsys.readouterr().err
    assert main(["routes", "policy", TENANT, "--set", "min_calls=0"]) == 2
    assert "min_calls" in capsys.readouterr().err
    assert main(["routes", TENANT, "447700900123", "--account", "nobody"]) == 2


def test_the_file_rated_consumer_feeds_the_stats_once(world):
    from types import SimpleNamespace

    from functions.fraud.handler import handle_file_rated

    context = SimpleNamespace(
        function_name="fraud-check",
        memory_limit_in_mb=1024,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:fraud-check",
        aws_request_id="r1",
    )
    lines = [cdr("n1", "bt", "442071234500", 90, 2000), cdr("n2", "bt", "442071234501", 0, None)]
    file_id = process_file("quality2.csv", "\n".join([HEADER + ",pdd_ms", *lines]) + "\n")
    event = {"id": "e2", "detail": {"tenant": TENANT, "file_id": file_id}}
    before = quality.get_stats(TENANT, [("bt", "uk")], HOUR, HOUR).get(("bt", "uk"), Stats())
    assert handle_file_rated(event, context)["quality_buckets"] == 1
    assert handle_file_rated(event, context)["quality_buckets"] == 0  # delivered again
    after = quality.get_stats(TENANT, [("bt", "uk")], HOUR, HOUR)[("bt", "uk")]
    assert after == before + Stats(2, 1, 90, 2000, 1)


def test_a_start_answers_the_routes_a_switch_can_dial_in_order(world):
    """The authorization service (functions/authz/service.py) over the same stores: allowed,
    its routes the ordered suppliers that have a target, each as the dialects render it."""
    from functions.authz import service as authz

    record_file_quality(TENANT, world["file_id"], files=files, lake=lake, quality=quality)
    ledger.record_payment(
        TENANT, "direct", 10_000_000, reference="AUTHZ-1", account_kind="customer"
    )
    for supplier, host in (("bt", "sip.bt.example"), ("cheapuk", "203.0.113.9")):
        routes_store.set_target(TENANT, supplier, check_target(host, 5060), actor=OPERATOR)
    routes_store.route_service.cache_clear()
    request = authz.Request(
        TENANT, "start", "call-1@sbc1", account="direct", callee="447700900123", at=AT
    )
    answer = authz.authorize(request, dry_run=True)
    assert answer["allow"] is True
    assert [(r["supplier"], r["host"], r["port"], r["transport"]) for r in answer["routes"]] == [
        ("bt", "sip.bt.example", 5060, "udp"),
        ("cheapuk", "203.0.113.9", 5060, "udp"),
    ]
    assert [
        (r["cost_per_minute"], r["matched_prefix"], r["flagged"]) for r in answer["routes"]
    ] == [
        ("0.00600000", "44", False),
        ("0.00550000", "44", False),
    ]
    routes_store.set_target(TENANT, "cheapuk", None, actor=OPERATOR)  # no target: not offered
    routes_store.route_service.cache_clear()  # a new container (a warm one: within 60 s)
    answer = authz.authorize(request, dry_run=True)
    assert [r["supplier"] for r in answer["routes"]] == ["bt"]
    for supplier in ("bt", "cheapuk"):
        routes_store.set_target(TENANT, supplier, None, actor=OPERATOR)
