"""White label: PUT /v1/branding's checks and roles, GET /v1/branding's choice of brand (the
nearest reseller's, the tenant's default, Tollgate's) and the audit trail of each change."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from types import SimpleNamespace

import pytest

from functions.api import brands
from functions.api.requests import BodyError
from functions.store import accounts, branding


def png(width: int = 1, height: int = 1, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A real PNG (the portal's tests show it), built without an imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


LOGO = data_url(png())
RES_BRAND = {
    "name": "Desi Voice",
    "logo": LOGO,
    "colors": {"primary": "#AA2200", "accent": "#00aa22"},
}


def put(world, key: str, body) -> object:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {world.keys[key]}"}
    return world.http.put("/v1/branding", headers=headers, body=json.dumps(body))


def test_before_any_brand_everyone_sees_tollgates(world):
    for key in ("admin", "reseller", "customer", "direct"):
        answer = world.get("/v1/branding", key)
        assert answer.status_code == 200
        assert answer.json_body == {
            "name": "Tollgate",
            "logo": None,
            "colors": {"primary": "#1f4e79", "accent": "#f2a900"},
            "source": "tollgate",
        }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**RES_BRAND, "logo": "data:image/svg+xml;base64,PHN2Zz48L3N2Zz4="}, "logo"),
        ({**RES_BRAND, "logo": "https://example.com/logo.png"}, "logo"),
        ({**RES_BRAND, "logo": data_url(b"\xff\xd8\xff\xe0jpeg")}, "logo"),  # JPEG bytes as PNG
        ({**RES_BRAND, "logo": data_url(b"<svg onload=alert(1)>", "image/jpeg")}, "logo"),
        ({**RES_BRAND, "logo": "data:image/png;base64,iVBORw0KGgo!!"}, "logo"),
        ({**RES_BRAND, "logo": data_url(png(160, 160) + b"\x00" * 65_536)}, "logo"),
        ({**RES_BRAND, "logo": 7}, "logo"),
        ({**RES_BRAND, "name": ""}, "name"),
        ({**RES_BRAND, "name": "x" * 65}, "name"),
        ({**RES_BRAND, "name": "a\nb"}, "name"),
        ({**RES_BRAND, "colors": {"primary": "red", "accent": "#000000"}}, "colors.primary"),
        ({**RES_BRAND, "colors": {"primary": "#000000"}}, "colors.accent"),
        ({**RES_BRAND, "colors": {**RES_BRAND["colors"], "text": "#000000"}}, "colors.text"),
        ({**RES_BRAND, "colors": "#000000"}, "colors"),
        ({**RES_BRAND, "font": "Comic Sans"}, "font"),
        ({"logo": None, "colors": RES_BRAND["colors"]}, "name"),
        ([RES_BRAND], "body"),
    ],
)
def test_a_bad_brand_is_400_naming_the_member(world, body, field):
    answer = put(world, "reseller", body)
    assert answer.status_code == 400, answer.json_body
    assert answer.json_body["code"] == "bad_field"
    assert answer.json_body["field"] == field
    assert branding.get_brand("acme", "RES_A") is None


def test_only_a_reseller_admin_or_tenant_admin_sets_a_brand(world):
    for key in ("customer", "finance", "readonly", "readonly_res", "direct"):
        answer = put(world, key, RES_BRAND)
        assert answer.status_code == 403, key
        assert answer.json_body["code"] == "forbidden"
    assert branding.get_brand("acme", "RES_A") is None
    assert branding.get_brand("acme") is None


def test_a_resellers_customers_see_its_brand_never_the_carriers(world):
    carrier = {
        "name": "Acme Carrier",
        "logo": None,
        "colors": {"primary": "#000080", "accent": "#ffffff"},
    }
    assert put(world, "admin", carrier).status_code == 200
    answer = put(world, "reseller", RES_BRAND)
    assert answer.status_code == 200
    mine = {
        "name": "Desi Voice",
        "logo": LOGO,
        "colors": {"primary": "#aa2200", "accent": "#00aa22"},
        "source": "reseller",
    }
    assert answer.json_body == mine
    for key in ("reseller", "readonly_res", "customer"):
        assert world.get("/v1/branding", key).json_body == mine, key
    assert "Acme Carrier" not in json.dumps(world.get("/v1/branding", "customer").json_body)
    tenant_default = {**carrier, "source": "tenant"}
    for key in ("admin", "finance", "direct"):
        assert world.get("/v1/branding", key).json_body == tenant_default, key

    # Each change is audited, the logo by its digest; the same brand again changes nothing.
    entries = accounts.list_audit("acme", "account", "RES_A")
    assert [c.field for c in entries[-1].changes] == ["name", "primary", "accent", "logo"]
    assert entries[-1].changes[3].new == brands.logo_digest(LOGO)
    assert entries[-1].changes[3].new.startswith("sha256:")
    assert entries[-1].by.startswith("apikey:")
    assert put(world, "reseller", RES_BRAND).status_code == 200
    assert len(accounts.list_audit("acme", "account", "RES_A")) == len(entries)
    recoloured = {**RES_BRAND, "logo": None, "colors": {"primary": "#aa2200", "accent": "#111111"}}
    assert put(world, "reseller", recoloured).json_body["logo"] is None
    last = accounts.list_audit("acme", "account", "RES_A")[-1]
    assert [(c.field, c.new) for c in last.changes] == [("accent", "#111111"), ("logo", None)]
    assert [e.changes[0].new for e in accounts.list_audit("acme", "tenant", "acme")] == [
        "Acme Carrier"
    ]


def _acct(account, kind, parent=None):
    return SimpleNamespace(account=account, kind=kind, parent=parent)


def test_the_nearest_reseller_with_a_brand_wins():
    tree = [
        _acct("TOP", "reseller"),
        _acct("MID", "reseller", "TOP"),
        _acct("SUB", "reseller", "MID"),
        _acct("END", "customer", "SUB"),
        _acct("LOOP1", "customer", "LOOP2"),
        _acct("LOOP2", "customer", "LOOP1"),
    ]
    top = brands.Brand("Top", "#000001", "#000002")
    mid = brands.Brand("Mid", "#000003", "#000004")
    tenant = brands.Brand("Carrier", "#000005", "#000006")
    found = {"TOP": top, "MID": mid}
    assert brands.resellers_above("END", tree) == ["SUB", "MID", "TOP"]
    assert brands.resolve("END", tree, found.get, tenant) == (mid, "reseller")
    assert brands.resolve("TOP", tree, found.get, tenant) == (top, "reseller")
    assert brands.resolve(None, tree, found.get, tenant) == (tenant, "tenant")
    assert brands.resolve("LOOP1", tree, found.get, None) == (brands.TOLLGATE, "tollgate")
    assert brands.resellers_above("LOOP1", tree) == []


def test_a_logo_of_exactly_64_kib_is_taken_and_one_byte_more_is_not():
    image = png()
    exact = image + b"\x00" * (brands.MAX_LOGO_BYTES - len(image))
    body = {**RES_BRAND, "logo": data_url(exact)}
    assert brands.parse_brand(body).logo == body["logo"]
    with pytest.raises(BodyError) as refused:
        brands.parse_brand({**RES_BRAND, "logo": data_url(exact + b"\x00")})
    assert refused.value.field == "logo"
