"""POST /v1/authz (functions/api/authz.py): who may ask, what a bad body is answered, and
START/INTERIM/STOP over HTTP with money exact to the micro-unit; a switch key reads nothing
else. Prices come from the stand-in oracle of tests/test_authz.py until the real one merges."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from botocore.exceptions import ReadTimeoutError

from functions.api.openapi import document
from functions.authz import service
from functions.store import accounts, apikeys, holds, ledger
from tests.api.test_openapi import check
from tests.api.test_route_walk import get_operations, targets
from tests.test_authz import stand_in_quote
from tests.test_authz_degraded import fault  # noqa: F401 (a fixture)

PATH = "/v1/authz"


@pytest.fixture(scope="module")
def switch(world):
    """This module's own customer RT1 (prepaid, 1.000000 paid), its trunk on switch sbc9, and
    a switch key; pricing by the stand-in oracle."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(service, "quote", stand_in_quote)
        patch.setattr(service, "deck_index", lambda *args: "deck")
        accounts.create_account("acme", "RT1", kind="customer", prepaid=True)
        ledger.record_payment("acme", "RT1", 1_000_000, reference="rt1", account_kind="customer")
        accounts.create_switch("acme", "sbc9", format="generic")
        accounts.map_trunk("acme", "sbc9", "ingress", "10.0.0.9", "RT1")
        _, presented = apikeys.create_key(
            "acme", "switch", account=None, actor=accounts.caller(by="test")
        )
        world.keys["switch"] = presented
        yield presented
        del world.keys["switch"]


def post(world, key, body):
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {world.keys.get(key, key)}"
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return world.http.request("POST", PATH, headers=headers, body=raw)


START = {"event": "start", "call_id": "h1", "account": "RT1", "callee": "442071234567"}


def test_start_interim_stop_over_http(world, switch):
    doc, met = document(), set()
    answer = post(world, "switch", {**START, "caller": "15551230000"})
    check(doc, PATH, "post", answer, met)
    assert answer.json_body == {
        "allow": True,
        "reason": "ok",
        "max_duration_seconds": 5940,
        "hold_amount": "0.995000",
        "routes": [],
    }
    assert ledger.get_balance("acme", "RT1") == (1_000_000, 995_000)
    # by trunk, as CDR ingest maps it: the same call, the same hold
    by_trunk = {**START, "trunk": "10.0.0.9", "time": "2026-12-05T10:00:00+01:00"}
    del by_trunk["account"]
    assert post(world, "switch", by_trunk).json_body == answer.json_body
    interim = {**START, "event": "interim", "answered_seconds": 600}
    answer = post(world, "admin", interim)
    assert answer.json_body["max_duration_seconds"] == 5940 - 600
    stop = post(world, "switch", {"event": "stop", "call_id": "h1", "account": "RT1"})
    assert (stop.status_code, stop.json_body["reason"]) == (200, "stopped")
    assert ledger.get_balance("acme", "RT1") == (1_000_000, 0)
    assert holds.list_holds("acme", "RT1") == []
    unknown = post(world, "switch", {**START, "call_id": "h2", "account": "NOBODY"})
    assert unknown.json_body["reason"] == "unknown_account"
    unmapped = {"event": "start", "call_id": "h3", "trunk": "10.9.9.9", "callee": "4420"}
    assert post(world, "switch", unmapped).json_body["reason"] == "unknown_account"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b"[1]", "body"),
        ({"call_id": "x", "account": "RT1"}, "event"),
        ({**START, "event": "begin"}, "event"),
        ({**START, "call_id": "has space"}, "call_id"),
        ({**START, "call_id": 7}, "call_id"),
        ({"event": "start", "call_id": "x", "callee": "44"}, "account"),
        ({**START, "trunk": "10.0.0.9"}, "trunk"),
        ({**START, "account": "bad name!"}, "account"),
        ({**START, "switch": "sbc9"}, "switch"),
        ({**START, "callee": None}, "callee"),
        ({**START, "callee": ""}, "callee"),
        ({**START, "callee": "4" * 65}, "callee"),
        ({**START, "time": "yesterday"}, "time"),
        ({**START, "time": "2026-12-05T10:00:00"}, "time"),
        ({**START, "event": "interim"}, "answered_seconds"),
        ({**START, "answered_seconds": -1}, "answered_seconds"),
        ({**START, "answered_seconds": 1.5}, "answered_seconds"),
        ({**START, "answered_seconds": True}, "answered_seconds"),
        ({**START, "amount": "1.00"}, "amount"),
    ],
)
def test_bad_bodies_name_the_member(world, switch, body, field):
    answer = post(world, "switch", body)
    assert (answer.status_code, answer.json_body["code"]) == (400, "bad_field"), answer.body
    assert answer.json_body["field"] == field
    check(document(), PATH, "post", answer, set())


def test_who_may_ask(world, switch):
    wanted = {
        "switch": 200,
        "admin": 200,
        "finance": 403,
        "readonly": 403,
        "reseller": 403,
        "readonly_res": 403,
        "customer": 403,
        "direct": 403,
        None: 401,
        world.revoked: 401,
    }
    got = {}
    for i, key in enumerate(wanted):
        answer = post(world, key, {**START, "call_id": f"who{i}", "callee": "12125550100"})
        check(document(), PATH, "post", answer, set())
        got[key] = answer.status_code
    assert got == wanted


def test_a_switch_key_reads_nothing_else(world, switch):
    for path, operation in get_operations():
        for url in targets(path, operation):
            answer = world.get(url, "switch")
            assert answer.status_code == 403, (url, answer.body[:200])
            assert answer.json_body["code"] == "forbidden"


def test_a_switch_is_no_portal_user():
    from functions.store import users

    with pytest.raises(ValueError, match="switch"):
        users.create_user(
            "acme", "sw.user", "a long enough password", "switch", account=None,
            actor=accounts.caller(by="test"),
        )  # fmt: skip


def test_money_that_keeps_moving_is_a_409(world, switch, monkeypatch):
    def moved(*args, **kwargs):
        raise holds.MoneyMoved("moved")

    monkeypatch.setattr(holds, "place", moved)
    monkeypatch.setattr(service, "MONEY_ATTEMPTS", 3)
    answer = post(world, "switch", {**START, "call_id": "busy"})
    assert (answer.status_code, answer.json_body["code"]) == (409, "conflict")
    check(document(), PATH, "post", answer, set())


def test_beyond_the_keys_rate_is_a_429(world, switch, monkeypatch):
    from functions.api import handler
    from functions.api.throttle import Limit, Limiter

    monkeypatch.setattr(handler, "LIMITER", Limiter(Limit(1e-6, 1), clock=lambda: 0.0))
    post(world, "switch", {**START, "call_id": "rate1"})  # the one token
    answer = post(world, "switch", {**START, "call_id": "rate2"})
    assert answer.status_code == 429
    check(document(), PATH, "post", answer, set())


def test_the_answer_comes_in_the_asking_switchs_dialect(world, switch):
    """?dialect= renders the same decision (functions/api/dialects.py): Kamailio's JSON with
    the cap for dlg_set_timeout (no rtjson without routes), FreeSWITCH's xml_curl document, and
    a deny as the switch's SIP answer; a STOP is answered in JSON whatever was asked."""
    doc, met = document(), set()
    call = {**START, "call_id": "dialect-1"}

    def ask(dialect, body):
        headers = {"Content-Type": "application/json"}
        headers["Authorization"] = f"Bearer {world.keys['switch']}"
        path = f"{PATH}?dialect={dialect}"
        return world.http.request("POST", path, headers=headers, body=json.dumps(body).encode())

    ledger.record_payment("acme", "RT1", 10_000_000, reference="dialects", account_kind="customer")
    plain = ask("json", call).json_body
    assert plain["allow"] is True and plain["max_duration_seconds"] > 0
    kamailio = ask("kamailio", call)  # the same call again: the same hold, the same answer
    check(doc, PATH, "post", kamailio, met)
    assert kamailio.json_body == {
        "allow": True,
        "reason": "ok",
        "max_duration": plain["max_duration_seconds"],
    }
    freeswitch = ask("freeswitch", call)
    assert freeswitch.headers["Content-Type"].startswith("text/xml")
    root = ET.fromstring(freeswitch.body)
    # allowed with no route: "not found", so FreeSWITCH falls back to its own dialplan
    assert root.get("type") == "freeswitch/xml"
    assert root.find("section").get("name") == "result"
    assert root.find("section/result").get("status") == "not found"
    denied = ask("kamailio", {**call, "call_id": "dialect-2", "callee": "4499123"})
    check(doc, PATH, "post", denied, met)
    assert denied.json_body == {
        "allow": False,
        "reason": "closed",
        "max_duration": 0,
        "sip_code": 403,
        "sip_reason": "Destination blocked",
    }
    stopped = ask("freeswitch", {"event": "stop", "call_id": "dialect-1", "account": "RT1"})
    assert stopped.json_body["reason"] == "stopped"
    bad = ask("sip", call)
    assert (bad.status_code, bad.json_body["field"]) == (400, "dialect")


def test_a_store_that_cannot_answer_gets_the_tenants_fallback_in_each_dialect(
    world,
    switch,
    fault,  # noqa: F811 (the fixture imported above)
):
    """The store times out (a ReadTimeoutError at botocore's before-send, each attempt of the
    authorization's own clients): a 200 with the tenant's fallback in the asking switch's
    dialect; open allows for the tenant's cap and holds nothing, closed denies as a 503 /
    NORMAL_TEMPORARY_FAILURE; a STOP is a 503 unavailable with Retry-After. The key's own
    check is within the budget too: the key as this container last read it stands in (its
    secret still checked); a key never read here is a 503, no tenant being known."""
    doc, met = document(), set()

    def ask(dialect, body):
        headers = {"Content-Type": "application/json"}
        headers["Authorization"] = f"Bearer {world.keys['switch']}"
        path = f"{PATH}?dialect={dialect}"
        return world.http.request("POST", path, headers=headers, body=json.dumps(body).encode())

    def tenant_fallback(mode):
        accounts.update_tenant("acme", {"authz_fallback": mode, "authz_fallback_seconds": 300})
        service._fallbacks.clear()
        assert "degraded" not in ask("json", {**START, "call_id": f"fb-warm-{mode}"}).json_body
        fault.clear()
        fault.error = ReadTimeoutError

    ledger.record_payment("acme", "RT1", 10_000_000, reference="fallback", account_kind="customer")
    tenant_fallback("open")
    reserved = ledger.get_balance("acme", "RT1")[1]
    call = {**START, "call_id": "fb-1"}
    plain = ask("json", call)
    check(doc, PATH, "post", plain, met)
    assert (plain.status_code, plain.json_body) == (
        200,
        {
            "allow": True,
            "reason": "fallback_open",
            "max_duration_seconds": 300,
            "hold_amount": "0.000000",
            "routes": [],
            "degraded": "store_timeout",
        },
    )
    assert len(fault.sends) == 4  # the key's read and the account's, twice each: no more
    # the key as last read stands in for the store, its secret checked all the same
    wrong = world.keys["switch"][:-1] + ("A" if world.keys["switch"][-1] != "A" else "B")
    refused = world.http.request(
        "POST",
        PATH,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {wrong}"},
        body=json.dumps(call).encode(),
    )
    assert (refused.status_code, refused.json_body["code"]) == (401, "unknown_key")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(apikeys, "_last_known", {})  # a cold container: the key never read here
        cold = ask("json", call)
    check(doc, PATH, "post", cold, met)
    assert (cold.status_code, cold.json_body["code"], cold.headers["Retry-After"]) == (
        503,
        "unavailable",
        "5",
    )
    kamailio = ask("kamailio", call)
    check(doc, PATH, "post", kamailio, met)
    assert kamailio.json_body == {"allow": True, "reason": "fallback_open", "max_duration": 300}
    freeswitch = ask("freeswitch", call)
    # allowed without routes: FreeSWITCH's static dialplan routes it (docs/authorization.md)
    assert ET.fromstring(freeswitch.body).find("section/result").get("status") == "not found"
    stop = ask("json", {"event": "stop", "call_id": "fb-1", "account": "RT1"})
    check(doc, PATH, "post", stop, met)
    assert (stop.status_code, stop.json_body["code"], stop.headers["Retry-After"]) == (
        503,
        "unavailable",
        "5",
    )
    fault.clear()
    assert holds.get_hold("acme", "RT1", "fb-1") is None
    assert ledger.get_balance("acme", "RT1")[1] == reserved

    tenant_fallback("closed")
    try:
        plain = ask("json", {**call, "call_id": "fb-2"})
        check(doc, PATH, "post", plain, met)
        assert (plain.json_body["allow"], plain.json_body["reason"]) == (False, "unavailable")
        kamailio = ask("kamailio", {**call, "call_id": "fb-2"})
        check(doc, PATH, "post", kamailio, met)
        assert kamailio.json_body == {
            "allow": False,
            "reason": "unavailable",
            "max_duration": 0,
            "sip_code": 503,
            "sip_reason": "Service unavailable",
        }
        root = ET.fromstring(ask("freeswitch", {**call, "call_id": "fb-2"}).body)
        actions = [(a.get("application"), a.get("data")) for a in root.iter("action")]
        assert actions == [("hangup", "NORMAL_TEMPORARY_FAILURE")]
    finally:
        fault.clear()
        accounts.update_tenant("acme", {"authz_fallback": "closed"})
    # the fault cleared: the next START holds as always
    after = ask("json", {**call, "call_id": "fb-3"}).json_body
    assert after["reason"] == "ok" and "degraded" not in after
    held = holds.get_hold("acme", "RT1", "fb-3")
    assert (
        f"{held.amount_micro // 1_000_000}.{held.amount_micro % 1_000_000:06d}"
        == after["hold_amount"]
    )
