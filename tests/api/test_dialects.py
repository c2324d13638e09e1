"""The authorization answer in each switch's dialect (issue 14 §3), against the documented shapes.

Kamailio: the rtjson document as src/modules/rtjson/rtjson_routing.c reads it (`routing`
serial, a non-empty `routes` array, each with a string `uri`; `dst_uri`, `fr_inv_timer` in ms,
`headers.extra` raw lines), beside `max_duration` for dlg_set_timeout. FreeSWITCH: the
mod_xml_curl dialplan document, parsed back with ElementTree. Pure: no AWS, milliseconds.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from functions.api.dialects import (
    DENIALS,
    degraded,
    denial,
    parse_freeswitch_form,
    render,
)
from functions.api.requests import BodyError

CALLEE = "442071234567"
CALL_ID = "a84b4c76e66710@pc33.example.com"

ALLOWED = {
    "allow": True,
    "reason": "ok",
    "max_duration_seconds": 1740,
    "hold_amount": "0.012000",
    "routes": [
        {
            "supplier": "VEND_A",
            "host": "198.51.100.10",
            "port": 5060,
            "transport": "udp",
            "prefix": "",
            "gateway": "vendorA",
            "cost": "0.006500",
            "quality": {"asr": "0.85"},  # more than the dialects read: ignored
        },
        {
            "supplier": "VEND_B",
            "host": "carrier-b.example.net",
            "port": 5061,
            "transport": "tls",
            "prefix": "0011#",
            "gateway": None,
            "cost": "0.007000",
        },
    ],
}


def denied(reason: str) -> dict:
    return {
        "allow": False,
        "reason": reason,
        "max_duration_seconds": 0,
        "hold_amount": "0.000000",
        "routes": [],
    }


def kamailio(decision: dict, **options) -> dict:
    content_type, body = render(
        decision, "kamailio", callee=CALLEE, call_id=CALL_ID, options=options
    )
    assert content_type == "application/json"
    return json.loads(body)


def freeswitch(decision: dict, callee: str = CALLEE, call_id: str = CALL_ID, **options):
    content_type, body = render(
        decision, "freeswitch", callee=callee, call_id=call_id, options=options
    )
    assert content_type == "text/xml"
    return body, ET.fromstring(body)


def actions(document: ET.Element) -> list[tuple[str, str]]:
    return [(a.get("application"), a.get("data")) for a in document.iter("action")]


def check_rtjson(document: dict) -> None:
    """What rtjson_push_routes / rtjson_init_serial / rtjson_next_route require."""
    assert document["routing"] in ("serial", "parallel")
    assert isinstance(document["routes"], list) and document["routes"]
    for route in document["routes"]:
        assert isinstance(route["uri"], str) and route["uri"].startswith("sip:")
        assert isinstance(route.get("dst_uri", ""), str)
        for timer in ("fr_timer", "fr_inv_timer"):
            assert isinstance(route.get(timer, 1), int) and route.get(timer, 1) > 0
        extra = route.get("headers", {}).get("extra", "\r\n")
        assert extra.endswith("\r\n") and "\r\n" not in extra[:-2]


# --- json ----------------------------------------------------------------------------------


def test_the_generic_dialect_is_the_decision_as_is():
    content_type, body = render(ALLOWED, "json", callee=CALLEE, call_id=CALL_ID)
    assert content_type == "application/json"
    assert json.loads(body) == ALLOWED
    assert json.loads(render(denied("no_rate"), "json", callee=CALLEE, call_id=CALL_ID)[1]) == (
        denied("no_rate")
    )


# --- Kamailio ------------------------------------------------------------------------------


def test_kamailio_gets_an_rtjson_serial_document_and_the_max_duration():
    answer = kamailio(ALLOWED)
    check_rtjson(answer["rtjson"])
    assert answer == {
        "allow": True,
        "reason": "ok",
        "max_duration": 1740,
        "rtjson": {
            "version": "1.0",
            "routing": "serial",
            "routes": [
                {
                    "uri": "sip:442071234567@198.51.100.10:5060",
                    "dst_uri": "sip:198.51.100.10:5060",
                    "fr_inv_timer": 60000,
                    "headers": {"extra": "X-Tollgate-Route: VEND_A\r\n"},
                },
                {
                    # the tech prefix before the number, `#` escaped in the URI's user part
                    "uri": "sip:0011%23442071234567@carrier-b.example.net:5061;transport=tls",
                    "dst_uri": "sip:carrier-b.example.net:5061;transport=tls",
                    "fr_inv_timer": 60000,
                    "headers": {"extra": "X-Tollgate-Route: VEND_B\r\n"},
                },
            ],
        },
    }


def test_kamailio_timers_header_name_and_ipv6_hosts_follow_the_options():
    decision = {
        **ALLOWED,
        "routes": [{"supplier": "V6", "host": "2001:db8::7", "port": None, "transport": "tcp"}],
    }
    answer = kamailio(decision, leg_timeout=8, progress_timeout=3, header="X-Route-Id")
    check_rtjson(answer["rtjson"])
    assert answer["rtjson"]["routes"] == [
        {
            "uri": "sip:442071234567@[2001:db8::7];transport=tcp",
            "dst_uri": "sip:[2001:db8::7];transport=tcp",
            "fr_timer": 3000,
            "fr_inv_timer": 8000,
            "headers": {"extra": "X-Route-Id: V6\r\n"},
        }
    ]


@pytest.mark.parametrize(
    ("reason", "code", "text"),
    [
        ("insufficient_funds", 403, "Insufficient credit"),
        ("suspended", 403, "Account suspended"),
        ("blocked", 403, "Destination blocked"),
        ("invalid_number", 484, "Invalid number"),
        ("no_route", 404, "No route"),
        ("no_rate", 404, "No route"),
        ("unavailable", 503, "Service unavailable"),
        ("something_new", 403, "Forbidden"),
    ],
)
def test_kamailio_denials_carry_a_sip_reply_and_no_rtjson(reason, code, text):
    assert kamailio(denied(reason)) == {
        "allow": False,
        "reason": reason,
        "max_duration": 0,
        "sip_code": code,
        "sip_reason": text,
    }


def test_an_unsafe_route_is_left_out_never_passed_on():
    hostile = [
        {"supplier": "EVIL", "host": "10.0.0.1>;x=1", "port": 5060},
        {"supplier": "EVIL", "host": "10.0.0.2", "port": 70000},
        {"supplier": "EVIL", "host": "10.0.0.3", "transport": "sctp"},
        {"supplier": "EVIL", "host": "10.0.0.4", "prefix": "${system(id)}"},
        {"supplier": "EVIL", "host": "10.0.0.5", "gateway": "gw|sofia/gateway/x"},
    ]
    decision = {**ALLOWED, "routes": hostile + ALLOWED["routes"][:1]}
    # Kamailio ignores the gateway: the fifth route's host is fine.
    uris = [r["uri"] for r in kamailio(decision)["rtjson"]["routes"]]
    assert uris == ["sip:442071234567@10.0.0.5", "sip:442071234567@198.51.100.10:5060"]
    # A supplier id that would break the header line only loses the header.
    crlf = {**ALLOWED, "routes": [{**ALLOWED["routes"][0], "supplier": "A\r\nX-Evil: 1"}]}
    assert "headers" not in kamailio(crlf)["rtjson"]["routes"][0]
    # FreeSWITCH reads the gateway: an unsafe one drops its route (no silent fall back to
    # the host), as do the others; the last, sound route is bridged alone.
    _, document = freeswitch(decision)
    assert dict(actions(document))["bridge"] == (
        "[leg_timeout=60]sofia/gateway/vendorA/442071234567"
    )


def test_an_allowed_call_without_a_route_leaves_the_switch_to_its_static_routing():
    decision = degraded("open", "timeout", max_duration_seconds=300)
    assert kamailio(decision) == {"allow": True, "reason": "fallback_open", "max_duration": 300}
    _, document = freeswitch(decision)
    assert document.tag == "document"
    assert [(s.get("name"), [(r.tag, r.get("status")) for r in s]) for s in document] == [
        ("result", [("result", "not found")])
    ]


# --- FreeSWITCH ----------------------------------------------------------------------------


def test_freeswitch_bridges_the_routes_in_order_and_hangs_up_at_the_max_duration():
    _, document = freeswitch(ALLOWED)
    assert document.tag == "document" and document.get("type") == "freeswitch/xml"
    (section,) = document
    assert (section.tag, section.get("name")) == ("section", "dialplan")
    (context,) = section
    assert (context.tag, context.get("name")) == ("context", "public")
    (extension,) = context
    assert extension.tag == "extension"
    (condition,) = extension
    assert (condition.tag, condition.get("field"), condition.get("expression")) == (
        "condition",
        "destination_number",
        "^442071234567$",
    )
    assert all(child.tag == "action" for child in condition)
    assert actions(document) == [
        ("set", "execute_on_answer=sched_hangup +1740 alloted_timeout"),
        ("set", "continue_on_fail=true"),
        ("set", "hangup_after_bridge=true"),
        ("set", "originate_continue_on_timeout=true"),
        (
            "bridge",
            "[leg_timeout=60]sofia/gateway/vendorA/442071234567"
            "|[leg_timeout=60]sofia/external/0011#442071234567@carrier-b.example.net:5061"
            ";transport=tls",
        ),
        ("hangup", "${originate_disposition}"),
    ]


def test_freeswitch_options_set_the_context_profile_and_leg_timers():
    _, document = freeswitch(
        ALLOWED, context="c4-in", profile="carriers", leg_timeout=8, progress_timeout=4
    )
    assert document.find("section/context").get("name") == "c4-in"
    assert dict(actions(document))["bridge"] == (
        "[leg_timeout=8,leg_progress_timeout=4]sofia/gateway/vendorA/442071234567"
        "|[leg_timeout=8,leg_progress_timeout=4]"
        "sofia/carriers/0011#442071234567@carrier-b.example.net:5061;transport=tls"
    )


@pytest.mark.parametrize(
    ("reason", "cause"),
    [
        ("insufficient_funds", "CALL_REJECTED"),
        ("suspended", "CALL_REJECTED"),
        ("blocked", "OUTGOING_CALL_BARRED"),
        ("closed", "OUTGOING_CALL_BARRED"),
        ("invalid_number", "INVALID_NUMBER_FORMAT"),
        ("no_route", "NO_ROUTE_DESTINATION"),
        ("no_rate", "NO_ROUTE_DESTINATION"),
        ("unavailable", "NORMAL_TEMPORARY_FAILURE"),
        ("something_new", "CALL_REJECTED"),
    ],
)
def test_freeswitch_denials_hang_up_with_the_mapped_cause(reason, cause):
    _, document = freeswitch(denied(reason))
    assert document.find("section").get("name") == "dialplan"
    assert actions(document) == [("hangup", cause)]


def test_every_value_is_xml_escaped_and_the_callee_is_a_literal_pattern():
    hostile_call_id = "x<y>\"z'@h"  # RFC 3261 word characters: < > " ' are allowed
    body, document = freeswitch(ALLOWED, callee="+44*20", call_id=hostile_call_id, context='a<"&')
    assert 'name="tollgate x&lt;y&gt;&quot;z\'@h"' in body
    assert 'name="a&lt;&quot;&amp;"' in body
    assert document.find("section/context").get("name") == 'a<"&'
    assert document.find("section/context/extension").get("name") == f"tollgate {hostile_call_id}"
    assert document.find(".//condition").get("expression") == r"^\+44\*20$"
    # A callee or call id that could reach FreeSWITCH's variable expansion or dial strings
    # is refused, naming the field.
    for callee in ("${system(id)}", "44|sofia/gateway/x/1", "44,user/1", "", "4" * 65):
        with pytest.raises(BodyError) as error:
            freeswitch(ALLOWED, callee=callee)
        assert error.value.field == "callee"
    for call_id in ("${x}", "a b", "a&b", ""):
        with pytest.raises(BodyError) as error:
            freeswitch(ALLOWED, call_id=call_id)
        assert error.value.field == "call_id"


def test_bad_dialects_options_and_decisions_are_the_callers_bug():
    with pytest.raises(ValueError, match="dialect"):
        render(ALLOWED, "opensips", callee=CALLEE, call_id=CALL_ID)
    with pytest.raises(ValueError, match="unknown option"):
        render(ALLOWED, "kamailio", callee=CALLEE, call_id=CALL_ID, options={"ctx": "x"})
    with pytest.raises(ValueError, match="leg_timeout"):
        render(ALLOWED, "freeswitch", callee=CALLEE, call_id=CALL_ID, options={"leg_timeout": 0})
    with pytest.raises(ValueError, match="max_duration_seconds"):
        render({**ALLOWED, "max_duration_seconds": 0}, "kamailio", callee=CALLEE, call_id=CALL_ID)


# --- fail-open / fail-closed ---------------------------------------------------------------


def test_degraded_open_allows_for_the_configured_time_without_a_hold():
    decision = degraded("open", "store_unreachable", max_duration_seconds=900)
    assert decision == {
        "allow": True,
        "reason": "fallback_open",
        "max_duration_seconds": 900,
        "hold_amount": "0.000000",
        "routes": [],
        "degraded": "store_unreachable",
    }
    with_routes = degraded("open", "timeout", routes=ALLOWED["routes"][:1])
    assert with_routes["max_duration_seconds"] == 600  # the default cap
    _, document = freeswitch(with_routes)
    assert actions(document)[0] == ("set", "execute_on_answer=sched_hangup +600 alloted_timeout")
    assert dict(actions(document))["bridge"] == "[leg_timeout=60]sofia/gateway/vendorA/442071234567"


def test_degraded_closed_denies_unavailable_503():
    decision = degraded("closed", "timeout")
    assert decision == {
        "allow": False,
        "reason": "unavailable",
        "max_duration_seconds": 0,
        "hold_amount": "0.000000",
        "routes": [],
        "degraded": "timeout",
    }
    assert (kamailio(decision)["sip_code"], kamailio(decision)["sip_reason"]) == (
        503,
        "Service unavailable",
    )
    assert actions(freeswitch(decision)[1]) == [("hangup", "NORMAL_TEMPORARY_FAILURE")]
    with pytest.raises(ValueError, match="open, closed"):
        degraded("maybe", "timeout")
    with pytest.raises(ValueError, match="from 1 to 14400"):
        degraded("open", "timeout", max_duration_seconds=0)


def test_every_listed_denial_maps_to_a_4xx_or_5xx_and_a_cause():
    for reason, answer in DENIALS.items():
        assert denial(reason) == answer and 400 <= answer.sip_code < 600
        assert answer.cause.isupper()
    assert denial("INSUFFICIENT_FUNDS") == DENIALS["insufficient_funds"]


# --- FreeSWITCH's request ------------------------------------------------------------------


def test_xml_curl_fields_become_the_start_request():
    fields = {
        "section": "dialplan",
        "Hunt-Context": "public",
        "Unique-ID": "0b1c8f3e-5c3e-4b43-9a0a-51b1c1e2f3a4",
        "Caller-Caller-ID-Number": "15551230000",
        "Caller-Destination-Number": "442071234567",
        "Caller-Network-Addr": "203.0.113.9",
        "Event-Date-Timestamp": "1733372750123456",
        "variable_accountcode": "CUST_A1",
        "variable_sip_from_host": "pbx.customer.example",
    }
    assert parse_freeswitch_form(fields) == {
        "event": "start",
        "call_id": "0b1c8f3e-5c3e-4b43-9a0a-51b1c1e2f3a4",
        "caller": "15551230000",
        "callee": "442071234567",
        "account": "CUST_A1",
        "trunk": "pbx.customer.example",
        "ip": "203.0.113.9",
        "time": "2024-12-05T04:25:50.123456Z",
    }
    # Fallbacks: the SIP From user, the gateway the call matched; no account, no IP.
    sparse = {
        "Unique-ID": "u-1",
        "Caller-Destination-Number": "4420",
        "variable_sip_from_user": "1001",
        "variable_sip_gateway": "cust-gw",
        "variable_sip_from_host": "ignored.example",
        "Event-Date-Timestamp": "1733372750000000",
    }
    assert parse_freeswitch_form(sparse) == {
        "event": "start",
        "call_id": "u-1",
        "caller": "1001",
        "callee": "4420",
        "trunk": "cust-gw",
        "time": "2024-12-05T04:25:50.000000Z",
    }


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"section": "directory", "Unique-ID": "u", "Caller-Destination-Number": "1"}, "section"),
        ({"Caller-Destination-Number": "1"}, "Unique-ID"),
        ({"Unique-ID": "u"}, "Caller-Destination-Number"),
        ({"Unique-ID": "u", "Caller-Destination-Number": "1${x}"}, "callee"),
        (
            {"Unique-ID": "u", "Caller-Destination-Number": "1", "Event-Date-Timestamp": "1.5"},
            "Event-Date-Timestamp",
        ),
    ],
)
def test_a_form_without_what_authz_needs_names_the_field(fields, field):
    with pytest.raises(BodyError) as error:
        parse_freeswitch_form(fields)
    assert error.value.field == field
