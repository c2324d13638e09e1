"""API keys: their shape, their hash, roles and IP allow-lists (plain Python, stdlib only).

A key is presented as `tg_{key_id}_{secret}`: `key_id` (16 hex digits) names the stored record
and may be shown and logged; `secret` (32 random bytes, URL-safe base64) is shown once, at
creation, and only its SHA-256 is stored. The adapter (functions.store.apikeys) looks a key up
by its id and compares the digests in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from functions.shared.ids import check_name

ROLES = (
    "tenant-admin",  # the carrier: everything of its tenant
    "finance",  # reads money (balances, statements, invoices, payments); changes nothing
    "reseller-admin",  # its own subtree: its account and the customers under it, which it manages
    "customer",  # its own account, nothing else
    "read-only",  # reads, at tenant level (no account) or within an account's subtree
    # a Class 4 switch asking POST /v1/authz (real-time authorization) for any account of its
    # tenant; tenant-wide, yet it reads nothing: every other route answers it 403
    "switch",
)
ACCOUNT_REQUIRED = frozenset({"reseller-admin", "customer"})
ACCOUNT_FORBIDDEN = frozenset({"tenant-admin", "finance", "switch"})  # tenant-wide by definition
# Roles a route must name to be called by them (handler.serve): a switch reads no account data.
NAMED_ONLY = frozenset({"switch"})
KEY_ONLY = frozenset({"switch"})  # a machine's role: no portal user has it
# The account kinds a role's account may be (functions.store.accounts.ACCOUNT_KINDS). A
# supplier gets no key: its account holds the carrier's costs, never shown below the carrier.
ACCOUNT_KINDS_OF = {
    "reseller-admin": ("reseller",),
    "customer": ("customer",),
    "read-only": ("customer", "reseller"),
}

PREFIX = "tg_"
_SECRET_BYTES = 32  # 256 bits: guessing is hopeless, so a fast hash is enough (see digest)
_PRESENTED = re.compile(r"tg_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")  # token_urlsafe(32): 43 chars
_KEY_ID = re.compile(r"[0-9a-f]{16}")
MAX_ALLOW_IPS = 50  # bounds the item (and the check per request)
MAX_LABEL = 256


class KeyFormatError(ValueError):
    """Not a key this platform hands out (prefix, id, secret or separators wrong)."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key as anyone may see it: never its secret nor its digest."""

    tenant: str
    key_id: str
    role: str
    account: str | None  # None: tenant level
    allow_ips: tuple[str, ...]  # normalised networks; empty: any address
    label: str | None
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def new_key() -> tuple[str, str, str]:
    """(key_id, secret, presented): a fresh key, from the OS's CSPRNG."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    return key_id, secret, f"{PREFIX}{key_id}_{secret}"


def parse(presented: object) -> tuple[str, str]:
    """(key_id, secret) of a presented key, or KeyFormatError for anything else.

    The message never repeats the text: it may be someone's real key with a typo.
    """
    if not isinstance(presented, str):
        raise KeyFormatError("not an API key: expected a string")
    found = _PRESENTED.fullmatch(presented)
    if found is None:
        raise KeyFormatError("not an API key: expected tg_<16 hex digits>_<43-character secret>")
    return found.group(1), found.group(2)


def check_key_id(key_id: object) -> str:
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise ValueError(f"invalid key id {key_id!r}: 16 lowercase hex digits")
    return key_id


def digest(secret: str) -> str:
    """SHA-256 of the secret, hex. No salt and no slow hash (bcrypt, scrypt): those protect
    low-entropy passwords from guessing, and a 256-bit random secret cannot be guessed; a
    fast hash keeps every request's check to microseconds."""
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(secret: str, stored_digest: str) -> bool:
    """Whether the secret is the one whose digest was stored, in constant time."""
    return hmac.compare_digest(digest(secret).encode(), stored_digest.encode())


def check_role(role: object, account: str | None) -> tuple[str, str | None]:
    """(role, account) if the role may have (or lack) that account; ValueError naming the
    field at fault (`role` or `account`)."""
    if role not in ROLES:
        raise ValueError(f"invalid role {role!r}: use one of {', '.join(ROLES)}")
    if account is None:
        if role in ACCOUNT_REQUIRED:
            raise ValueError(f"invalid account: a {role} key needs an account")
        return role, None
    if role in ACCOUNT_FORBIDDEN:
        raise ValueError(f"invalid account {account!r}: a {role} key is tenant-wide, give none")
    return role, check_name("account", account)


def check_account_kind(role: str, account: str, kind: str) -> None:
    """The account a key is given to is of a kind its role may act for."""
    allowed = ACCOUNT_KINDS_OF.get(role, ())
    if kind not in allowed:
        raise ValueError(
            f"invalid account {account!r}: a {role} key needs a {' or '.join(allowed)} "
            f"account, not a {kind}"
        )


def check_cidr(text: object) -> str:
    """An IPv4 or IPv6 address or network as its normalised network ('203.0.113.7' ->
    '203.0.113.7/32', '2001:DB8::1/64' -> '2001:db8::/64'); ValueError naming `allow-ip`."""
    try:
        if not isinstance(text, str) or text != text.strip():
            raise ValueError
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise ValueError(
            f"invalid allow-ip {text!r}: an IPv4 or IPv6 address or CIDR network, "
            "e.g. 203.0.113.0/24 or 2001:db8::/32"
        ) from None


def check_cidrs(texts: Iterable[object]) -> tuple[str, ...]:
    """Each network normalised, duplicates dropped, in the order given."""
    networks = tuple(dict.fromkeys(check_cidr(t) for t in texts))
    if len(networks) > MAX_ALLOW_IPS:
        raise ValueError(f"invalid allow-ip: at most {MAX_ALLOW_IPS} networks per key")
    return networks


def check_label(label: object) -> str | None:
    if label is None:
        return None
    if not isinstance(label, str) or not label.strip():
        raise ValueError("invalid label: give some text, or none")
    label = label.strip()
    if len(label) > MAX_LABEL or not label.isprintable():
        raise ValueError(f"invalid label: 1-{MAX_LABEL} printable characters")
    return label


def ip_allowed(ip: object, cidrs: Sequence[str]) -> bool:
    """Whether a caller's address is in the key's allow-list (empty: any address). A
    malformed address is never allowed; an IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a
    dual-stack listener reports) counts as its IPv4 address."""
    if not cidrs:
        return True
    if not isinstance(ip, str):  # ip_address would take an int as an address
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    candidates = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)
    for cidr in cidrs:
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            continue  # a stored entry is normalised; a corrupt one grants nothing
        if any(a.version == network.version and a in network for a in candidates):
            return True
    return False
