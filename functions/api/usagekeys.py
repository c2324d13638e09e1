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

A header that is no bearer token of ours is denied (API Gateway: ACCESS_DENIED); a missing one
never reaches the authorizer (UNAUTHORIZED). GATEWAY_RESPONSES gives each of API Gateway's own
refusals the API's error shape, `{"code", "message"}` with the codes serve() uses; the
template's GatewayResponses are made from it (tests/infra check them equal) and the local
gateway answers the same (functions.local.gateway).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from functions.api.keys import KeyFormatError, parse
from functions.api.signin import TokenFormatError, parse_session

BEARER = re.compile(r"Bearer +(\S+) *", re.IGNORECASE)
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


@dataclass(frozen=True, slots=True)
class Decision:
    principal: str  # the key or session id; "anonymous" when denied
    usage_key: str | None  # None: denied


def decide(header: object) -> Decision:
    """What the authorizer answers for an Authorization header's value (never a store read)."""
    found = BEARER.fullmatch(header) if isinstance(header, str) else None
    if found is not None:
        try:
            usage_key = usage_key_of(found.group(1))
        except ValueError:
            pass
        else:
            return Decision(usage_key[3:19], usage_key)
    return Decision("anonymous", None)


def policy(decision: Decision, method_arn: str) -> dict[str, Any]:
    """The authorizer's answer: Allow (or Deny) every route of the API's stage, as API Gateway
    caches one answer per token for all routes; with the usage key when allowed."""
    api_and_stage = "/".join(method_arn.split("/")[:2])  # arn:...:execute-api:...:{api}/{stage}
    effect = "Allow" if decision.usage_key is not None else "Deny"
    answer: dict[str, Any] = {
        "principalId": decision.principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Action": "execute-api:Invoke",
                    "Effect": effect,
                    "Resource": [f"{api_and_stage}/*"],
                }
            ],
        },
        "context": {},
    }
    if decision.usage_key is not None:
        answer["usageIdentifierKey"] = decision.usage_key
    return answer
