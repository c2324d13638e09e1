"""POST /v1/authz/freeswitch (functions/api/authz.py): FreeSWITCH's own mod_xml_curl asking
for a call's dialplan, as it sends it: the channel's REQUEST_PARAMS event as form fields and the
API key as HTTP Basic. Real decks (the customer's and two suppliers' with SIP targets), the
real pricing oracle and the route service: the answer bridges the routes in cost order with
sched_hangup at the exact max duration, and the hold is in DynamoDB to the micro-unit."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import pytest

from functions.api.openapi import document
from functions.api.usagekeys import BASIC_CHALLENGE
from functions.rate.routing import check_target
from functions.store import accounts, apikeys, holds, ledger
from functions.store import routes as routes_store
from tests.api.test_openapi import check
from tests.pipeline.carrier import run

PATH = "/v1/authz/freeswitch"
UUID = "0b1c8f3e-5c3e-4b43-9a0a-51b1c1e2f3a4"
# 2026-12-05T10:00:00Z in microseconds, as Event-Date-Timestamp carries it
STAMP = "1796464800000000"


def xml_curl_form(uuid: str = UUID, callee: str = "442071234567", **extra: str) -> dict:
    """A dialplan lookup as FreeSWITCH 1.10's mod_xml_curl posts it: its own first fields
    (hostname, section, tag_name, key_name, key_value), then the REQUEST_PARAMS event built
    by mod_dialplan_xml (the channel's data, its caller profile as Caller-*, Hunt-*) with
    every channel variable as variable_*. Only some are read; the rest must not disturb."""
    form = {
        "hostname": "fs1.example.net",
        "section": "dialplan",
        "tag_name": "",
        "key_name": "",
        "key_value": "",
        "Event-Name": "REQUEST_PARAMS",
        "Core-UUID": "6a5e9d0c-1b2c-4d5e-8f90-a1b2c3d4e5f6",
        "FreeSWITCH-Hostname": "fs1.example.net",
        "FreeSWITCH-Switchname": "fs1.example.net",
        "FreeSWITCH-IPv4": "192.0.2.5",
        "Event-Date-Local": "2026-12-05 11:00:00",
        "Event-Date-GMT": "Sat, 05 Dec 2026 10:00:00 GMT",
        "Event-Date-Timestamp": STAMP,
        "Event-Calling-File": "mod_dialplan_xml.c",
        "Event-Calling-Function": "dialplan_xml_locate",
        "Event-Calling-Line-Number": "637",
        "Event-Sequence": "4711",
        "Channel-State": "CS_ROUTING",
        "Channel-Call-State": "RINGING",
        "Channel-Name": "sofia/external/15551230000@203.0.113.9",
        "Unique-ID": uuid,
        "Call-Direction": "inbound",
        "Presence-Call-Direction": "inbound",
        "Answer-State": "ringing",
        "Caller-Direction": "inbound",
        "Caller-Logical-Direction": "inbound",
        "Caller-Username": "15551230000",
        "Caller-Dialplan": "XML",
        "Caller-Caller-ID-Name": "15551230000",
        "Caller-Caller-ID-Number": "15551230000",
        "Caller-Network-Addr": "203.0.113.9",
        "Caller-ANI": "15551230000",
        "Caller-Destination-Number": callee,
        "Caller-Unique-ID": uuid,
        "Caller-Source": "mod_sofia",
        "Caller-Context": "public",
        "Caller-Channel-Name": "sofia/external/15551230000@203.0.113.9",
        "Caller-Profile-Index": "1",
        "Caller-Channel-Created-Time": "1796464799990000",
        "Hunt-Username": "15551230000",
        "Hunt-Dialplan": "XML",
        "Hunt-Caller-ID-Number": "15551230000",
        "Hunt-Network-Addr": "203.0.113.9",
        "Hunt-Destination-Number": callee,
        "Hunt-Context": "public",
        "variable_direction": "inbound",
        "variable_uuid": uuid,
        "variable_session_id": "17",
        "variable_sip_from_user": "15551230000",
        "variable_sip_from_host": "203.0.113.9",
        "variable_sip_req_user": callee,
        "variable_sip_network_ip": "203.0.113.9",
        "variable_sip_call_id": "a84b4c76e66710@pc33.example.com",
        "variable_switch_r_sdp": "v=0\r\no=- 1 1 IN IP4 203.0.113.9\r\ns=-\r\n"
        "c=IN IP4 203.0.113.9\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 101\r\n",
        "variable_accountcode": "FS1",
    }
    form.update(extra)
    return form


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def key_basic(key: str) -> str:
    return basic(key.split("_")[1], key)  # user: the key id, password: the key


@pytest.fixture(scope="module")
def fs(world, tmp_path_factory):
    """Customer FS1 (prepaid, 1.000000 paid) on 0.012 a minute to 44, billed 60/6; FS2 with
    nothing paid; suppliers VEND_A (0.0065, a FreeSWITCH gateway) and VEND_B (0.0060, a host
    over TLS wanting tech prefix 0011); a switch key."""
    folder = tmp_path_factory.mktemp("xml_curl")
    actor = accounts.caller(by="test")
    accounts.create_account("acme", "FS1", kind="customer", prepaid=True)
    accounts.create_account("acme", "FS2", kind="customer", prepaid=True)
    ledger.record_payment("acme", "FS1", 1_000_000, reference="fs1", account_kind="customer")
    for name in ("VEND_A", "VEND_B"):
        accounts.create_account("acme", name, kind="supplier")
    decks = {
        "FS1": "prefix,destination,rate,increment\n44,UK,0.012,60/6\n",
        "FS2": "prefix,destination,rate,increment\n44,UK,0.012,60/6\n",
        "VEND_A": "prefix,destination,rate\n44,UK,0.0065\n",
        "VEND_B": "prefix,destination,rate\n44,UK,0.0060\n",
    }
    for name, text in decks.items():
        (folder / f"{name}.csv").write_text(text)
        run("deck", "upload", "acme", name, str(folder / f"{name}.csv"))
    routes_store.set_target(
        "acme", "VEND_A", check_target("198.51.100.10", 5060, "udp", gateway="vendorA"),
        actor=actor,
    )  # fmt: skip
    routes_store.set_target(
        "acme", "VEND_B", check_target("carrier-b.example.net", 5061, "tls", prefix="0011"),
        actor=actor,
    )  # fmt: skip
    _, key = apikeys.create_key("acme", "switch", account=None, actor=actor)
    return key


def post(world, form: dict | bytes, authorization: str | None, **headers: str):
    headers = {"Content-Type": "application/x-www-form-urlencoded", **headers}
    if authorization is not None:
        headers["Authorization"] = authorization
    body = form if isinstance(form, bytes) else urlencode(form).encode()
    return world.http.request("POST", PATH, headers=headers, body=body)


def actions(answer) -> list[tuple[str, str]]:
    assert answer.status_code == 200, answer.body
    assert answer.headers["Content-Type"] == "text/xml"
    assert "text/xml" in document()["paths"][PATH]["post"]["responses"]["200"]["content"]
    root = ET.fromstring(answer.body)
    assert root.get("type") == "freeswitch/xml"
    (context,) = root.findall("section[@name='dialplan']/context")
    assert context.get("name") == "public"  # the context looked up (Hunt-Context)
    (condition,) = context.findall("extension/condition")
    assert condition.attrib == {"field": "destination_number", "expression": "^442071234567$"}
    return [(a.get("application"), a.get("data")) for a in condition.findall("action")]


def test_a_dialplan_lookup_bridges_the_routes_and_holds_the_money(world, fs):
    answer = post(world, xml_curl_form(), key_basic(fs))
    # 1.000000 at 0.012 a minute, 60/6: 60 s, then 6 s steps while they fit:
    # 60 + 823 x 6 = 4998 s at 0.012 x 4998 / 60 = 0.999600 (one more step: 1.000800).
    assert actions(answer) == [
        ("set", "execute_on_answer=sched_hangup +4998 alloted_timeout"),
        ("set", "continue_on_fail=true"),
        ("set", "hangup_after_bridge=true"),
        ("set", "originate_continue_on_timeout=true"),
        (
            "bridge",
            "[leg_timeout=60]sofia/external/0011442071234567@carrier-b.example.net:5061"
            ";transport=tls|[leg_timeout=60]sofia/gateway/vendorA/442071234567",
        ),  # VEND_B (0.0060) before VEND_A (0.0065)
        ("hangup", "${originate_disposition}"),
    ]
    (hold,) = holds.list_holds("acme", "FS1")
    assert (hold.call_id, hold.amount_micro, hold.max_duration_seconds) == (UUID, 999_600, 4998)
    assert ledger.get_balance("acme", "FS1") == (1_000_000, 999_600)
    # xml_curl asks again for the same channel (a transfer back into the dialplan): the same
    # hold, the same answer, nothing more held
    again = post(world, xml_curl_form(), key_basic(fs))
    assert again.body == answer.body
    assert ledger.get_balance("acme", "FS1") == (1_000_000, 999_600)
    # a repeat of a field nothing reads changes nothing (FreeSWITCH's own hostname twice)
    repeated = urlencode(xml_curl_form()).encode() + b"&hostname=fs1.example.net"
    assert post(world, repeated, key_basic(fs)).body == answer.body
    # the same key as a bearer header is taken here too
    bearer = post(world, xml_curl_form(), f"Bearer {fs}")
    assert bearer.body == answer.body
    # a second call finds 0.000400 left: less than the first minute's 0.012000
    denied = post(world, xml_curl_form(uuid="second-call"), key_basic(fs))
    assert actions(denied) == [("hangup", "CALL_REJECTED")]
    assert [h.call_id for h in holds.list_holds("acme", "FS1")] == [UUID]


def test_a_denied_call_is_a_hangup_with_its_cause_and_holds_nothing(world, fs):
    unpaid = post(world, xml_curl_form(uuid="fs2-1", variable_accountcode="FS2"), key_basic(fs))
    assert actions(unpaid) == [("hangup", "CALL_REJECTED")]  # insufficient funds
    unrated = xml_curl_form(uuid="fs2-2", variable_accountcode="FS2", callee="3312345")
    answer = post(world, unrated, key_basic(fs))
    root = ET.fromstring(answer.body)
    assert [a.get("data") for a in root.iter("action")] == ["NO_ROUTE_DESTINATION"]
    assert holds.list_holds("acme", "FS2") == []
    assert ledger.get_balance("acme", "FS2") == (0, 0)


def test_the_trunk_comes_from_the_source_address_without_an_account(world, fs, tmp_path):
    """Without an account variable the call is mapped as CDR ingest maps it: the gateway it
    matched, else its From host, else the address it came from (here: FS3's IP)."""
    accounts.create_account("acme", "FS3", kind="customer", prepaid=True)
    (tmp_path / "fs3.csv").write_text("prefix,destination,rate,increment\n44,UK,0.012,60/6\n")
    run("deck", "upload", "acme", "FS3", str(tmp_path / "fs3.csv"))
    ledger.record_payment("acme", "FS3", 120_000, reference="fs3", account_kind="customer")
    accounts.create_switch("acme", "fs1", format="freeswitch")
    accounts.map_trunk("acme", "fs1", "ingress", "203.0.113.77", "FS3")
    form = xml_curl_form(uuid="by-ip", variable_accountcode="", variable_sip_from_host="")
    form["Caller-Network-Addr"] = "203.0.113.77"
    # 0.120000 at 0.012 a minute: 600 s exactly
    assert actions(post(world, form, key_basic(fs)))[0] == (
        "set",
        "execute_on_answer=sched_hangup +600 alloted_timeout",
    )
    (hold,) = holds.list_holds("acme", "FS3")
    assert (hold.call_id, hold.amount_micro) == ("by-ip", 120_000)
    unmapped = {**form, "Unique-ID": "by-ip-2", "Caller-Network-Addr": "198.51.100.99"}
    assert actions(post(world, unmapped, key_basic(fs))) == [("hangup", "CALL_REJECTED")]
    assert [h.call_id for h in holds.list_holds("acme", "FS3")] == ["by-ip"]


@pytest.mark.parametrize(
    ("authorization", "code", "by"),
    [
        (None, "missing_key", "gateway"),
        ("wrong password", "malformed_key", "gateway"),
        ("Basic bm90IGJhc2U2NA", "malformed_key", "gateway"),  # no padding: not base64
        ("user-only", "malformed_key", "gateway"),
        ("other id", "malformed_key", "gateway"),
        ("wrong secret", "unknown_key", "serve"),
    ],
)
def test_a_refused_key_is_a_401(world, fs, authorization, code, by):
    """The authorizer refuses what is no Basic key of ours (API Gateway answers, with the
    API-wide challenge); a well-formed key with a wrong secret is refused by API Gateway's
    usage plan on AWS and by serve() here, which challenges for Basic on this route."""
    key_id = fs.split("_")[1]
    header = {
        "wrong password": basic(key_id, "hunter2"),
        "user-only": "Basic " + base64.b64encode(key_id.encode()).decode(),
        "other id": basic("0123456789abcdef", fs),
        "wrong secret": basic(key_id, fs[:-1] + ("A" if fs[-1] != "A" else "B")),
    }.get(authorization, authorization)
    answer = post(world, xml_curl_form(uuid="refused"), header)
    check(document(), PATH, "post", answer, set())
    assert (answer.status_code, answer.json_body["code"]) == (401, code), answer.body
    challenge = BASIC_CHALLENGE if by == "serve" else "Bearer"
    assert answer.headers["WWW-Authenticate"] == challenge
    assert "refused" not in [h.call_id for h in holds.list_holds("acme", "FS1")]


def test_serve_says_how_to_send_the_key_as_basic(world, fs):
    """What serve() answers on this route when no authorizer stands before it (the local
    stack without one, a direct invocation): each refusal names the way to send the key."""
    from chalice.app import Request

    from functions.api.authz import authorize_freeswitch

    def ask(header: str | None):
        headers = {"content-type": "application/x-www-form-urlencoded"}
        if header is not None:
            headers["authorization"] = header
        event = {
            "multiValueQueryStringParameters": None, "headers": headers,
            "pathParameters": {}, "requestContext": {"httpMethod": "POST", "resourcePath": PATH,
            "identity": {"sourceIp": "127.0.0.1"}}, "body": urlencode(xml_curl_form()),
            "isBase64Encoded": False, "stageVariables": {},
        }  # fmt: skip
        return authorize_freeswitch(Request(event))

    key_id = fs.split("_")[1]
    for header, message in [
        (None, "HTTP Basic: user <key id>"),
        ("Digest x", "HTTP Basic: user <key id>"),
        (basic(key_id, "hunter2"), "HTTP Basic: user <key id>"),
        (basic("someone", fs), f"the Basic user must be the key's id ({key_id})"),
    ]:
        answer = ask(header)
        assert answer.status_code == 401 and message in answer.body["message"], answer.body
        assert answer.headers["WWW-Authenticate"] == BASIC_CHALLENGE
    assert ask(key_basic(fs)).status_code == 200


def test_basic_is_taken_on_this_route_only(world, fs):
    answer = world.http.get("/v1/me", headers={"Authorization": key_basic(fs)})
    assert (answer.status_code, answer.json_body["code"]) == (401, "malformed_key")
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    json_route = world.http.request(
        "POST", "/v1/authz",
        headers={"Authorization": key_basic(fs), "Content-Type": "application/json"},
        body=json.dumps({"event": "start", "call_id": "b1", "account": "FS1"}).encode(),
    )  # fmt: skip
    assert (json_route.status_code, json_route.json_body["code"]) == (401, "malformed_key")


def test_json_is_refused_on_the_form_route(world, fs):
    body = json.dumps({"event": "start", "call_id": "j1", "account": "FS1", "callee": "44"})
    answer = world.http.request(
        "POST", PATH,
        headers={"Authorization": f"Bearer {fs}", "Content-Type": "application/json"},
        body=body.encode(),
    )  # fmt: skip
    check(document(), PATH, "post", answer, set())
    assert (answer.status_code, answer.json_body["code"]) == (415, "unsupported_media_type")
    # JSON sent as a form: no field FreeSWITCH sends
    as_form = post(world, body.encode(), f"Bearer {fs}")
    assert (as_form.status_code, as_form.json_body["field"]) == (400, "body"), as_form.body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (urlencode(xml_curl_form(section="directory")).encode(), "section"),
        (urlencode(xml_curl_form(**{"Unique-ID": "", "variable_uuid": ""})).encode(), "Unique-ID"),
        (urlencode(xml_curl_form()).encode() + b"&Caller-Destination-Number=4471", None),
        (urlencode(xml_curl_form(callee="44${x}")).encode(), "Caller-Destination-Number"),
        (urlencode(xml_curl_form(variable_accountcode="bad name!")).encode(), None),
        (urlencode(xml_curl_form(**{"Unique-ID": "has space"})).encode(), "Unique-ID"),
        (urlencode(xml_curl_form(**{"Hunt-Context": "pub lic"})).encode(), "Hunt-Context"),
        (urlencode(xml_curl_form(variable_accountcode="A" * 257)).encode(), None),
        (urlencode(xml_curl_form(variable_foo="x" * 16_385)).encode(), "variable_foo"),
        (urlencode(xml_curl_form(**{"Event-Date-Timestamp": "soon"})).encode(), None),
        (b"a=%ff", "body"),
        (b"=" * 300_000, "body"),
    ],
)
def test_a_bad_form_is_400_naming_the_field(world, fs, body, field):
    answer = post(world, body, key_basic(fs))
    check(document(), PATH, "post", answer, set())
    assert (answer.status_code, answer.json_body["code"]) == (400, "bad_field"), answer.body
    wanted = {
        b"&Caller-Destination-Number=4471": "Caller-Destination-Number",
        b"bad+name%21": "variable_accountcode",
        b"A" * 257: "variable_accountcode",
        b"Event-Date-Timestamp=soon": "Event-Date-Timestamp",
    }
    expected = field or next(name for part, name in wanted.items() if part in body)
    assert answer.json_body["field"] == expected, answer.json_body


def test_who_may_ask(world, fs):
    for name, status in [("admin", 200), ("customer", 403), ("readonly", 403)]:
        form = xml_curl_form(uuid=f"who-{name}", variable_accountcode="FS2")
        answer = post(world, form, key_basic(world.keys[name]))
        assert answer.status_code == status, (name, answer.body)
        if status != 200:
            check(document(), PATH, "post", answer, set())
