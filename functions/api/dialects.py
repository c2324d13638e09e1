"""The authorization answer in each switch's own dialect (plain Python, no AWS).

`POST /v1/authz` decides once, in one generic shape (`{"allow", "reason",
"max_duration_seconds", "hold_amount", "routes"}`); `render` writes that decision as the
asking switch reads it:

- `json`: the decision as is, for everything else.
- `kamailio`: for `http_async_client`: `allow`, `reason`, `max_duration` (seconds, for
  `dlg_set_timeout`; never -1, every allowed call has a cap, 0 when denied), `sip_code` and
  `sip_reason` when denied, and `rtjson`, the route document of the `rtjson` module
  (src/modules/rtjson/rtjson_routing.c: `routing` "serial"|"parallel", a non-empty
  `routes[]`, per route `uri`, `dst_uri`, `fr_timer`/`fr_inv_timer` in ms and
  `headers.extra` as raw `\\r\\n`-ended lines, applied by `rtjson_update_branch`; unknown keys
  are ignored, so our own keys ride along). rtjson requires a non-empty `routes` list: with
  no route to give, `rtjson` is absent.
- `freeswitch`: a `mod_xml_curl` dialplan document (section `dialplan`, one extension whose
  condition matches the callee): `execute_on_answer=sched_hangup +N alloted_timeout` (N = the
  max duration), `continue_on_fail`, `hangup_after_bridge`, `originate_continue_on_timeout`
  (a leg that times out fails over instead of ending the bridge), one `bridge` over the
  routes in order (`|` = sequential failover, `[leg_timeout=T]` per leg), then
  `hangup ${originate_disposition}` (the last supplier's cause, set by switch_ivr_originate,
  reaches the caller when every route failed). Denied: `hangup` with the cause of DENIALS.
  Allowed without a route (fail-open with nothing cached): the `result status="not found"`
  document, so FreeSWITCH falls through to its static dialplan.

A value only reaches a switch's configuration language after a whitelist check: FreeSWITCH
expands `${...}` in action data and splits dial strings on `|`, `,`, `[`, `{`; Kamailio
copies `headers.extra` into the INVITE. The callee and call id come from the request (a
bad one is a BodyError naming it); a route whose host, port, transport, prefix or gateway
fails its check is left out (logged), never passed on. The XML is built by ElementTree,
which escapes every attribute.

When the platform cannot decide in time (store unreachable or slow), `degraded` gives the
tenant's fallback decision: open (allow, a short cap, no hold) or closed (deny
`unavailable`: 503 for Kamailio, NORMAL_TEMPORARY_FAILURE for FreeSWITCH). The switches' own
timeouts cover an unreachable API: see docs/authorization.md.

Sources (read for the shapes): kamailio/kamailio src/modules/rtjson/rtjson_routing.c and
README; src/modules/http_async_client/README; src/modules/dialog (dlg_set_timeout).
signalwire/freeswitch src/mod/xml_int/mod_xml_curl (binding, posted fields),
src/switch_ivr_originate.c (leg_timeout, leg_progress_timeout per leg,
originate_disposition), src/switch_channel.c (REQUEST_PARAMS events carry `variable_*`);
the FreeSWITCH channel-variable catalog (continue_on_fail, hangup_after_bridge,
originate_continue_on_timeout, execute_on_answer); iNextrix/ASTPP astpp.xml.lua (the same
document shape); RFC 3398 (Q.850 cause -> SIP status); /work/shared/reference/realtime.md §2.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from functions.api.requests import BodyError

logger = logging.getLogger(__name__)

DIALECTS = ("json", "kamailio", "freeswitch")
CONTENT_TYPES = {
    "json": "application/json",
    "kamailio": "application/json",
    "freeswitch": "text/xml",
}

# --- denials: reason -> what each switch says --------------------------------------------


@dataclass(frozen=True, slots=True)
class Denial:
    sip_code: int  # Kamailio's send_reply
    sip_reason: str
    cause: str  # FreeSWITCH hangup cause (Q.850 name); its SIP status per RFC 3398


_FUNDS = Denial(403, "Insufficient credit", "CALL_REJECTED")  # Q.850 21 -> 403
_SUSPENDED = Denial(403, "Account suspended", "CALL_REJECTED")  # 21 -> 403
_BARRED = Denial(403, "Destination blocked", "OUTGOING_CALL_BARRED")  # 52 -> 403
_INVALID = Denial(484, "Invalid number", "INVALID_NUMBER_FORMAT")  # 28 -> 484
_NO_ROUTE = Denial(404, "No route", "NO_ROUTE_DESTINATION")  # 3 -> 404
_UNKNOWN_ACCOUNT = Denial(403, "Unknown account", "CALL_REJECTED")
_UNAVAILABLE = Denial(503, "Service unavailable", "NORMAL_TEMPORARY_FAILURE")  # 41 -> 503
_OTHER = Denial(403, "Forbidden", "CALL_REJECTED")  # any reason not listed

# The deny reasons of POST /v1/authz (and their likely spellings) -> the switches' answers.
DENIALS: dict[str, Denial] = {
    "insufficient_funds": _FUNDS,
    "insufficient_credit": _FUNDS,
    "no_credit": _FUNDS,
    "suspended": _SUSPENDED,
    "account_suspended": _SUSPENDED,
    "blocked": _BARRED,
    "destination_blocked": _BARRED,
    "closed": _BARRED,
    "destination_closed": _BARRED,
    "invalid_number": _INVALID,
    "no_route": _NO_ROUTE,
    "no_routes": _NO_ROUTE,
    "no_rate": _NO_ROUTE,
    "no_margin": _NO_ROUTE,
    "unknown_account": _UNKNOWN_ACCOUNT,
    "unavailable": _UNAVAILABLE,
}


def denial(reason: str) -> Denial:
    """The switches' answer to a deny `reason` (403 / CALL_REJECTED if not listed)."""
    return DENIALS.get(str(reason).lower(), _OTHER)


# --- fail-open / fail-closed ---------------------------------------------------------------

FALLBACK_MODES = ("open", "closed")
DEFAULT_FALLBACK = "closed"
DEFAULT_FALLBACK_SECONDS = 600  # fail-open cap: 10 min of unchecked credit per call
MAX_FALLBACK_SECONDS = 14_400


def check_fallback(mode: str) -> str:
    if mode not in FALLBACK_MODES:
        raise ValueError(f"authz fallback must be one of {', '.join(FALLBACK_MODES)}, not {mode!r}")
    return mode


def check_fallback_seconds(seconds: int) -> int:
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int)
        or not 1 <= seconds <= MAX_FALLBACK_SECONDS
    ):
        raise ValueError(
            f"authz fallback seconds must be a whole number from 1 to {MAX_FALLBACK_SECONDS},"
            f" not {seconds!r}"
        )
    return seconds


def degraded(
    decision_mode: str,
    reason: str,
    *,
    max_duration_seconds: int = DEFAULT_FALLBACK_SECONDS,
    routes: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The decision when the platform cannot decide in time (`reason`: why, e.g. "timeout",
    "store_unreachable"), by the tenant's setting.

    open: allow for at most `max_duration_seconds`, hold nothing (no balance was read),
    with `routes` if the caller still has some (e.g. from decks in memory), else none (the
    switch routes statically). closed: deny with reason `unavailable`.
    """
    check_fallback(decision_mode)
    if decision_mode == "open":
        return {
            "allow": True,
            "reason": "fallback_open",
            "max_duration_seconds": check_fallback_seconds(max_duration_seconds),
            "hold_amount": "0.000000",
            "routes": [dict(r) for r in routes],
            "degraded": str(reason),
        }
    return {
        "allow": False,
        "reason": "unavailable",
        "max_duration_seconds": 0,
        "hold_amount": "0.000000",
        "routes": [],
        "degraded": str(reason),
    }


# --- checks of what reaches a switch -------------------------------------------------------

# A dialled number: digits, letters (some carriers route on them), * # . - _, one leading +.
_CALLEE = re.compile(r"\+?[0-9A-Za-z*#._-]{1,64}")
# RFC 3261 `word` characters (a Call-ID is word ["@" word]): no $, no whitespace, no &.
_CALL_ID = re.compile(r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}@]{1,256}")
_PREFIX = re.compile(r"[0-9A-Za-z*#+]{0,32}")
_GATEWAY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")
_SUPPLIER = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_TOKEN = re.compile(r"[A-Za-z0-9._-]{1,64}")
TRANSPORTS = ("udp", "tcp", "tls")


def check_callee(callee: str) -> str:
    if not isinstance(callee, str) or not _CALLEE.fullmatch(callee):
        raise BodyError("callee", f"callee must be a dialled number, not {callee!r}")
    return callee


def check_call_id(call_id: str) -> str:
    if not isinstance(call_id, str) or not _CALL_ID.fullmatch(call_id):
        raise BodyError("call_id", "call_id must be a SIP Call-ID (RFC 3261 word characters, @)")
    return call_id


class _Unsafe(ValueError):
    pass


def _host(value: Any) -> str:
    """A host for a SIP URI: a name, an IPv4 address or a bracketed IPv6 address."""
    text = str(value or "")
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        if _HOSTNAME.fullmatch(text):
            return text
        raise _Unsafe(f"host {text!r}") from None
    return f"[{address}]" if address.version == 6 else str(address)


def _port(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise _Unsafe(f"port {value!r}")
    return value


def _transport(value: Any) -> str:
    text = "udp" if value is None else str(value).lower()
    if text not in TRANSPORTS:
        raise _Unsafe(f"transport {value!r}")
    return text


def _prefix(value: Any) -> str:
    text = "" if value is None else str(value)
    if not _PREFIX.fullmatch(text):
        raise _Unsafe(f"prefix {text!r}")
    return text


def _gateway(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not _GATEWAY.fullmatch(str(value)):
        raise _Unsafe(f"gateway {value!r}")
    return str(value)


def _max_duration(decision: Mapping[str, Any]) -> int:
    seconds = decision.get("max_duration_seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds <= 0:
        raise ValueError(f"an allowed call needs a positive max_duration_seconds, not {seconds!r}")
    return seconds


def _seconds_option(options: Mapping[str, Any], name: str, default: int | None) -> int | None:
    value = options.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 3600:
        raise ValueError(f"option {name} must be whole seconds from 1 to 3600, not {value!r}")
    return value


def _token_option(options: Mapping[str, Any], name: str, default: str) -> str:
    value = options.get(name, default)
    if not isinstance(value, str) or not value or any(c in value for c in "\r\n"):
        raise ValueError(f"option {name} must be a one-line string, not {value!r}")
    return value


# --- render ----------------------------------------------------------------------------------

OPTIONS = {
    "context": "FreeSWITCH: the dialplan context the document answers (default public)",
    "profile": "FreeSWITCH: the sofia profile of routes without a gateway (default external)",
    "leg_timeout": "seconds a leg may ring before the next route: FreeSWITCH leg_timeout, "
    "Kamailio fr_inv_timer (ms); default 60",
    "progress_timeout": "seconds to wait for a first reply / progress before the next route: "
    "FreeSWITCH leg_progress_timeout, Kamailio fr_timer (ms); default none",
    "header": "Kamailio: the header naming the route's supplier (default X-Tollgate-Route)",
}


def render(
    decision: Mapping[str, Any],
    dialect: str,
    *,
    callee: str,
    call_id: str,
    options: Mapping[str, Any] | None = None,
) -> tuple[str, str]:
    """(content type, body) of `decision` in `dialect` (one of DIALECTS); `options` as OPTIONS.

    BodyError names a callee or call id that cannot be passed on; ValueError a dialect,
    option or allowed decision that makes no sense (a bug of the caller, not of the request).
    """
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}, not {dialect!r}")
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}: use {', '.join(OPTIONS)}")
    if dialect == "json":
        return CONTENT_TYPES[dialect], json.dumps(dict(decision), separators=(",", ":"))
    callee, call_id = check_callee(callee), check_call_id(call_id)
    if dialect == "kamailio":
        body = _kamailio(decision, callee, call_id, options)
        return CONTENT_TYPES[dialect], json.dumps(body, separators=(",", ":"))
    return CONTENT_TYPES[dialect], _freeswitch(decision, callee, call_id, options)


def _safe_routes(
    decision: Mapping[str, Any], call_id: str, build: Any
) -> list[tuple[Mapping[str, Any], Any]]:
    """(route, built) for each route `build` accepts, in order; the others logged, dropped."""
    out = []
    for index, route in enumerate(decision.get("routes") or []):
        try:
            out.append((route, build(route)))
        except _Unsafe as error:
            logger.warning(
                "authz route left out: unsafe %s",
                error,
                extra={"call_id": call_id, "route": index, "supplier": route.get("supplier")},
            )
    return out


# --- Kamailio ----------------------------------------------------------------------------


def _uri(user: str, host: str, port: int | None, transport: str) -> str:
    user = user.replace("#", "%23")  # `#` is not allowed unescaped in a SIP URI's user part
    where = host if port is None else f"{host}:{port}"
    at = f"{user}@{where}" if user else where
    return f"sip:{at}" + ("" if transport == "udp" else f";transport={transport}")


def _kamailio(
    decision: Mapping[str, Any], callee: str, call_id: str, options: Mapping[str, Any]
) -> dict[str, Any]:
    reason = str(decision.get("reason", ""))
    if not decision.get("allow"):
        answer = denial(reason)
        return {
            "allow": False,
            "reason": reason,
            "max_duration": 0,
            "sip_code": answer.sip_code,
            "sip_reason": answer.sip_reason,
        }
    leg = _seconds_option(options, "leg_timeout", 60)
    progress = _seconds_option(options, "progress_timeout", None)
    header = _token_option(options, "header", "X-Tollgate-Route")
    if not _TOKEN.fullmatch(header):
        raise ValueError(f"option header must be a header name, not {header!r}")

    def build(route: Mapping[str, Any]) -> dict[str, Any]:
        host, port = _host(route.get("host")), _port(route.get("port"))
        transport = _transport(route.get("transport"))
        entry: dict[str, Any] = {
            "uri": _uri(_prefix(route.get("prefix")) + callee, host, port, transport),
            "dst_uri": _uri("", host, port, transport),
        }
        if progress is not None:
            entry["fr_timer"] = progress * 1000
        if leg is not None:
            entry["fr_inv_timer"] = leg * 1000
        supplier = route.get("supplier")
        if isinstance(supplier, str) and _SUPPLIER.fullmatch(supplier):
            entry["headers"] = {"extra": f"{header}: {supplier}\r\n"}
        return entry

    body: dict[str, Any] = {
        "allow": True,
        "reason": reason,
        "max_duration": _max_duration(decision),
    }
    routes = [built for _, built in _safe_routes(decision, call_id, build)]
    if routes:
        body["rtjson"] = {"version": "1.0", "routing": "serial", "routes": routes}
    return body


# --- FreeSWITCH --------------------------------------------------------------------------


def _document() -> ET.Element:
    return ET.Element("document", {"type": "freeswitch/xml"})


def _not_found() -> str:
    document = _document()
    section = ET.SubElement(document, "section", {"name": "result"})
    ET.SubElement(section, "result", {"status": "not found"})
    return ET.tostring(document, encoding="unicode")


def _freeswitch(
    decision: Mapping[str, Any], callee: str, call_id: str, options: Mapping[str, Any]
) -> str:
    context = _token_option(options, "context", "public")
    profile = _token_option(options, "profile", "external")
    if not _TOKEN.fullmatch(profile):
        raise ValueError(f"option profile must be a sofia profile name, not {profile!r}")
    leg = _seconds_option(options, "leg_timeout", 60)
    progress = _seconds_option(options, "progress_timeout", None)
    actions: list[tuple[str, str]]
    if decision.get("allow"):
        seconds = _max_duration(decision)

        def build(route: Mapping[str, Any]) -> str:
            number = _prefix(route.get("prefix")) + callee
            gateway = _gateway(route.get("gateway"))
            if gateway is not None:
                target = f"sofia/gateway/{gateway}/{number}"
            else:
                host, port = _host(route.get("host")), _port(route.get("port"))
                transport = _transport(route.get("transport"))
                where = host if port is None else f"{host}:{port}"
                suffix = "" if transport == "udp" else f";transport={transport}"
                target = f"sofia/{profile}/{number}@{where}{suffix}"
            leg_vars = [f"leg_timeout={leg}"] if leg is not None else []
            if progress is not None:
                leg_vars.append(f"leg_progress_timeout={progress}")
            return (f"[{','.join(leg_vars)}]" if leg_vars else "") + target

        legs = [built for _, built in _safe_routes(decision, call_id, build)]
        if not legs:
            return _not_found()
        actions = [
            ("set", f"execute_on_answer=sched_hangup +{seconds} alloted_timeout"),
            ("set", "continue_on_fail=true"),
            ("set", "hangup_after_bridge=true"),
            ("set", "originate_continue_on_timeout=true"),
            ("bridge", "|".join(legs)),
            ("hangup", "${originate_disposition}"),
        ]
    else:
        actions = [("hangup", denial(str(decision.get("reason", ""))).cause)]
    document = _document()
    section = ET.SubElement(document, "section", {"name": "dialplan"})
    where = ET.SubElement(section, "context", {"name": context})
    extension = ET.SubElement(where, "extension", {"name": f"tollgate {call_id}"})
    condition = ET.SubElement(
        extension,
        "condition",
        {"field": "destination_number", "expression": f"^{re.escape(callee)}$"},
    )
    for application, data in actions:
        ET.SubElement(condition, "action", {"application": application, "data": data})
    return ET.tostring(document, encoding="unicode")


# --- FreeSWITCH's request: xml_curl's POSTed fields -> the authz request body -------------


def _first(fields: Mapping[str, str], names: Sequence[str]) -> str | None:
    for name in names:
        value = fields.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

FORM_FIELDS: dict[str, tuple[str, ...]] = {
    # The CDR's call id is the A-leg's uuid (functions.ingest.formats.freeswitch): the same.
    "call_id": ("Unique-ID", "Channel-Call-UUID", "variable_uuid"),
    "caller": ("Caller-Caller-ID-Number", "variable_sip_from_user"),
    "callee": ("Caller-Destination-Number", "Hunt-Destination-Number", "variable_sip_req_user"),
    "account": ("variable_tollgate_account", "variable_accountcode"),
    # Trunks as for CDRs: the gateway an inbound call matched, else the From host; the IP.
    "trunk": ("variable_sip_gateway", "variable_sip_from_host"),
    "ip": ("Caller-Network-Addr", "variable_sip_network_ip"),
}


def parse_freeswitch_form(fields: Mapping[str, str]) -> dict[str, Any]:
    """The `start` authz request of a mod_xml_curl dialplan lookup (its form fields, decoded).

    `{"event": "start", "call_id", "caller", "callee", "time", "account"?, "trunk"?, "ip"?}`;
    `time` is the event's `Event-Date-Timestamp` (microseconds since the epoch) as ISO 8601
    UTC. BodyError names the form field at fault: a lookup of another section, no call id,
    no destination or a bad timestamp.
    """
    section = fields.get("section")
    if section is not None and section != "dialplan":
        raise BodyError("section", f"only dialplan lookups are authorized, not {section!r}")
    body: dict[str, Any] = {"event": "start"}
    for name, sources in FORM_FIELDS.items():
        value = _first(fields, sources)
        if value is None:
            if name in ("call_id", "callee"):
                raise BodyError(sources[0], f"{sources[0]!r} is required")
            if name == "caller":
                value = ""
            else:
                continue
        body[name] = value
    check_callee(body["callee"])
    stamp = fields.get("Event-Date-Timestamp")
    if stamp is None:
        at = dt.datetime.now(dt.UTC)
    else:
        if not re.fullmatch(r"[0-9]{1,17}", stamp):
            raise BodyError("Event-Date-Timestamp", "must be microseconds since the epoch")
        at = _EPOCH + dt.timedelta(microseconds=int(stamp))
    body["time"] = at.isoformat(timespec="microseconds").replace("+00:00", "Z")
    return body
