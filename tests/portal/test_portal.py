"""The portal in headless Chromium against the local API: sign-in with an API key, the
dashboard's figures against the API to the last digit, the reseller's brand on its
customer's portal (as text, never markup), the key kept in the tab alone, the address
allow-list, and what the local server serves. (The usage, CDR and invoice views' numbers:
test_portal_money_traffic.py.)"""

from __future__ import annotations

import base64
import re
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

from functions.store import accounts, apikeys, ledger
from tests.api.test_branding import png
from tests.portal.conftest import Portal, portal_world, wait_ready

PAID_RES_A = 123_456_789  # micro-units: 123.456789 EUR
LOGO = "data:image/png;base64," + base64.b64encode(png(4, 4, (170, 34, 0))).decode()
RESELLER_BRAND = {
    "name": "Desi Voice",
    "logo": LOGO,
    "colors": {"primary": "#aa2200", "accent": "#00aa22"},
}
CARRIER_BRAND = {
    "name": "Acme Carrier",
    "logo": None,
    "colors": {"primary": "#000080", "accent": "#ffffff"},
}


def seed(portal: Portal) -> None:
    accounts.create_tenant("acme", currency="EUR")
    accounts.create_account("acme", "RES_A", kind="reseller", credit_limit_micro=500_000_000)
    accounts.create_account("acme", "CUST_A1", kind="customer", parent="RES_A", prepaid=True)
    accounts.create_account("acme", "DIRECT", kind="customer")
    accounts.create_account("acme", "CARRIER_X", kind="supplier")
    ledger.record_payment("acme", "RES_A", PAID_RES_A, reference="SEPA-1", account_kind="reseller")
    ledger.record_payment("acme", "CUST_A1", 7_000_001, reference="CARD-1", account_kind="customer")
    actor = accounts.caller(by="test")
    for name, role, account, ips in [
        ("admin", "tenant-admin", None, ()),
        ("reseller", "reseller-admin", "RES_A", ()),
        ("customer", "customer", "CUST_A1", ()),
        ("direct", "customer", "DIRECT", ("127.0.0.1",)),
        ("elsewhere", "customer", "DIRECT", ("203.0.113.0/24",)),
    ]:
        portal.keys[name] = apikeys.create_key(
            "acme", role, account=account, allow_ips=ips, actor=actor
        )[1]


@pytest.fixture(scope="module")
def portal():
    with portal_world(seed, start_pollers=False) as world:
        yield world


def test_a_wrong_key_is_refused_and_nothing_is_kept(portal, context):
    page = portal.page(context)
    page.fill("#api-key", portal.keys["reseller"][:-2] + "xx")
    page.click("#key-submit")
    page.wait_for_selector("#signin-error:not([hidden])")
    assert "unknown API key" in page.inner_text("#signin-error")
    assert page.evaluate("sessionStorage.length") == 0
    assert page.is_hidden("#view")


def test_the_resellers_dashboard_shows_the_apis_balance_to_the_last_digit(portal, context):
    page = portal.sign_in(context, "reseller")
    balance = portal.get("/accounts/RES_A/balance", "reseller")
    account = portal.get("/accounts/RES_A", "reseller")
    assert balance["balance"] == "123.456789"
    assert page.inner_text("#balance") == balance["balance"]
    assert page.inner_text("#reserved") == balance["reserved"]
    assert page.inner_text("#credit-limit") == account["credit_limit"] == "500.000000"
    assert "EUR" in page.inner_text(".figures")
    # The reseller may look at its customer's figures, and never sees the carrier's accounts.
    options = page.eval_on_selector_all("#account-picker option", "os => os.map(o => o.value)")
    assert options == ["CUST_A1", "RES_A"]
    page.select_option("#account-picker", "CUST_A1")
    expect(page.locator("#balance")).to_have_text("7.000001")
    assert (
        page.inner_text("#credit-limit")
        == portal.get("/accounts/CUST_A1", "reseller")["credit_limit"]
    )
    assert page.is_visible('#nav a[data-view="customers"]')
    # The key lives in this tab's sessionStorage, nowhere else.
    assert page.evaluate("Object.values(sessionStorage)") == [portal.keys["reseller"]]
    assert portal.keys["reseller"] not in page.evaluate("JSON.stringify(localStorage)")
    assert portal.keys["reseller"] not in page.evaluate("document.cookie")
    assert portal.keys["reseller"] not in page.content()  # not even in an error's text


def test_a_customer_sees_its_resellers_brand_never_the_carriers(portal, context):
    status, _, _ = portal.call("PUT", "/branding", "admin", CARRIER_BRAND)
    assert status == 200
    status, _, seen = portal.call("PUT", "/branding", "reseller", RESELLER_BRAND)
    assert status == 200 and seen["source"] == "reseller"

    page = portal.sign_in(context, "customer")
    assert page.inner_text("#brand-name") == "Desi Voice"
    assert page.get_attribute("#brand-logo", "src") == LOGO
    assert page.title() == "Desi Voice portal"
    topbar = page.eval_on_selector(".topbar", "e => getComputedStyle(e).backgroundColor")
    assert topbar == "rgb(170, 34, 0)"
    assert "Acme Carrier" not in page.content()
    assert page.is_hidden('#nav a[data-view="customers"]')  # a customer has no customers
    assert (
        page.inner_text("#balance")
        == portal.get("/accounts/CUST_A1/balance", "customer")["balance"]
    )

    # Signed out, the sign-in page keeps the reseller's look (the brand, not the key).
    page.click("#sign-out")
    page.wait_for_selector("#sign-in:not([hidden])")
    assert page.inner_text("#signin-brand") == "Desi Voice"
    assert page.evaluate("sessionStorage.length") == 0
    fresh = portal.page(context)
    assert fresh.inner_text("#signin-brand") == "Desi Voice"
    background = fresh.eval_on_selector(
        "button[type=submit]", "e => getComputedStyle(e).backgroundColor"
    )
    assert background == "rgb(170, 34, 0)"

    # A direct customer of the carrier sees the tenant's default brand.
    direct = portal.sign_in(portal.browser.new_context(), "direct")
    assert direct.inner_text("#brand-name") == "Acme Carrier"


def test_a_brand_name_with_markup_is_shown_as_text(portal, context):
    name = '<img src=x onerror="window.pwned=1">'
    status, _, _ = portal.call("PUT", "/branding", "reseller", {**RESELLER_BRAND, "name": name})
    assert status == 200
    try:
        page = portal.sign_in(context, "customer")
        assert page.inner_text("#brand-name") == name
        assert page.evaluate("window.pwned") is None
        assert page.query_selector(".topbar img[src=x]") is None
    finally:
        portal.call("PUT", "/branding", "reseller", RESELLER_BRAND)


def test_a_keys_address_allow_list_holds_on_the_local_server(portal, context):
    page = portal.sign_in(context, "direct")  # allowed from 127.0.0.1: the browser's address
    assert page.inner_text("#balance") == "0.000000"
    refused = portal.page(portal.browser.new_context())
    refused.fill("#api-key", portal.keys["elsewhere"])
    refused.click("#key-submit")
    refused.wait_for_selector("#signin-error:not([hidden])")
    assert "not allowed from this address" in refused.inner_text("#signin-error")
    status, _, body = portal.call("GET", "/me", "elsewhere")
    assert (status, body["code"]) == (401, "ip_not_allowed")


def test_the_local_server_serves_the_portal_and_the_api_on_one_origin(portal):
    web = portal.web
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", web.api_url)
    assert web.portal_url == web.api_url.removesuffix("v1")
    with urllib.request.urlopen(web.portal_url) as index:
        assert index.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert index.headers["X-Content-Type-Options"] == "nosniff"
        assert b'<script type="module" src="js/app.js">' in index.read()
    for outside in ("/../pyproject.toml", "/%2e%2e/app.py", "/js/../../app.py", "/nothing.html"):
        request = urllib.request.Request(web.portal_url.rstrip("/") + outside)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request)
        assert refused.value.code == 404, outside
    assert portal.call("GET", "/me")[0] == 401
    assert portal.call("GET", "/me", "admin")[2]["role"] == "tenant-admin"


def test_password_sign_in_posts_to_sessions_and_uses_its_token_as_the_bearer(portal, context):
    """The portal's side of POST /v1/sessions: {user, password, totp} in, 201 {"token"} out,
    the token the bearer from then on; a refusal shown as the API words it. The route is the
    sessions work's: here the browser's stand-in answers (a reseller's key standing for the
    session's token); against the real route: test_portal_money_traffic.py."""
    posted = []
    answers = [
        (401, {"code": "bad_credentials", "message": "wrong user, password or code"}),
        (201, {"token": portal.keys["reseller"], "expires_at": "2099-01-01T00:00:00Z"}),
    ]

    def sessions(route):
        posted.append(route.request.post_data_json)
        assert "authorization" not in route.request.headers  # no bearer before sign-in
        status, body = answers[len(posted) - 1]
        route.fulfill(status=status, json=body)

    page = portal.page(context)
    page.route("**/v1/sessions", sessions)
    page.click("#password-signin summary")
    page.fill("#user", "ops@res-a.example")
    page.fill("#password", "correct horse")
    page.fill("#totp", "123456")
    page.click("#password-form button[type=submit]")
    page.wait_for_selector("#signin-error:not([hidden])")
    assert page.inner_text("#signin-error") == "Sign-in refused: wrong user, password or code"
    assert page.evaluate("sessionStorage.length") == 0

    page.click("#password-form button[type=submit]")
    wait_ready(page, "dashboard")
    sent = {"user": "ops@res-a.example", "password": "correct horse", "totp": "123456"}
    assert posted == [sent, sent]
    assert page.inner_text("#balance") == "123.456789"
    assert page.evaluate("Object.values(sessionStorage)") == [portal.keys["reseller"]]


def test_a_303_to_a_pre_signed_link_is_followed_and_saved(portal, context):
    """The invoice view against the shapes of GET /v1/invoices and GET /v1/invoices/{n}/pdf
    (a 303 to a pre-signed S3 link), here answered by the browser's route stand-ins: the
    browser follows the link to the local stack's S3 and saves the PDF's exact bytes.
    (Against the real routes: test_portal_money_traffic.py.)"""
    import boto3

    from functions.shared.settings import settings

    pdf = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
    s3 = boto3.client("s3")
    bucket = settings().documents_bucket
    s3.put_object(Bucket=bucket, Key="invoices/acme/INV-7/INV-7.pdf", Body=pdf)
    link = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "invoices/acme/INV-7/INV-7.pdf"}
    )
    invoice = {
        "number": "INV-7",
        "account": "RES_A",
        "issue_date": "2024-06-01",
        "due_date": "2024-06-15",
        "currency": "EUR",
        "total": "12.345678",
        "documents": ["pdf", "xml"],
    }
    page = portal.sign_in(context, "reseller")
    page.route(
        re.compile(r".*/v1/invoices(\?.*)?$"),
        lambda route: route.fulfill(json={"items": [invoice], "next_cursor": None}),
    )
    page.route(
        "**/v1/invoices/INV-7/pdf",
        lambda route: route.fulfill(
            status=303,
            headers={"Location": link, "Cache-Control": "no-store"},
            json={"url": link, "expires_in": 300},
        ),
    )
    page.click('#nav a[data-view="invoices"]')
    wait_ready(page, "invoices")
    cells = page.eval_on_selector_all(
        "#invoice-table tbody td", "tds => tds.map(td => td.textContent)"
    )
    assert cells[:6] == ["INV-7", "RES_A", "2024-06-01", "2024-06-15", "12.345678", "EUR"]
    with page.expect_download() as saved:
        page.click('button[data-invoice="INV-7"][data-document="pdf"]')
    download = saved.value
    assert download.suggested_filename == "INV-7.pdf"
    assert Path(download.path()).read_bytes() == pdf
