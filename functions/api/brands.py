"""White-label brands for the portal (plain Python, no AWS): what a brand may hold and which
brand a caller's portal shows.

A brand is a name, two colours and an optional logo. The logo is a `data:` URL of a PNG or a
JPEG of at most 64 KiB, checked by its bytes, not only by what it says it is: never SVG,
which can carry script. A caller sees the brand of the nearest reseller at or above its own
account that has one, else the tenant's default brand, else Tollgate's own: a reseller's
customers see the reseller's name, never the carrier's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from functions.api.requests import BodyError, body_members
from functions.api.scope import AccountLike

MAX_LOGO_BYTES = 64 * 1024
MAX_NAME_CHARS = 64
_COLOR = re.compile(r"#[0-9a-f]{6}")
_DATA_URL = re.compile(r"data:(image/png|image/jpeg);base64,([A-Za-z0-9+/]*={0,2})")
_MAGIC = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}
SOURCES = ("reseller", "tenant", "tollgate")


@dataclass(frozen=True, slots=True)
class Brand:
    name: str
    primary: str  # "#rrggbb", lower case
    accent: str
    logo: str | None = None  # a data: URL of a PNG or JPEG

    def view(self, source: str) -> dict[str, Any]:
        """The brand as GET /v1/branding answers it; `source` says whose it is, never who."""
        return {
            "name": self.name,
            "logo": self.logo,
            "colors": {"primary": self.primary, "accent": self.accent},
            "source": source,
        }

    def audit_values(self) -> dict[str, Any]:
        """What the audit trail records: the logo by its digest and size, not its bytes."""
        return {
            "name": self.name,
            "primary": self.primary,
            "accent": self.accent,
            "logo": logo_digest(self.logo),
        }


TOLLGATE = Brand(name="Tollgate", primary="#1f4e79", accent="#f2a900")


def logo_digest(logo: str | None) -> str | None:
    if logo is None:
        return None
    data = base64.b64decode(logo.split(",", 1)[1])
    return f"sha256:{hashlib.sha256(data).hexdigest()} ({len(data)} bytes)"


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BodyError("name", "'name' must be a non-empty string")
    value = value.strip()
    if len(value) > MAX_NAME_CHARS:
        raise BodyError("name", f"'name' is longer than {MAX_NAME_CHARS} characters")
    if not value.isprintable():
        raise BodyError("name", "'name' holds control characters")
    return value


def _color(colors: Mapping[str, Any], member: str) -> str:
    field = f"colors.{member}"
    if member not in colors:
        raise BodyError(field, f"{field!r} is required")
    value = colors[member]
    if not isinstance(value, str) or not _COLOR.fullmatch(value.lower()):
        raise BodyError(field, f"{field!r} must be a colour #rrggbb")
    return value.lower()


def _colors(value: Any) -> tuple[str, str]:
    if not isinstance(value, Mapping):
        raise BodyError("colors", "'colors' must be an object {primary, accent}")
    for member in value:
        if member not in ("primary", "accent"):
            raise BodyError(f"colors.{member}", f"unknown member 'colors.{member}'")
    return _color(value, "primary"), _color(value, "accent")


def _logo(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BodyError("logo", "'logo' must be a data: URL of a PNG or JPEG, or null")
    found = _DATA_URL.fullmatch(value)
    if found is None:
        raise BodyError(
            "logo", "'logo' must be a data:image/png;base64 or data:image/jpeg;base64 URL"
        )
    if len(found.group(2)) > (MAX_LOGO_BYTES + 2) // 3 * 4:
        raise BodyError("logo", f"'logo' is larger than {MAX_LOGO_BYTES} bytes")
    try:
        data = base64.b64decode(found.group(2), validate=True)
    except (binascii.Error, ValueError):
        raise BodyError("logo", "'logo' is not valid base64") from None
    if len(data) > MAX_LOGO_BYTES:
        raise BodyError("logo", f"'logo' is larger than {MAX_LOGO_BYTES} bytes")
    if not data.startswith(_MAGIC[found.group(1)]):
        raise BodyError("logo", f"'logo' is not a {found.group(1).split('/')[1].upper()} image")
    return value


def parse_brand(body: Mapping[str, Any] | None) -> Brand:
    """A PUT /v1/branding body as a Brand; BodyError naming the member at fault."""
    members = body_members(body, ("name", "logo", "colors"), ("name", "colors"))
    primary, accent = _colors(members["colors"])
    return Brand(_name(members["name"]), primary, accent, _logo(members.get("logo")))


def resolve(
    account: str | None,
    accounts: Iterable[AccountLike],
    brand_of: Callable[[str], Brand | None],
    tenant_brand: Brand | None,
) -> tuple[Brand, str]:
    """The brand a caller at `account` (None: tenant level) sees and its source: the nearest
    reseller at or above the account that has a brand (`brand_of(reseller)`), else the
    tenant's default, else Tollgate's."""
    by_id = {a.account: a for a in accounts}
    seen: set[str] = set()
    while account is not None and account in by_id and account not in seen:
        seen.add(account)  # a parent cycle in corrupt data ends the walk
        found = by_id[account]
        if found.kind == "reseller":
            brand = brand_of(account)
            if brand is not None:
                return brand, "reseller"
        account = found.parent
    if tenant_brand is not None:
        return tenant_brand, "tenant"
    return TOLLGATE, "tollgate"


def resellers_above(account: str | None, accounts: Iterable[AccountLike]) -> list[str]:
    """The resellers at or above `account`, nearest first: the brands `resolve` may read."""
    by_id = {a.account: a for a in accounts}
    found: list[str] = []
    seen: set[str] = set()
    while account is not None and account in by_id and account not in seen:
        seen.add(account)
        if by_id[account].kind == "reseller":
            found.append(account)
        account = by_id[account].parent
    return found
