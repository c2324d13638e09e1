"""Per-key request limits in API Gateway: the usage key a request's token names, and the answers
API Gateway gives itself (plain Python, stdlib only).

API Gateway limits each key through a usage plan (infra/package.yaml: UsagePlan): a request
counts against the API Gateway API key whose value the Lambda authorizer returns as
`usageIdentifierKey` (the API's ApiKeySourceType is AUTHORIZER). The authorizer
(app.py `usage_key`) reads no store: API Gateway caches its answer by token, and the handler
still authenticates every request in full (functions.api.handler.serve: the secret, the
revocation, the IP allow-list). So the usage key must follow from the token alone:

    tg_{key_id}_{secret}   -> tgk{key_id}{32 hex digits}
    tgs_{session}_{secret} -> tgs{session}{32 hex digits}

The 32 hex digits are a SHA-256 of the whole token (domain-separated: never the stored digest
of the secret), so a token with a forged secret names no API Gateway key and API Gateway
refuses it (INVALID_API_KEY) before the function runs: nobody spends another key's limit by
knowing its id. The API Gateway key is made with this value when the Tollgate key is created
(functions.store.gateway), disabled when it is revoked; the secret never leaves Tollgate.

HTTP Basic, for the one route whose client cannot send a bearer header: FreeSWITCH's
mod_xml_curl (`gateway-credentials` "user:password", `auth-scheme` basic) posts its dialplan
lookups to POST /v1/authz/freeswitch as `Authorization: Basic base64(<key id>:<key>)`. The
password is the API key as handed out, so its usage key is the bearer header's (the same
usage plan counts both). The user must be the key's id: the id is in the key already, so
this asks nothing new, but a key pasted under another key's user (two switches' configs
mixed up) is refused at once instead of authenticating as a switch nobody meant, and the
switch's own log (which prints the user, never the password) names the key in use.

Basic is taken on BASIC_ROUTES only (tighter than everywhere: a Basic header is what browsers
cache and resend, and no other route has a client that needs it). The authorizer does not
branch on the methodArn for that: API Gateway caches its answer by token for every route, so
an answer must hold wherever the token comes. A Basic token is Allowed with a policy whose
Resource lists the Basic routes alone; on any other route API Gateway itself refuses the
cached policy (ACCESS_DENIED: 401 malformed_key). serve() applies the same rule.

A header that is no bearer token of ours (nor Basic as above) is denied (API Gateway:
ACCESS_DENIED); a missing one never reaches the authorizer (UNAUTHORIZED). GATEWAY_RESPONSES
gives each of API Gateway's own refusals the API's error shape, `{"code", "message"}` with the
codes serve() uses; the template's GatewayResponses are made from it (tests/infra check them
equal) and the local gateway answers the same (functions.local.gateway). Those are per API,
not per route: a refusal API Gateway answers on the Basic route challenges for Bearer too.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from functions.api.keys import KeyFormatError, parse
from functions.api.signin import TokenFormatError, parse_session

BEARER = re.compile(r"Bearer +(\S+) *", re.IGNORECASE)
BASIC = re.compile(r"Basic +(\S+) *", re.IGNORECASE)
# (method, path) of the routes that take HTTP Basic, and the realm their 401s name.
BASIC_ROUTES = (("POST", "/v1/authz/freeswitch"),)
BASIC_REALM = "tollgate-freeswitch"
BASIC_CHALLENGE = f'Basic realm="{BASIC_REALM}", charset="UTF-8"'
SEND_BASIC = (
    "send the API key as HTTP Basic: user <key id>, password the key tg_<key id>_<secret> "
    '(mod_xml_curl: gateway-credentials="<key id>:<key>", auth-scheme basic), '
    "or as Authorization: Bearer <key>"
)
_DOMAIN = b"tollgate usage key\x00"
_HASH_DIGITS = 32
KEY_PREFIX, SESSION_PREFIX = "tgk", "tgs"
# API Gateway takes an API key's value of 20 to 128 characters; ours are 51, letters and digits.
USAGE_KEY = re.compile(r"tg[ks][0-9a-f]{48}")


@dataclass(frozen=True, slots=True)
class GatewayResponse:
    status: int
    code: str
    message: str

    def body(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}

    def headers(self) -> dict[str, str]:
        extra = {"WWW-Authenticate": "Bearer"} if self.status == 401 else {"Retry-After": "1"}
        return {"Content-Type": "application/json", **extra}


_SEND_KEY = "send the API key as Authorization: Bearer <key>"
# API Gateway's response type: what the API answers in its place.
GATEWAY_RESPONSES = {
    # no Authorization header: API Gateway does not call the authorizer
    "UNAUTHORIZED": GatewayResponse(401, "missing_key", _SEND_KEY),
    # the authorizer's Deny: a header that is no bearer token of ours
    "ACCESS_DENIED": GatewayResponse(401, "malformed_key", _SEND_KEY),
    # the usage key matches no enabled API Gateway key: an unknown or wrong secret, a revoked key
    "INVALID_API_KEY": GatewayResponse(401, "unknown_key", "unknown or revoked API key"),
    "THROTTLED": GatewayResponse(
        429, "rate_limited", "too many requests for this key; retry in 1 s"
    ),
    "QUOTA_EXCEEDED": GatewayResponse(429, "rate_limited", "this key's request quota is used up"),
}


def _tag(presented: str) -> str:
    return hashlib.sha256(_DOMAIN + presented.encode()).hexdigest()[:_HASH_DIGITS]


def usage_key_of(presented: str) -> str:
    """The usage key of a key or session token (as handed out, without `Bearer `);
    ValueError for anything else."""
    try:
        key_id, _ = parse(presented)
        return f"{KEY_PREFIX}{key_id}{_tag(presented)}"
    except KeyFormatError:
        pass
    try:
        session_id, _ = parse_session(presented)
    except TokenFormatError:
        raise ValueError("not an API key nor a session token") from None
    return f"{SESSION_PREFIX}{session_id}{_tag(presented)}"


def basic_key(header: str) -> str | None:
    """The API key of an `Authorization: Basic` header (its password), None if the header is
    not Basic; ValueError (a message saying how to send it) for a Basic header that does not
    carry `<key id>:tg_<key id>_<secret>`. Session tokens are for the portal, not Basic."""
    found = BASIC.fullmatch(header)
    if found is None:
        return None
    try:
        text = base64.b64decode(found.group(1), validate=True).decode()
        user, _, password = text.partition(":")
        key_id, _ = parse(password)
    except (ValueError, KeyFormatError):  # binascii.Error, UnicodeDecodeError are ValueErrors
        raise ValueError(SEND_BASIC) from None
    if user != key_id:
        raise ValueError(f"the Basic user must be the key's id ({key_id}), not {user!r}")
    return password


@dataclass(frozen=True, slots=True)
class Decision:
    principal: str  # the key or session id; "anonymous" when denied
    usage_key: str | None  # None: denied
    routes: tuple[tuple[str, str], ...] | None = None  # None: every route of the stage


def decide(header: object) -> Decision:
    """What the authorizer answers for an Authorization header's value (never a store read)."""
    if not isinstance(header, str):
        return Decision("anonymous", None)
    found = BEARER.fullmatch(header)
    try:
        if found is not None:
            usage_key = usage_key_of(found.group(1))
            return Decision(usage_key[3:19], usage_key)
        key = basic_key(header)
        if key is not None:
            usage_key = usage_key_of(key)
            return Decision(usage_key[3:19], usage_key, BASIC_ROUTES)
    except ValueError:
        pass
    return Decision("anonymous", None)


def policy(decision: Decision, method_arn: str) -> dict[str, Any]:
    """The authorizer's answer: Allow (or Deny) every route of the API's stage, as API Gateway
    caches one answer per token for all routes (a Basic token: its routes alone, whatever
    route asked first); with the usage key when allowed."""
    api_and_stage = "/".join(method_arn.split("/")[:2])  # arn:...:execute-api:...:{api}/{stage}
    effect = "Allow" if decision.usage_key is not None else "Deny"
    if decision.routes is None:
        resources = [f"{api_and_stage}/*"]
    else:  # {api}/{stage}/{METHOD}/{path without its leading /}, as in a methodArn
        resources = [f"{api_and_stage}/{method}{path}" for method, path in decision.routes]
    answer: dict[str, Any] = {
        "principalId": decision.principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Action": "execute-api:Invoke",
                    "Effect": effect,
                    "Resource": resources,
                }
            ],
        },
        "context": {},
    }
    if decision.usage_key is not None:
        answer["usageIdentifierKey"] = decision.usage_key
    return answer
