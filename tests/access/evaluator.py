"""A small IAM policy evaluator: AWS's documented logic, for what Tollgate's policies use.

moto enforces identity policies on S3 object keys faithfully enough to test them there, but
not conditions, resource policies, trust principals or Athena and Glue resources. This
evaluator covers those, within one account:

- an explicit Deny in any policy that applies wins;
- else an Allow in an identity policy, or in a resource policy that names the principal
  itself, allows; a resource policy naming the account (`...:root`) only delegates to the
  account's IAM policies, so the principal's own identity policy must allow too;
- else the request is implicitly denied.
AssumeRole is stricter: the role's trust policy must allow the principal and the action
(sts:TagSession included), whatever the caller's own policies say.

Matching: actions case-insensitively, with `*` and `?`; resources and ARN conditions per ARN
part (a wildcard never crosses the first five colons); policy variables `${key}` from the
request context, a statement whose variable has no value not applying. Conditions:
String(Not)Equals, String(Not)Like, Arn(Not)Like, Arn(Not)Equals, Bool, Null; a missing key
fails a positive operator and satisfies a negated one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

ALLOW, DENY, IMPLICIT = "allow", "explicit deny", "implicit deny"


@dataclass(frozen=True)
class Request:
    principal: str  # aws:PrincipalArn: a user's ARN, or the role's ARN for a role session
    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)  # s3:prefix, aws:SecureTransport

    def value(self, key: str) -> str | None:
        if key.lower() == "aws:principalarn":
            return self.principal
        return {k.lower(): v for k, v in self.context.items()}.get(key.lower())

    @property
    def account(self) -> str:
        return self.principal.split(":")[4]


class _Unresolved(Exception):
    """A policy variable with no value in the request: the statement does not apply."""


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _substitute(pattern: str, request: Request) -> str:
    def one(match: re.Match[str]) -> str:
        key = match.group(1)
        if key in ("*", "?", "$"):
            return key
        found = request.value(key)
        if found is None:
            raise _Unresolved(key)
        return found

    return re.sub(r"\$\{([^}]+)\}", one, pattern)


def _glob(pattern: str, text: str, *, fold: bool = False) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.IGNORECASE | re.DOTALL if fold else re.DOTALL) is not None


def _arn_like(pattern: str, arn: str) -> bool:
    if pattern == "*":
        return True
    wanted, actual = pattern.split(":", 5), arn.split(":", 5)
    return len(wanted) == len(actual) == 6 and all(
        _glob(w, a) for w, a in zip(wanted, actual, strict=True)
    )


def _condition(operator: str, key: str, values: list[str], request: Request) -> bool:
    actual = request.value(key)
    wanted = [_substitute(str(v), request) for v in values]
    negated = "Not" in operator
    if operator == "Null":
        return (actual is None) == (wanted[0].lower() == "true")
    if actual is None:
        return negated
    if operator in ("StringEquals", "StringNotEquals"):
        hit = actual in wanted
    elif operator in ("StringLike", "StringNotLike"):
        hit = any(_glob(w, actual) for w in wanted)
    elif operator in ("ArnLike", "ArnNotLike", "ArnEquals", "ArnNotEquals"):
        hit = any(_arn_like(w, actual) for w in wanted)
    elif operator == "Bool":
        hit = actual.lower() in [w.lower() for w in wanted]
    else:
        raise NotImplementedError(f"condition operator {operator}")
    return hit != negated


def _principal(statement: Mapping[str, Any], request: Request) -> str | None:
    """'self' (names the principal), 'account' (delegates to its IAM), or None."""
    if "Principal" not in statement:
        return "self"  # an identity policy: attached to the principal
    principal = statement["Principal"]
    if principal == "*":
        return "self"
    for name in _as_list(principal.get("AWS", [])):
        if name == "*" or name == request.principal:
            return "self"
        if name in (request.account, f"arn:aws:iam::{request.account}:root"):
            return "account"
    return None


def _applies(statement: Mapping[str, Any], request: Request) -> bool:
    try:
        if "Action" in statement:
            action = any(_glob(a, request.action, fold=True) for a in _as_list(statement["Action"]))
        else:
            action = not any(
                _glob(a, request.action, fold=True) for a in _as_list(statement["NotAction"])
            )
        if not action:
            return False
        if "Resource" in statement:
            resource = any(
                _arn_like(_substitute(r, request), request.resource)
                for r in _as_list(statement["Resource"])
            )
        elif "NotResource" in statement:
            resource = not any(
                _arn_like(_substitute(r, request), request.resource)
                for r in _as_list(statement["NotResource"])
            )
        else:
            resource = True  # a trust policy: the role itself
        if not resource:
            return False
        return all(
            _condition(operator, key, _as_list(values), request)
            for operator, keys in statement.get("Condition", {}).items()
            for key, values in keys.items()
        )
    except _Unresolved:
        return False


def _verdicts(policy: Mapping[str, Any], request: Request) -> Iterable[tuple[str, str | None]]:
    """(effect, how the principal is named) of each statement that applies."""
    for statement in _as_list(policy["Statement"]):
        named = _principal(statement, request)
        if named is not None and _applies(statement, request):
            yield statement["Effect"], named


def decide(
    request: Request,
    identity: Iterable[Mapping[str, Any]] = (),
    resource_policy: Mapping[str, Any] | None = None,
) -> str:
    """ALLOW, DENY or IMPLICIT for a request within one account."""
    identity_verdicts = [v for policy in identity for v in _verdicts(policy, request)]
    resource_verdicts = list(_verdicts(resource_policy, request)) if resource_policy else []
    if any(effect == "Deny" for effect, _ in (*identity_verdicts, *resource_verdicts)):
        return DENY
    if any(effect == "Allow" for effect, _ in identity_verdicts):
        return ALLOW
    if any(effect == "Allow" and named == "self" for effect, named in resource_verdicts):
        return ALLOW
    return IMPLICIT


def decide_assume(
    request: Request, trust: Mapping[str, Any], identity: Iterable[Mapping[str, Any]] = ()
) -> str:
    """AssumeRole (or TagSession): the trust policy must allow, whatever the caller holds."""
    identity = list(identity)
    trusted = list(_verdicts(trust, request))
    if any(effect == "Deny" for effect, _ in trusted) or decide(request, identity) == DENY:
        return DENY
    if any(effect == "Allow" and named == "self" for effect, named in trusted):
        return ALLOW
    if any(effect == "Allow" for effect, _ in trusted) and decide(request, identity) == ALLOW:
        return ALLOW
    return IMPLICIT
