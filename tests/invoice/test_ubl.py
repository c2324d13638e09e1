"""The e-invoice XML against the official validators, offline, and its content to the cent.

Every document passes (a) the OASIS UBL 2.1 XSD (lxml), (b) the CEN EN 16931 rules and (c) the
Peppol BIS Billing 3.0 rules (both XSLT 2.0 on saxonche): no failed assertion flagged fatal or
error. The broken copies show each validator catches what it should. The artefacts and where
they come from: tests/data/einvoice/SOURCE.md.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree
from saxonche import PySaxonProcessor

from functions.invoice import ubl
from functions.invoice.drafts import (
    Conversion,
    FeeRow,
    Invoice,
    UsageRow,
    build_credit_note,
    build_invoice,
)
from functions.invoice.profiles import BillingProfile, check_profile, parse_tax
from functions.invoice.ubl import invoice_xml
from tests.invoice.samples import (
    ALL,
    CARRIER,
    ISSUED,
    MARCH,
    SINCE,
    numbered,
    reverse_charge_invoice,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "einvoice"
NS = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
    "svrl": "http://purl.oclc.org/dsdl/svrl",
}
BLOCKING = {"fatal", "error"}


@dataclass
class Validators:
    schemas: dict[str, etree.XMLSchema]
    processor: PySaxonProcessor
    cen: object
    peppol: object

    def xsd_errors(self, data: bytes) -> list[str]:
        document = etree.fromstring(data)
        schema = self.schemas[etree.QName(document).localname]
        if schema.validate(document):
            return []
        return [f"{e.line}: {e.message}" for e in schema.error_log]

    def failed(self, rules: object, data: bytes) -> list[str]:
        """`id: text` of each rule that fails with a blocking flag (a flagless one blocks)."""
        node = self.processor.parse_xml(xml_text=data.decode())
        svrl = etree.fromstring(rules.transform_to_string(xdm_node=node).encode())  # type: ignore[attr-defined]
        return sorted(
            {
                f"{fired.get('id')}: {' '.join(fired.findtext('svrl:text', '', NS).split())}"
                for fired in svrl.xpath(
                    "//svrl:failed-assert | //svrl:successful-report", namespaces=NS
                )
                if fired.get("flag", "error") in BLOCKING
            }
        )

    def problems(self, data: bytes) -> dict[str, list[str]]:
        return {
            "xsd": self.xsd_errors(data),
            "cen": self.failed(self.cen, data),
            "peppol": self.failed(self.peppol, data),
        }


@pytest.fixture(scope="session")
def validators() -> Validators:
    """Compiled once per session: the two rule sets take about 0.5 s to compile."""
    schemas = {
        kind: etree.XMLSchema(etree.parse(str(DATA / "xsd" / "maindoc" / f"UBL-{kind}-2.1.xsd")))
        for kind in ("Invoice", "CreditNote")
    }
    processor = PySaxonProcessor(license=False)
    xslt = processor.new_xslt30_processor()
    return Validators(
        schemas,
        processor,
        xslt.compile_stylesheet(stylesheet_file=str(DATA / "EN16931-UBL-validation.xslt")),
        xslt.compile_stylesheet(stylesheet_file=str(DATA / "PEPPOL-EN16931-UBL.xslt")),
    )


NO_PROBLEMS = {"xsd": [], "cen": [], "peppol": []}


def _buyer(**changes: object) -> BillingProfile:
    profile = BillingProfile(
        tenant="acme",
        account="METRO_TEL",
        legal_name="Metro Tel AG",
        address="Königsallee 10",
        city="Düsseldorf",
        postcode="40212",
        country="DE",
        email="ap@metrotel.example",
        vat_id="DE811222333",
        taxes=(parse_tax("standard:19", SINCE),),
    )
    return dataclasses.replace(profile, **changes)  # type: ignore[arg-type]


def connect_fees_invoice() -> Invoice:
    """Lines the minutes x rate do not explain: connect fees on one (a line charge), per-call
    rounding down on another (an allowance), a negative re-rating difference and a negative
    Rounding line (quantity -1 at a positive price)."""
    rows = [
        # 100 min x 0.01 = 1.00, plus 300 connect fees of 0.001: 1.30
        UsageRow("usage", "Spain Mobile", Decimal("0.01"), 100 * 60, 300, 1_300_000),
        # 333.3333 min x 0.015 = 5.00 (4.999999...), charged 4.975: 4.98, an allowance of 0.02
        UsageRow("usage", "Italy Fixed", Decimal("0.015"), 20_000, 400, 4_975_000),
        UsageRow("usage", "Austria Fixed", Decimal("0.0033"), 150, 1, 8_250),  # 0.00825 -> 0.01
    ]
    fees = [FeeRow("recurring", "DID +4921100000, March 2026", 2_005_000)]  # 2.005 -> 2.01
    posted = sum(r.amount_micro for r in rows) + 2_005_000 - 250_000  # re-rated: -0.25
    return numbered(
        build_invoice(
            tenant="acme",
            account="METRO_TEL",
            issuer="carrier",
            period=MARCH,
            issue_date=ISSUED,
            seller=CARRIER,
            buyer=_buyer(),
            account_currency="EUR",
            usage=rows,
            fees=fees,
            posted_micro=posted,
        ),
        "INV-2026-000010",
    )


def usd_invoice() -> Invoice:
    """A German seller's invoice in USD: the VAT also stated in euros (BT-6, BT-111)."""
    rows = [UsageRow("usage", "USA Landline", Decimal("0.004"), 50_000 * 60, 9_000, 200_000_000)]
    return numbered(
        build_invoice(
            tenant="acme",
            account="METRO_TEL",
            issuer="carrier",
            period=MARCH,
            issue_date=ISSUED,
            seller=CARRIER,
            buyer=_buyer(currency="USD"),
            account_currency="EUR",
            usage=rows,
            fees=[],
            posted_micro=200_000_000,
            conversion=Conversion("EUR", "USD", Decimal("1.0815"), MARCH.last_day, "ECB"),
        ),
        "INV-2026-000011",
    )


def prepaid_invoice() -> Invoice:
    rows = [UsageRow("usage", "UK Mobile", Decimal("0.007"), 1_000 * 60, 90, 7_000_000)]
    return numbered(
        build_invoice(
            tenant="acme",
            account="METRO_TEL",
            issuer="carrier",
            period=MARCH,
            issue_date=ISSUED,
            seller=CARRIER,
            buyer=_buyer(),
            account_currency="EUR",
            usage=rows,
            fees=[],
            posted_micro=7_000_000,
            prepaid=True,
        ),
        "INV-2026-000012",
    )


def _small_invoice(
    buyer: BillingProfile, number: str | None = None, seller: BillingProfile = CARRIER
) -> Invoice:
    invoice = build_invoice(
        tenant="acme",
        account="METRO_TEL",
        issuer="carrier",
        period=MARCH,
        issue_date=ISSUED,
        seller=seller,
        buyer=buyer,
        account_currency="EUR",
        usage=[UsageRow("usage", "UK Mobile", Decimal("0.007"), 60_000, 90, 7_000_000)],
        fees=[],
        posted_micro=7_000_000,
    )
    return invoice if number is None else numbered(invoice, number)


def exempt_invoice() -> Invoice:
    """A reseller exempt on a certificate: category E, the certificate as the reason."""
    exempt = parse_tax("exempt", SINCE, certificate="RESALE-2026-17")
    return _small_invoice(_buyer(taxes=(exempt,)), "INV-2026-000014")


def full_credit_of_reverse_charge() -> Invoice:
    original = numbered(reverse_charge_invoice(), "INV-2026-000003")
    note = build_credit_note(original, issue_date=dt.date(2026, 4, 30), reason="Duplicate")
    return numbered(note, "CN-2026-000002")


EXTRA: dict[str, Callable[[], Invoice]] = {
    "connect_fees": connect_fees_invoice,
    "usd": usd_invoice,
    "prepaid": prepaid_invoice,
    "exempt": exempt_invoice,
    "full_credit_reverse_charge": full_credit_of_reverse_charge,
}


def _xml(invoice: Invoice) -> etree._Element:
    return etree.fromstring(invoice_xml(invoice))


def _all(tree: etree._Element, path: str) -> list[str]:
    """Texts of the elements (or values of the attributes) at `path`."""
    return [str(e) if isinstance(e, str) else e.text for e in tree.xpath(path, namespaces=NS)]


def _one(tree: etree._Element, path: str) -> str:
    [value] = _all(tree, path)
    return value


def _amounts(tree: etree._Element) -> dict[str, str]:
    total = tree.find("cac:LegalMonetaryTotal", NS)
    return {etree.QName(e).localname: f"{e.text} {e.get('currencyID')}" for e in total}


# --- every document passes all three validators -------------------------------------------


@pytest.mark.parametrize("name", [*ALL, *EXTRA])
def test_document_passes_the_xsd_the_cen_rules_and_the_peppol_rules(name, validators):
    invoice = {**ALL, **EXTRA}[name]()
    assert validators.problems(invoice_xml(invoice)) == NO_PROBLEMS


@pytest.mark.parametrize("name", [*ALL, *EXTRA])
def test_the_same_invoice_gives_the_same_bytes(name):
    make = {**ALL, **EXTRA}[name]
    assert invoice_xml(make()) == invoice_xml(make())


# --- the validators bite ------------------------------------------------------------------


def _broken(invoice: Invoice, path: str, change: Callable[[etree._Element], None]) -> bytes:
    tree = _xml(invoice)
    [element] = tree.xpath(path, namespaces=NS)
    change(element)
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")


def _remove(element: etree._Element) -> None:
    element.getparent().remove(element)


def _ids(failures: list[str]) -> set[str]:
    return {failure.split(":")[0] for failure in failures}


def test_a_reverse_charge_invoice_without_the_buyers_vat_id_fails_br_ae_02(validators):
    data = _broken(
        ALL["reverse_charge"](), "cac:AccountingCustomerParty/cac:Party/cac:PartyTaxScheme", _remove
    )
    assert validators.xsd_errors(data) == []
    assert _ids(validators.failed(validators.cen, data)) == {"BR-AE-02"}


def test_a_unit_code_outside_rec_20_fails_br_cl_23(validators):
    def minutes(quantity: etree._Element) -> None:
        quantity.set("unitCode", "MINUTES")

    data = _broken(ALL["seed_a"](), "cac:InvoiceLine[1]/cbc:InvoicedQuantity", minutes)
    assert _ids(validators.failed(validators.cen, data)) == {"BR-CL-23"}


def test_a_line_without_its_connect_fee_charge_fails_peppol_r120(validators):
    spain = "cac:InvoiceLine[cac:Item/cbc:Name = 'Spain Mobile']"
    data = _broken(connect_fees_invoice(), f"{spain}/cac:AllowanceCharge", _remove)
    assert _ids(validators.failed(validators.peppol, data)) == {"PEPPOL-EN16931-R120"}


def test_a_tax_breakdown_off_by_a_cent_fails_br_co_14(validators):
    """The breakdown no longer adds up to the tax total. (BR-CO-17, category tax = taxable x
    rate, tolerates a whole currency unit: the draft's own rounding is what keeps it exact.)"""

    def off(amount: etree._Element) -> None:
        amount.text = "25.24"

    data = _broken(ALL["seed_a"](), "cac:TaxTotal/cac:TaxSubtotal/cbc:TaxAmount", off)
    assert _ids(validators.failed(validators.cen, data)) == {"BR-CO-14"}


def test_elements_out_of_the_xsd_order_fail_the_xsd(validators):
    def after_type_code(due: etree._Element) -> None:
        due.getparent().remove(due)
        tree.find("cbc:InvoiceTypeCode", NS).addnext(due)

    tree = _xml(ALL["seed_a"]())
    after_type_code(tree.find("cbc:DueDate", NS))
    errors = validators.xsd_errors(etree.tostring(tree, xml_declaration=True, encoding="UTF-8"))
    assert errors and "DueDate" in errors[0]


def test_a_party_without_a_vat_id_falls_back_to_its_email_valid_en16931_not_peppol(validators):
    """Peppol's EAS list has no e-mail scheme: the invoice names the missing VAT id as a gap."""
    invoice = _small_invoice(_buyer(vat_id=None), "INV-2026-000013")
    tree = _xml(invoice)
    endpoint = tree.find("cac:AccountingCustomerParty/cac:Party/cbc:EndpointID", NS)
    assert (endpoint.get("schemeID"), endpoint.text) == ("EM", "ap@metrotel.example")
    assert tree.find("cac:AccountingCustomerParty/cac:Party/cac:PartyTaxScheme", NS) is None
    assert invoice.gaps == ("buyer.vat_id",)
    problems = validators.problems(invoice_xml(invoice))
    assert problems["xsd"] == problems["cen"] == []
    assert _ids(problems["peppol"]) == {"PEPPOL-EN16931-CL008"}


def test_a_domestic_german_invoice_without_the_sellers_phone_names_it_and_fails_de_r_006(
    validators,
):
    invoice = _small_invoice(_buyer(), seller=dataclasses.replace(CARRIER, phone=None))
    assert invoice.gaps == ("seller.phone",)
    assert _ids(validators.failed(validators.peppol, invoice_xml(invoice))) == {"DE-R-006"}


def test_without_a_tax_treatment_the_category_o_fallback_lacks_a_seller_identifier(validators):
    """The draft names the gap (`buyer.tax`); O forbids VAT ids (BR-O-02), and the profile
    holds no other seller identifier, so BR-CO-26 fails until a treatment is set."""
    invoice = _small_invoice(_buyer(taxes=()), "INV-2026-000015")
    assert invoice.gaps == ("buyer.tax",)
    tree = _xml(invoice)
    assert tree.xpath("//cac:PartyTaxScheme", namespaces=NS) == []
    assert _all(tree, "cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:*[not(*)]") == [
        "O", "0", "VATEX-EU-O", "Not subject to VAT"
    ]  # fmt: skip
    assert validators.problems(invoice_xml(invoice)) == {
        "xsd": [],
        "cen": [
            "BR-CO-26: [BR-CO-26]-In order for the buyer to automatically identify a supplier, "
            "the Seller identifier (BT-29), the Seller legal registration identifier (BT-30) "
            "and/or the Seller VAT identifier (BT-31) shall be present."
        ],
        "peppol": [],
    }


@pytest.mark.parametrize("phone", ["+49 30 1234567", "030/123-45", "(030) 1234"])
def test_a_profiles_phone_is_digits_and_separators(phone):
    assert check_profile(dataclasses.replace(CARRIER, phone=phone)).phone == phone


@pytest.mark.parametrize("phone", ["", "12", "call me", "+49 30 12345678901234567890123456789"])
def test_a_malformed_phone_is_refused(phone):
    with pytest.raises(ValueError, match="invalid --phone"):
        check_profile(dataclasses.replace(CARRIER, phone=phone))


# --- content, to the cent -----------------------------------------------------------------


def test_seed_invoice_states_lines_tax_and_totals():
    tree = _xml(ALL["seed_a"]())
    assert tree.tag == "{urn:oasis:names:specification:ubl:schema:xsd:Invoice-2}Invoice"
    assert _one(tree, "cbc:CustomizationID") == ubl.CUSTOMIZATION_ID
    assert _one(tree, "cbc:ProfileID") == "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
    assert _one(tree, "cbc:ID") == "INV-2026-000001"
    assert _one(tree, "cbc:InvoiceTypeCode") == "380"
    assert (_one(tree, "cbc:IssueDate"), _one(tree, "cbc:DueDate")) == ("2026-04-02", "2026-05-02")
    assert _one(tree, "cbc:BuyerReference") == "RESELLER_A"
    assert _all(tree, "cac:InvoicePeriod/*") == ["2026-03-01", "2026-03-31"]
    assert _all(tree, "cac:InvoiceLine/cbc:InvoicedQuantity") == ["12500", "8200"]
    assert _all(tree, "cac:InvoiceLine/cbc:InvoicedQuantity/@unitCode") == ["MIN", "MIN"]
    assert _all(tree, "cac:InvoiceLine/cac:Price/cbc:PriceAmount") == ["0.008", "0.004"]
    assert _all(tree, "cac:InvoiceLine/cbc:LineExtensionAmount") == ["100.00", "32.80"]
    assert _all(tree, "cac:InvoiceLine/cac:Item/cbc:Name") == ["India Mobile", "USA Landline"]
    assert _all(tree, "cac:TaxTotal/cbc:TaxAmount") == ["25.23"]  # 132.80 x 19 % = 25.232
    assert _all(tree, "cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:*") == ["S", "19"]
    assert _amounts(tree) == {
        "LineExtensionAmount": "132.80 EUR",
        "TaxExclusiveAmount": "132.80 EUR",
        "TaxInclusiveAmount": "158.03 EUR",
        "PayableAmount": "158.03 EUR",
    }
    assert _all(tree, "cac:PaymentMeans/cbc:*") == ["58", "INV-2026-000001"]
    assert _one(tree, "cac:PaymentMeans/cac:PayeeFinancialAccount/cbc:ID") == CARRIER.iban
    seller = "cac:AccountingSupplierParty/cac:Party/"
    assert _one(tree, seller + "cbc:EndpointID") == "DE123456789"
    assert _one(tree, seller + "cbc:EndpointID/@schemeID") == "9930"
    assert _one(tree, seller + "cac:PartyTaxScheme/cbc:CompanyID") == "DE123456789"
    assert _one(tree, seller + "cac:Contact/cbc:Telephone") == "+49 30 1234567"
    every_amount = tree.xpath("//*[@currencyID]")
    assert {e.get("currencyID") for e in every_amount} == {"EUR"}
    assert all(
        len(e.text.split(".")[1]) == 2
        for e in every_amount
        if etree.QName(e).localname != "PriceAmount"
    )


def test_reverse_charge_invoice_says_so_with_category_ae_and_no_tax():
    tree = _xml(ALL["reverse_charge"]())
    category = "cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/"
    assert _one(tree, category + "cbc:ID") == "AE"
    assert _one(tree, category + "cbc:Percent") == "0"
    assert _one(tree, category + "cbc:TaxExemptionReasonCode") == "VATEX-EU-AE"
    assert _one(tree, category + "cbc:TaxExemptionReason") == "Reverse charge"
    assert _all(tree, "cac:TaxTotal/cac:TaxSubtotal/cbc:*") == ["504.10", "0.00"]
    assert _one(tree, "cbc:Note") == (
        "Reverse charge\nVAT reverse charge: Art. 196 Council Directive 2006/112/EC"
    )
    assert set(_all(tree, "cac:InvoiceLine/cac:Item/cac:ClassifiedTaxCategory/cbc:ID")) == {"AE"}
    buyer = "cac:AccountingCustomerParty/cac:Party/"
    assert _one(tree, buyer + "cbc:EndpointID/@schemeID") == "9957"
    assert _one(tree, buyer + "cac:PartyTaxScheme/cbc:CompanyID") == "FR12345678901"
    assert _all(tree, "cac:InvoiceLine/cbc:InvoicedQuantity") == ["40000.5", "1234.9", "1"]
    assert _all(tree, "cac:InvoiceLine/cbc:InvoicedQuantity/@unitCode") == ["MIN", "MIN", "C62"]
    assert _amounts(tree)["PayableAmount"] == "504.10 EUR"


def test_exempt_invoice_gives_the_certificate_as_the_reason():
    tree = _xml(exempt_invoice())
    category = "cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/"
    assert _all(tree, category + "cbc:*") == ["E", "0", "Exempt: certificate RESALE-2026-17"]
    assert _all(tree, "cac:TaxTotal/cbc:TaxAmount") == ["0.00"]
    assert _amounts(tree)["PayableAmount"] == "7.00 EUR"


def test_a_full_credit_note_repeats_the_invoices_lines_and_says_why():
    tree = _xml(full_credit_of_reverse_charge())
    assert _all(tree, "cac:CreditNoteLine/cbc:LineExtensionAmount") == ["500.01", "2.59", "1.50"]
    assert _one(tree, "cbc:Note").splitlines()[-1] == (
        "Credit note for invoice INV-2026-000003: Duplicate"
    )
    assert _one(tree, "cac:TaxTotal/cac:TaxSubtotal/cac:TaxCategory/cbc:ID") == "AE"
    assert _amounts(tree)["PayableAmount"] == "504.10 EUR"


def test_tiered_invoice_in_euros_states_the_fx_rate_and_needs_no_tax_currency():
    tree = _xml(ALL["tiered"]())
    assert _one(tree, "cbc:DocumentCurrencyCode") == "EUR"
    assert _all(tree, "cbc:TaxCurrencyCode") == []
    assert (
        _one(tree, "cbc:Note") == "Charges in USD converted at 0.9213 EUR per USD (ECB, 2026-03-31)"
    )
    assert _all(tree, "cac:InvoiceLine/cac:Price/cbc:PriceAmount") == ["0.00414585", "0.0036852"]
    assert _all(tree, "cac:InvoiceLine/cbc:LineExtensionAmount") == ["414.59", "86.44"]
    assert _all(tree, "cac:TaxTotal/cbc:TaxAmount") == ["100.21"]  # 501.03 x 20 % = 100.206
    assert _amounts(tree)["TaxInclusiveAmount"] == "601.24 EUR"


def test_white_label_invoice_is_the_resellers_under_its_brand():
    tree = _xml(ALL["white_label"]())
    seller = "cac:AccountingSupplierParty/cac:Party/"
    assert _one(tree, seller + "cac:PartyName/cbc:Name") == "SkyLine Voice"
    assert _one(tree, seller + "cac:PartyLegalEntity/cbc:RegistrationName") == (
        "Reseller A Telecom GmbH"
    )
    assert _one(tree, "cac:PaymentMeans/cac:PayeeFinancialAccount/cbc:ID") == (
        "DE02120300000000202051"
    )
    assert _one(tree, "cbc:ID") == "RA-2026-000001"
    assert _amounts(tree)["PayableAmount"] == "11.31 EUR"  # 9.50 + 1.805 -> 1.81


def test_credit_note_references_its_invoice_and_credits_positive_amounts():
    tree = _xml(ALL["credit_note"]())
    assert tree.tag == "{urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2}CreditNote"
    assert _one(tree, "cbc:CreditNoteTypeCode") == "381"
    assert _one(tree, "cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID") == (
        "INV-2026-000001"
    )
    assert _all(tree, "cbc:DueDate | cbc:InvoiceTypeCode | cac:InvoiceLine") == []
    assert _one(tree, "cbc:Note") == "Credit note for invoice INV-2026-000001: Disputed India calls"
    assert _all(tree, "cac:CreditNoteLine/cbc:CreditedQuantity") == ["1"]
    assert _all(tree, "cac:CreditNoteLine/cbc:CreditedQuantity/@unitCode") == ["C62"]
    assert _all(tree, "cac:CreditNoteLine/cbc:LineExtensionAmount") == ["10.00"]
    assert _all(tree, "cac:TaxTotal/cbc:TaxAmount") == ["1.90"]
    assert _amounts(tree) == {
        "LineExtensionAmount": "10.00 EUR",
        "TaxExclusiveAmount": "10.00 EUR",
        "TaxInclusiveAmount": "11.90 EUR",
        "PayableAmount": "11.90 EUR",
    }
    assert _all(tree, "cac:PaymentMeans/cbc:PaymentMeansCode") == ["97"]


def test_price_differences_are_line_charges_and_allowances_and_negative_lines_flip_quantity():
    invoice = connect_fees_invoice()
    tree = _xml(invoice)
    lines = {_one(line, "cac:Item/cbc:Name"): line for line in tree.findall("cac:InvoiceLine", NS)}
    spain = lines["Spain Mobile"]
    assert _all(spain, "cbc:InvoicedQuantity | cbc:LineExtensionAmount") == ["100", "1.30"]
    assert _all(spain, "cac:AllowanceCharge/cbc:ChargeIndicator") == ["true"]
    assert _all(spain, "cac:AllowanceCharge/cbc:Amount") == ["0.30"]
    italy = lines["Italy Fixed"]
    assert _all(italy, "cbc:InvoicedQuantity | cbc:LineExtensionAmount") == ["333.3333", "4.98"]
    assert _all(italy, "cac:AllowanceCharge/cbc:ChargeIndicator") == ["false"]
    assert _all(italy, "cac:AllowanceCharge/cbc:Amount") == ["0.02"]  # 5.00 - 4.98
    assert _all(lines["Austria Fixed"], "cac:AllowanceCharge") == []  # 2.5 x 0.0033 = 0.00825
    rerated = lines["Adjustments to earlier periods (re-rating, late calls)"]
    assert _all(rerated, "cbc:InvoicedQuantity | cbc:LineExtensionAmount") == ["-1", "-0.25"]
    assert _one(rerated, "cac:Price/cbc:PriceAmount") == "0.25"
    rounding = lines["Rounding"]
    # 1.30 + 4.975 + 0.00825 + 2.005 - 0.25 = 8.03825 -> 8.04; the lines: 8.05
    assert _all(rounding, "cbc:InvoicedQuantity | cbc:LineExtensionAmount") == ["-1", "-0.01"]
    assert _one(rounding, "cac:Price/cbc:PriceAmount") == "0.01"
    assert _amounts(tree)["LineExtensionAmount"] == "8.04 EUR" == f"{invoice.subtotal} EUR"


def test_a_german_sellers_invoice_in_dollars_states_the_vat_in_euros_too():
    tree = _xml(usd_invoice())
    assert (_one(tree, "cbc:DocumentCurrencyCode"), _one(tree, "cbc:TaxCurrencyCode")) == (
        "USD",
        "EUR",
    )
    totals = tree.findall("cac:TaxTotal/cbc:TaxAmount", NS)
    # 200.00 EUR x 1.0815 = 216.30 USD; 19 % = 41.097 -> 41.10 USD = 38.0028 -> 38.00 EUR
    assert [(t.text, t.get("currencyID")) for t in totals] == [("41.10", "USD"), ("38.00", "EUR")]


def test_a_prepaid_invoice_is_paid_already():
    assert _amounts(_xml(prepaid_invoice())) == {
        "LineExtensionAmount": "7.00 EUR",
        "TaxExclusiveAmount": "7.00 EUR",
        "TaxInclusiveAmount": "8.33 EUR",
        "PrepaidAmount": "8.33 EUR",
        "PayableAmount": "0.00 EUR",
    }


def test_the_builder_needs_no_lxml_or_saxon():
    """The Lambda ships without them: lxml and saxonche are test-only (the dev extra)."""
    tree = ast.parse(Path(ubl.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (
            node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")]
        )
    }
    assert imported == {"__future__", "xml", "decimal", "functions"}
