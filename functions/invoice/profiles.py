"""Billing profiles: who an invoice is from and to, its cycle, terms, currency and tax. Pure.

Every account a carrier invoices has a profile (the buyer's side), and so has every issuer:
the tenant itself (the carrier) and each reseller, which issues its own customers' invoices
under its own name and brand (white label). An invoice is issued with whatever the profiles
hold; `einvoice_gaps` names what a valid EN 16931 / Peppol e-invoice needs and is missing, so
the run reports it per account instead of guessing a VAT id or an address.

Tax treatment is effective-dated: a profile keeps every treatment with the day it starts, and
an invoice takes the one in force on its period's last day (the tax point of a periodic
supply), snapshotted onto the invoice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from functions.invoice.cycles import check_cycle

TREATMENTS = ("standard", "reverse_charge", "exempt")
# UNCL5305 tax categories as EN 16931 names them.
CATEGORY = {"standard": "S", "reverse_charge": "AE", "exempt": "E"}
NOT_SUBJECT = "O"  # no treatment on file: "services outside scope of tax" until one is set
# Council Directive 2006/112/EC: the customer accounts for the VAT (Art. 196), and the invoice
# must say so in these words (Art. 226(11a)).
REVERSE_CHARGE_TEXT = "Reverse charge"
REVERSE_CHARGE_REFERENCE = "VAT reverse charge: Art. 196 Council Directive 2006/112/EC"
EXEMPTION_CODES = {"reverse_charge": "VATEX-EU-AE"}  # exempt: the certificate's text (BR-E-10)
DEFAULT_SERIES = "INV"
CREDIT_SERIES = "CN"
DEFAULT_TERMS_DAYS = 30
_COUNTRY = re.compile(r"[A-Z]{2}")
_SERIES = re.compile(r"[A-Z0-9]{1,10}")
_VAT_ID = re.compile(r"[A-Z]{2}[A-Z0-9+*.]{2,13}")
_IBAN = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE = re.compile(r"\+?[0-9 ()/-]{3,30}")


@dataclass(frozen=True, slots=True)
class TaxTreatment:
    """How an account's invoices are taxed from `since` on."""

    treatment: str  # standard | reverse_charge | exempt
    rate: Decimal  # percent; 0 unless standard
    since: dt.date
    certificate: str | None = None  # exempt: the exemption certificate on file

    @property
    def category(self) -> str:
        return CATEGORY[self.treatment]

    @property
    def exemption_code(self) -> str | None:
        return EXEMPTION_CODES.get(self.treatment)

    @property
    def exemption_reason(self) -> str | None:
        if self.treatment == "reverse_charge":
            return REVERSE_CHARGE_TEXT
        if self.treatment == "exempt":
            return f"Exempt: certificate {self.certificate}" if self.certificate else "Exempt"
        return None


def parse_tax(text: str, since: dt.date, certificate: str | None = None) -> TaxTreatment:
    """`standard:RATE`, `reverse_charge` or `exempt` (the CLI's --tax) from `since` on."""
    kind, _, rate_text = str(text).partition(":")
    if kind not in TREATMENTS:
        raise ValueError(
            f"invalid --tax {text!r}: use standard:RATE (percent), reverse_charge or exempt"
        )
    if kind == "standard":
        try:
            rate = Decimal(rate_text)
        except InvalidOperation:
            rate = Decimal(-1)
        if not rate.is_finite() or not Decimal(0) <= rate <= Decimal(100) or rate_text == "":
            raise ValueError(f"invalid --tax {text!r}: the rate is a percent from 0 to 100")
        if rate.as_tuple().exponent < -2:  # type: ignore[operator]
            raise ValueError(f"invalid --tax {text!r}: at most 2 decimals")
    elif rate_text:
        raise ValueError(f"invalid --tax {text!r}: {kind} takes no rate")
    else:
        rate = Decimal(0)
    if certificate is not None and kind != "exempt":
        raise ValueError("an exemption certificate goes with --tax exempt only")
    return TaxTreatment(kind, rate, since, certificate)


@dataclass(frozen=True, slots=True)
class BillingProfile:
    """An account's (or, with account None, the tenant's own) billing details."""

    tenant: str
    account: str | None  # None: the tenant's own profile, the carrier as issuer
    legal_name: str | None = None
    address: str | None = None
    city: str | None = None
    postcode: str | None = None
    country: str | None = None  # ISO 3166-1 alpha-2
    email: str | None = None
    vat_id: str | None = None
    iban: str | None = None  # an issuer's account for payment instructions
    cycle: str = "monthly"
    terms_days: int = DEFAULT_TERMS_DAYS
    currency: str | None = None  # None: the account's own currency, no conversion
    series: str | None = None  # an issuer's invoice number prefix (None: INV)
    timezone: str | None = None  # None: the tenant's time zone
    brand: str | None = None  # name printed at the top (None: legal name)
    taxes: tuple[TaxTreatment, ...] = ()  # ordered by `since`
    phone: str | None = None  # the billing contact's; Peppol's German rules want it (DE-R-006)

    def tax_on(self, day: dt.date) -> TaxTreatment | None:
        """The treatment in force on `day` (None: none set then)."""
        current = None
        for treatment in self.taxes:
            if treatment.since <= day:
                current = treatment
        return current

    @property
    def display_name(self) -> str:
        return self.brand or self.legal_name or (self.account or self.tenant)

    def with_tax(self, treatment: TaxTreatment) -> BillingProfile:
        """The profile with `treatment` from its day on (a treatment of the same day replaced)."""
        kept = [t for t in self.taxes if t.since != treatment.since]
        return dataclasses.replace(
            self, taxes=tuple(sorted([*kept, treatment], key=lambda t: t.since))
        )


PROFILE_FIELDS = (
    "legal_name",
    "address",
    "city",
    "postcode",
    "country",
    "email",
    "vat_id",
    "iban",
    "cycle",
    "terms_days",
    "currency",
    "series",
    "timezone",
    "brand",
    "phone",
)


def check_profile(profile: BillingProfile) -> BillingProfile:
    """The profile if every field it holds is well formed; ValueError naming the field."""
    if profile.country is not None and not _COUNTRY.fullmatch(profile.country):
        raise ValueError(f"invalid --country {profile.country!r}: an ISO 3166 code such as DE")
    if profile.vat_id is not None and not _VAT_ID.fullmatch(profile.vat_id):
        raise ValueError(
            f"invalid --vat-id {profile.vat_id!r}: country prefix and number, e.g. DE123456789"
        )
    if profile.iban is not None and not _IBAN.fullmatch(profile.iban):
        raise ValueError(f"invalid --iban {profile.iban!r}: capitals and digits, no spaces")
    if profile.email is not None and not _EMAIL.fullmatch(profile.email):
        raise ValueError(f"invalid --email {profile.email!r}")
    if profile.phone is not None and (
        not _PHONE.fullmatch(profile.phone) or sum(c.isdigit() for c in profile.phone) < 3
    ):  # three digits at least, as Peppol's German rules check (DE-R-027)
        raise ValueError(f"invalid --phone {profile.phone!r}: digits, spaces, + ( ) / -")
    if profile.series is not None and not _SERIES.fullmatch(profile.series):
        raise ValueError(f"invalid --series {profile.series!r}: 1-10 capitals or digits")
    if profile.currency is not None and not re.fullmatch(r"[A-Z]{3}", profile.currency):
        raise ValueError(f"invalid --currency {profile.currency!r}: an ISO 4217 code")
    if isinstance(profile.terms_days, bool) or not 0 <= profile.terms_days <= 365:
        raise ValueError(f"invalid --terms-days {profile.terms_days!r}: 0 to 365")
    check_cycle(profile.cycle)
    for name in ("legal_name", "address", "city", "postcode", "brand"):
        value = getattr(profile, name)
        if value is not None and not 0 < len(value) <= 200:
            raise ValueError(f"invalid --{name.replace('_', '-')}: 1 to 200 characters")
    return profile


def einvoice_gaps(
    seller: BillingProfile, buyer: BillingProfile, tax: TaxTreatment | None
) -> tuple[str, ...]:
    """What a valid EN 16931 / Peppol BIS 3.0 invoice needs that the profiles do not hold.

    Names like `seller.vat_id` (the rule that needs it in the comment), in a fixed order.
    """
    gaps = []
    for side, profile in (("seller", seller), ("buyer", buyer)):
        if not profile.legal_name:
            gaps.append(f"{side}.legal_name")  # BR-06, BR-07
        if not profile.country:
            gaps.append(f"{side}.country")  # BR-09, BR-11
        if not profile.email:
            gaps.append(f"{side}.email")  # the contact's e-mail (BT-43/BT-58; DE-R-007)
        if not profile.vat_id:
            # PEPPOL-EN16931-R020/R010: the Peppol address is the VAT number under its
            # country's EAS scheme (9930 DE, 9957 FR, ...): Peppol has no e-mail scheme
            # (CL008). Also BR-S-02, BR-AE-02 (both parties' ids), BR-E-02.
            gaps.append(f"{side}.vat_id")
    if seller.country == buyer.country == "DE" and not seller.phone:
        gaps.append("seller.phone")  # DE-R-006: a domestic German invoice
    if tax is None:
        gaps.append("buyer.tax")  # no treatment: category O, which forbids VAT ids (BR-O-02)
    elif tax.treatment == "exempt" and not tax.certificate:
        gaps.append("buyer.tax.certificate")
    if not seller.iban:
        gaps.append("seller.iban")  # BR-61: credit transfer needs the payee's account
    return tuple(gaps)


def merge(profile: BillingProfile, changes: Sequence[tuple[str, object]]) -> BillingProfile:
    """The profile with the given fields set (None leaves a field as it was)."""
    wanted = {name: value for name, value in changes if value is not None}
    unknown = set(wanted) - set(PROFILE_FIELDS)
    if unknown:
        raise ValueError(f"unknown profile field(s): {', '.join(sorted(unknown))}")
    return check_profile(dataclasses.replace(profile, **wanted))
