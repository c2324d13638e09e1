"""The e-invoice: an invoice or credit note as UBL 2.1 XML, Peppol BIS Billing 3.0. Pure.

Built with the standard library's ElementTree so the Lambda needs no lxml; the tests check
every sample against the OASIS XSD, the CEN EN 16931 rules and the Peppol rules
(tests/data/einvoice). Element order is the XSD's, which is fixed. The same invoice always
gives the same bytes: no clock, no random ids, attributes in insertion order.

Choices the rules leave open (the invoicing reference, §1, names the rules):
- Electronic address (BT-34/BT-49, PEPPOL-EN16931-R020/R010): Peppol's EAS list has no
  e-mail scheme (EM fails PEPPOL-EN16931-CL008), so a party's address is its VAT number
  under its country's VAT scheme (9930 for DE, 9957 for FR, 9932 for GB, ...). A party
  without one falls back to EM and its e-mail, valid EN 16931 but not Peppol; its VAT id is
  then one of the invoice's gaps. The e-mail is also stated as the party's contact.
- One document note (PEPPOL-EN16931-R002 allows one unless both parties are German): the
  invoice's notes, the credit note's reason and the FX rate, one per text line.
- A line the draft prices negatively (the Rounding line, a negative re-rating difference) is
  quantity -1 at a positive price: an item price may not be negative (BR-27).
- A line's price difference (connect fees, minimums, per-call rounding beyond minutes x rate)
  is a line charge, or allowance when negative, so that line amount = quantity x price +
  charges - allowances (PEPPOL-EN16931-R120).
- VAT in the seller's national currency (BT-6/BT-111, Art. 230 Directive 2006/112/EC): when
  the invoice's currency is not the seller's and the invoice's one FX rate converts from the
  national currency, the VAT is also stated in it, at that rate. Otherwise it is not: the
  rate to state it at is not on the invoice (EN 16931 does not require BT-6).
- Payment: credit transfer to the seller's IBAN, code 58 (SEPA) in euros, else 30, with the
  invoice number as the remittance reference; without an IBAN no payment means (BR-61 would
  fail; the gap is `seller.iban`). A credit note is settled against the account's invoices:
  code 97, clearing between partners.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from decimal import Decimal

from functions.invoice.drafts import CENT, Invoice, Line, Party, TaxLine, cents

CUSTOMIZATION_ID = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
PROFILE_ID = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
INVOICE_TYPE = "380"  # UNCL1001 commercial invoice
CREDIT_NOTE_TYPE = "381"  # UNCL1001 credit note
SEPA_CREDIT_TRANSFER = "58"  # UNCL4461
CREDIT_TRANSFER = "30"
CLEARING = "97"  # UNCL4461 "clearing between partners"
EMAIL_SCHEME = "EM"  # CEN's EAS list has it, Peppol's does not
_NS = {
    "invoice": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
    "credit_note": "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2",
}
_CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
_CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
# Peppol EAS schemes whose identifier is a VAT number, by the VAT id's prefix (Peppol's
# structure/codelist/eas.xml, BIS 3.0.19). Greece's VAT ids start with EL.
VAT_SCHEMES = {
    "AD": "9922", "AL": "9923", "AT": "9914", "BA": "9924", "BE": "9925", "BG": "9926",
    "CH": "9927", "CY": "9928", "CZ": "9929", "DE": "9930", "EE": "9931", "EL": "9933",
    "ES": "9920", "FR": "9957", "GB": "9932", "HR": "9934", "HU": "9910", "IE": "9935",
    "LI": "9936", "LT": "9937", "LU": "9938", "LV": "9939", "MC": "9940", "ME": "9941",
    "MK": "9942", "MT": "9943", "NL": "9944", "PL": "9945", "PT": "9946", "RO": "9947",
    "RS": "9948", "SI": "9949", "SK": "9950", "SM": "9951", "TR": "9952", "VA": "9953",
}  # fmt: skip
# The currency VAT is accounted in, by the seller's country (EU, and the UK). Bulgaria has
# had the euro since 1 January 2026.
_EURO = ("AT", "BE", "BG", "CY", "DE", "EE", "ES", "FI", "FR", "GR", "HR", "IE", "IT", "LT",
         "LU", "LV", "MT", "NL", "PT", "SI", "SK")  # fmt: skip
VAT_CURRENCY = {
    **dict.fromkeys(_EURO, "EUR"),
    "CZ": "CZK", "DK": "DKK", "HU": "HUF", "PL": "PLN", "RO": "RON", "SE": "SEK", "GB": "GBP",
}  # fmt: skip
NOT_SUBJECT = "O"  # BR-O-02/-05/-09: no VAT ids, no rates
CHARGE_REASON = "Per-call charges beyond minutes x rate (connect fees, minimums, rounding)"
ALLOWANCE_REASON = "Per-call rounding below minutes x rate"


def invoice_xml(invoice: Invoice) -> bytes:
    """The UBL 2.1 document of `invoice`: an Invoice (380), or a CreditNote (381) for a
    credit note. Missing profile fields (invoice.gaps) leave their elements out."""
    credit = invoice.kind == "credit_note"
    if invoice.kind not in _NS:
        raise ValueError(f"unknown invoice kind {invoice.kind!r}")
    if len(invoice.taxes) != 1:
        # Lines carry no category of their own: a draft taxes all of them one way.
        raise ValueError(
            f"{invoice.number}: one tax category per invoice, not {len(invoice.taxes)}"
        )
    # Tags are written prefixed and the namespaces declared on the root as plain attributes:
    # ElementTree prints them as given, with no global ET.register_namespace and no ns0:.
    root = ET.Element("CreditNote" if credit else "Invoice")
    root.set("xmlns", _NS[invoice.kind])
    root.set("xmlns:cac", _CAC)
    root.set("xmlns:cbc", _CBC)
    _text(root, "cbc:CustomizationID", CUSTOMIZATION_ID)
    _text(root, "cbc:ProfileID", PROFILE_ID)
    _text(root, "cbc:ID", invoice.number or "DRAFT")  # a draft's preview: numbers come at issue
    _text(root, "cbc:IssueDate", invoice.issue_date.isoformat())
    if credit:
        _text(root, "cbc:CreditNoteTypeCode", CREDIT_NOTE_TYPE)
    else:
        _text(root, "cbc:DueDate", invoice.due_date.isoformat())
        _text(root, "cbc:InvoiceTypeCode", INVOICE_TYPE)
    note = _note(invoice)
    if note:
        _text(root, "cbc:Note", note)
    _text(root, "cbc:DocumentCurrencyCode", invoice.currency)
    tax_currency = _tax_currency(invoice)
    if tax_currency is not None:
        _text(root, "cbc:TaxCurrencyCode", tax_currency[0])
    _text(root, "cbc:BuyerReference", invoice.account)
    period = ET.SubElement(root, "cac:InvoicePeriod")
    _text(period, "cbc:StartDate", invoice.period_from.isoformat())
    _text(period, "cbc:EndDate", invoice.period_to.isoformat())
    if credit and invoice.credits:
        reference = ET.SubElement(ET.SubElement(root, "cac:BillingReference"),
                                  "cac:InvoiceDocumentReference")  # fmt: skip
        _text(reference, "cbc:ID", invoice.credits)
    taxed = all(t.category != NOT_SUBJECT for t in invoice.taxes)
    _party(root, "cac:AccountingSupplierParty", invoice.seller, taxed, invoice.brand)
    _party(root, "cac:AccountingCustomerParty", invoice.buyer, taxed, None)
    if credit:
        # Settled against the account's invoices; German rules want payment means on every
        # document (DE-R-001), and "clearing between partners" is what a credit note is.
        _text(ET.SubElement(root, "cac:PaymentMeans"), "cbc:PaymentMeansCode", CLEARING)
    elif invoice.seller.iban:
        means = ET.SubElement(root, "cac:PaymentMeans")
        code = SEPA_CREDIT_TRANSFER if invoice.currency == "EUR" else CREDIT_TRANSFER
        _text(means, "cbc:PaymentMeansCode", code)
        if invoice.number:
            _text(means, "cbc:PaymentID", invoice.number)
        _text(ET.SubElement(means, "cac:PayeeFinancialAccount"), "cbc:ID", invoice.seller.iban)
    terms = ET.SubElement(root, "cac:PaymentTerms")
    if credit:
        _text(terms, "cbc:Note", "Credited against the account's open or next invoices")
    else:
        _text(terms, "cbc:Note", f"Net {invoice.terms_days} days")
    _tax_total(root, invoice)
    if tax_currency is not None:
        total = ET.SubElement(root, "cac:TaxTotal")
        _amount(total, "cbc:TaxAmount", tax_currency[1], tax_currency[0])
    _monetary_total(root, invoice)
    for number, line in enumerate(invoice.lines, start=1):
        _line(root, number, line, invoice)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


def _text(parent: ET.Element, tag: str, text: str, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    element.text = text
    return element


def _decimal(value: Decimal) -> str:
    """Without trailing zeros and never in exponent form (12500, 0.00414585)."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _money(value: Decimal) -> str:
    """Two decimals (BR-DEC-*); the draft's amounts are cents already, so nothing rounds."""
    rounded = value.quantize(CENT)
    if rounded != value:
        raise ValueError(f"{value} is not an amount in cents")
    return str(abs(rounded) if rounded == 0 else rounded)


def _amount(parent: ET.Element, tag: str, value: Decimal, currency: str) -> None:
    _text(parent, tag, _money(value), currencyID=currency)


def _note(invoice: Invoice) -> str:
    notes = list(invoice.notes)
    if invoice.kind == "credit_note" and invoice.reason:
        notes.append(f"Credit note for invoice {invoice.credits}: {invoice.reason}")
    if invoice.conversion is not None:
        fx = invoice.conversion
        notes.append(
            f"Charges in {fx.source_currency} converted at {_decimal(fx.rate)} "
            f"{fx.target_currency} per {fx.source_currency} ({fx.source}, {fx.day.isoformat()})"
        )
    return "\n".join(notes)


def _tax_currency(invoice: Invoice) -> tuple[str, Decimal] | None:
    """The seller's VAT currency and the VAT in it, when it must and can be stated."""
    national = VAT_CURRENCY.get(invoice.seller.country or "")
    fx = invoice.conversion
    if national is None or national == invoice.currency:
        return None
    if fx is None or fx.source_currency != national or fx.target_currency != invoice.currency:
        return None
    return national, cents(invoice.tax_total / fx.rate)


def _endpoint(party: Party) -> tuple[str, str] | None:
    if party.vat_id and party.vat_id[:2] in VAT_SCHEMES:
        return VAT_SCHEMES[party.vat_id[:2]], party.vat_id
    if party.email:
        return EMAIL_SCHEME, party.email
    return None


def _party(root: ET.Element, tag: str, party: Party, taxed: bool, trading_name: str | None) -> None:
    element = ET.SubElement(ET.SubElement(root, tag), "cac:Party")
    endpoint = _endpoint(party)
    if endpoint is not None:
        _text(element, "cbc:EndpointID", endpoint[1], schemeID=endpoint[0])
    if trading_name and trading_name != party.name:
        _text(ET.SubElement(element, "cac:PartyName"), "cbc:Name", trading_name)
    fields = (
        ("cbc:StreetName", party.address),
        ("cbc:CityName", party.city),
        ("cbc:PostalZone", party.postcode),
    )
    if party.country or any(value for _, value in fields):  # never an empty element (R008)
        address = ET.SubElement(element, "cac:PostalAddress")
        for name, value in fields:
            if value:
                _text(address, name, value)
        if party.country:
            _text(ET.SubElement(address, "cac:Country"), "cbc:IdentificationCode", party.country)
    if party.vat_id and taxed:  # category O forbids VAT ids (BR-O-02)
        scheme = ET.SubElement(element, "cac:PartyTaxScheme")
        _text(scheme, "cbc:CompanyID", party.vat_id)
        _text(ET.SubElement(scheme, "cac:TaxScheme"), "cbc:ID", "VAT")
    _text(ET.SubElement(element, "cac:PartyLegalEntity"), "cbc:RegistrationName", party.name)
    if party.email or party.phone:
        # The contact point is the party itself: the profile names no person or department,
        # and a domestic German invoice needs one (DE-R-005), with a phone (DE-R-006).
        contact = ET.SubElement(element, "cac:Contact")
        _text(contact, "cbc:Name", party.name)
        if party.phone:
            _text(contact, "cbc:Telephone", party.phone)
        if party.email:
            _text(contact, "cbc:ElectronicMail", party.email)


def _category(parent: ET.Element, tag: str, tax: TaxLine, *, breakdown: bool) -> None:
    category = ET.SubElement(parent, tag)
    _text(category, "cbc:ID", tax.category)
    if breakdown or tax.category != NOT_SUBJECT:  # an O line has no rate (BR-O-05), its
        # breakdown 0 (German rules want one there, DE-R-014)
        _text(category, "cbc:Percent", _decimal(tax.rate))
    if breakdown and tax.exemption_code:  # the exemption goes on the breakdown (BR-AE-10)
        _text(category, "cbc:TaxExemptionReasonCode", tax.exemption_code)
    if breakdown and tax.exemption_reason:
        _text(category, "cbc:TaxExemptionReason", tax.exemption_reason)
    _text(ET.SubElement(category, "cac:TaxScheme"), "cbc:ID", "VAT")


def _tax_total(root: ET.Element, invoice: Invoice) -> None:
    total = ET.SubElement(root, "cac:TaxTotal")
    _amount(total, "cbc:TaxAmount", invoice.tax_total, invoice.currency)
    for tax in invoice.taxes:
        subtotal = ET.SubElement(total, "cac:TaxSubtotal")
        _amount(subtotal, "cbc:TaxableAmount", tax.taxable, invoice.currency)
        _amount(subtotal, "cbc:TaxAmount", tax.amount, invoice.currency)
        _category(subtotal, "cac:TaxCategory", tax, breakdown=True)


def _monetary_total(root: ET.Element, invoice: Invoice) -> None:
    """Lines add up to the subtotal; no document-level allowances or charges. A credit
    note's payable amount is what it credits; a prepaid invoice's is nothing (BR-CO-16)."""
    total = ET.SubElement(root, "cac:LegalMonetaryTotal")
    line_total = sum((line.amount for line in invoice.lines), Decimal(0))
    payable = invoice.total if invoice.kind == "credit_note" else invoice.amount_due
    _amount(total, "cbc:LineExtensionAmount", line_total, invoice.currency)
    _amount(total, "cbc:TaxExclusiveAmount", invoice.subtotal, invoice.currency)
    _amount(total, "cbc:TaxInclusiveAmount", invoice.total, invoice.currency)
    if payable != invoice.total:
        _amount(total, "cbc:PrepaidAmount", invoice.total - payable, invoice.currency)
    _amount(total, "cbc:PayableAmount", payable, invoice.currency)


def _line(root: ET.Element, number: int, line: Line, invoice: Invoice) -> None:
    credit = invoice.kind == "credit_note"
    element = ET.SubElement(root, "cac:CreditNoteLine" if credit else "cac:InvoiceLine")
    _text(element, "cbc:ID", str(number))
    sign = -1 if line.unit_price < 0 else 1  # the price stays positive (BR-27)
    quantity_tag = "cbc:CreditedQuantity" if credit else "cbc:InvoicedQuantity"
    _text(element, quantity_tag, _decimal(sign * line.quantity), unitCode=line.unit)
    _amount(element, "cbc:LineExtensionAmount", line.amount, invoice.currency)
    difference = line.price_difference
    if difference:
        charge = ET.SubElement(element, "cac:AllowanceCharge")
        _text(charge, "cbc:ChargeIndicator", "true" if difference > 0 else "false")
        _text(charge, "cbc:AllowanceChargeReason",
              CHARGE_REASON if difference > 0 else ALLOWANCE_REASON)  # fmt: skip
        _amount(charge, "cbc:Amount", abs(difference), invoice.currency)
    item = ET.SubElement(element, "cac:Item")
    _text(item, "cbc:Name", line.description)
    _category(item, "cac:ClassifiedTaxCategory", invoice.taxes[0], breakdown=False)
    price = ET.SubElement(element, "cac:Price")
    _text(price, "cbc:PriceAmount", _decimal(sign * line.unit_price), currencyID=invoice.currency)
