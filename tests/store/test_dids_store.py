"""DIDs in the accounts table and recurring fees in the ledger (issue 10 §4), on moto."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.rate.recurring import Did, RecurringCharge, recurring_for
from functions.shared.money import Rounding, RoundingMethod
from functions.store import ConflictError, NotFoundError, accounts, ledger
from functions.store.ledger import ReferenceConflictError

MARCH_17 = dt.date(2026, 3, 17)
CENTS_HALF_UP = Rounding(2, RoundingMethod.HALF_UP)


def did(number: str = "442071234567", account: str = "acme-cust", **changes) -> Did:
    fields = {
        "monthly_units": 2_000_000,
        "setup_units": 5_000_000,
        "per_minute_e8": 200_000,
        "start": MARCH_17,
    }
    return Did(number=number, account=account, **(fields | changes))


@pytest.fixture
def tenant(aws) -> str:
    accounts.create_tenant("acme")
    accounts.create_account("acme", "acme-cust", kind="customer")
    accounts.create_account("acme", "acme-res", kind="reseller")
    accounts.create_account("acme", "acme-sup", kind="supplier")
    return "acme"


def test_a_did_round_trips_with_its_exact_fees_and_stays_in_its_tenant(tenant):
    accounts.create_tenant("other")
    accounts.create_account("other", "acme-cust", kind="customer")
    wanted = did(monthly_units=123_456_789_012, per_minute_e8=12_345_678)
    assert accounts.add_did(tenant, wanted) == wanted
    assert accounts.list_dids(tenant) == [wanted]
    assert accounts.list_dids("other") == []


def test_list_holds_every_record_released_ones_included_by_number_then_start(tenant):
    first = did(start=dt.date(2026, 1, 1))
    accounts.add_did(tenant, first)
    released = accounts.release_did(tenant, first.number, dt.date(2026, 1, 31))
    again = did(account="acme-res", start=dt.date(2026, 2, 1))
    other = did(number="33142000000", start=dt.date(2025, 12, 1))
    accounts.add_did(tenant, again)
    accounts.add_did(tenant, other)
    assert released.end == dt.date(2026, 1, 31)
    assert accounts.list_dids(tenant) == [other, released, again]


def test_an_overlapping_service_and_the_same_add_twice_are_conflicts(tenant):
    accounts.add_did(tenant, did(start=dt.date(2026, 3, 1), end=dt.date(2026, 3, 31)))
    with pytest.raises(ConflictError, match=r"DID 442071234567 .* overlaps"):
        accounts.add_did(tenant, did(account="acme-res", start=dt.date(2026, 3, 31)))
    with pytest.raises(ConflictError):
        accounts.add_did(tenant, did(start=dt.date(2026, 3, 1), end=dt.date(2026, 3, 31)))
    assert len(accounts.list_dids(tenant)) == 1
    accounts.add_did(tenant, did(account="acme-res", start=dt.date(2026, 4, 1)))
    assert [d.account for d in accounts.list_dids(tenant)] == ["acme-cust", "acme-res"]


def test_the_put_itself_refuses_a_second_record_of_the_same_number_and_day(tenant, monkeypatch):
    """The overlap check reads before it writes; the put's condition holds even when two
    adds of the same record both read before either wrote."""
    accounts.add_did(tenant, did())
    monkeypatch.setattr(accounts, "list_dids", lambda _tenant, _number=None: [])
    with pytest.raises(ConflictError, match="already exists"):
        accounts.add_did(tenant, did(account="acme-res", monthly_units=1))
    monkeypatch.undo()
    assert accounts.list_dids(tenant) == [did()]


def test_only_an_existing_customer_or_reseller_rents_a_did(tenant):
    with pytest.raises(NotFoundError, match="unknown account 'ghost'"):
        accounts.add_did(tenant, did(account="ghost"))
    with pytest.raises(ValueError, match="'acme-sup' is a supplier"):
        accounts.add_did(tenant, did(account="acme-sup"))
    with pytest.raises(NotFoundError, match="unknown account"):
        accounts.add_did("nobody", did())
    assert accounts.list_dids(tenant) == []


def test_release_ends_the_service_in_effect_on_its_day(tenant):
    accounts.add_did(tenant, did(start=dt.date(2026, 1, 1), end=dt.date(2026, 1, 31)))
    accounts.add_did(tenant, did(number="33142000000", end=dt.date(2026, 3, 31)))
    with pytest.raises(NotFoundError, match="33142000000 is not in service on 2026-04-01"):
        accounts.release_did(tenant, "33142000000", dt.date(2026, 4, 1))
    with pytest.raises(NotFoundError):
        accounts.release_did(tenant, "33142000001", dt.date(2026, 3, 20))
    accounts.add_did(tenant, did(account="acme-res", start=dt.date(2026, 3, 1)))
    for before_start in (dt.date(2026, 2, 10), dt.date(2025, 12, 31)):
        with pytest.raises(ValueError, match="442071234567 is in service from 2026-03-01"):
            accounts.release_did(tenant, "442071234567", before_start)
    ended = accounts.release_did(tenant, "442071234567", dt.date(2026, 3, 20))
    assert ended == did(account="acme-res", start=dt.date(2026, 3, 1), end=dt.date(2026, 3, 20))
    assert accounts.release_did(tenant, "442071234567", dt.date(2026, 3, 20)) == ended
    assert accounts.list_dids(tenant)[2] == ended


def test_a_release_of_a_record_changed_since_it_was_read_is_a_conflict(tenant, monkeypatch):
    accounts.add_did(tenant, did())
    as_read = accounts.list_dids(tenant)
    accounts.release_did(tenant, "442071234567", dt.date(2026, 4, 30))
    monkeypatch.setattr(accounts, "list_dids", lambda _tenant, _number=None: as_read)
    with pytest.raises(ConflictError, match="changed meanwhile"):
        accounts.release_did(tenant, "442071234567", dt.date(2026, 3, 31))
    monkeypatch.undo()
    assert accounts.list_dids(tenant)[0].end == dt.date(2026, 4, 30)


# --- recurring fees in the ledger ------------------------------------------------------------


def march_charges(tenant: str) -> list[RecurringCharge]:
    return recurring_for("2026-03", accounts.list_dids(tenant), [], lambda _: CENTS_HALF_UP)


def test_a_recurring_charge_is_owed_once_per_reference(tenant, ledger_clock):
    accounts.add_did(tenant, did())
    charges = march_charges(tenant)
    assert [(c.item, c.amount_units) for c in charges] == [
        ("did:442071234567:monthly", 970_000),  # 2.00 x 15/31 = 0.9677 -> 0.97
        ("did:442071234567:setup", 5_000_000),
    ]
    for charge in charges:
        posted = ledger.record_recurring(tenant, charge, "customer")
        assert posted.recorded
        assert (posted.entry.kind, posted.entry.amount) == ("recurring", -charge.amount_units)
        assert posted.entry.reference == charge.reference
    for charge in march_charges(tenant):
        assert not ledger.record_recurring(tenant, charge, "customer").recorded
    assert ledger.get_balance(tenant, "acme-cust") == (-5_970_000, 0)
    entries = ledger.list_entries(tenant, "acme-cust")
    assert sorted((e.kind, e.amount, e.description) for e in entries) == [
        ("recurring", -5_000_000, "DID 442071234567 setup fee"),
        ("recurring", -970_000, "DID 442071234567 monthly fee 2026-03, 15/31 days"),
    ]


def test_another_amount_under_a_posted_reference_is_refused(tenant, ledger_clock):
    accounts.add_did(tenant, did())
    monthly = march_charges(tenant)[0]
    ledger.record_recurring(tenant, monthly, "reseller")
    changed = RecurringCharge(**{**_fields(monthly), "amount_units": 2_000_000})
    with pytest.raises(ReferenceConflictError, match="already names a recurring of 970000"):
        ledger.record_recurring(tenant, changed, "reseller")
    assert ledger.get_balance(tenant, "acme-cust") == (-970_000, 0)


def test_a_supplier_owes_no_recurring_fee_and_a_fee_is_positive(tenant):
    accounts.add_did(tenant, did())
    monthly = march_charges(tenant)[0]
    with pytest.raises(ValueError, match="supplier"):
        ledger.record_recurring(tenant, monthly, "supplier")
    for amount in (0, -970_000):
        with pytest.raises(ValueError, match="positive"):
            ledger.record_recurring(
                tenant, RecurringCharge(**{**_fields(monthly), "amount_units": amount}), "customer"
            )
    assert ledger.get_balance(tenant, "acme-cust") == (0, 0)


def _fields(charge: RecurringCharge) -> dict:
    return {name: getattr(charge, name) for name in charge.__slots__}


TENANTS = itertools.count()
ROUND = Rounding(3, RoundingMethod.UP)


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    starts=st.lists(st.integers(0, 120), min_size=1, max_size=4, unique=True),
    runs=st.lists(st.sampled_from(["2026-01", "2026-02", "2026-03", "2026-04"]), max_size=8),
)
def test_any_order_of_period_runs_posts_each_period_once(aws, starts, runs):
    """Running periods in any order, any number of times, leaves the balance at the sum of
    each distinct period's fees, to the micro-unit."""
    tenant = f"t{next(TENANTS)}"  # one moto account for every example: a tenant each
    accounts.create_tenant(tenant)
    accounts.create_account(tenant, "acme-cust", kind="customer")
    day0 = dt.date(2026, 1, 1)
    for index, offset in enumerate(sorted(starts)):
        number = f"4420712345{index:02d}"
        accounts.add_did(tenant, did(number=number, start=day0 + dt.timedelta(offset)))
    dids = accounts.list_dids(tenant)
    expected = -sum(
        c.amount_units for period in set(runs) for c in recurring_for(period, dids, [], _round)
    )
    for period in runs:
        for charge in recurring_for(period, accounts.list_dids(tenant), [], _round):
            ledger.record_recurring(tenant, charge, "customer")
    assert ledger.get_balance(tenant, "acme-cust") == (expected, 0)


def _round(_account: str) -> Rounding:
    return ROUND


def test_two_adds_of_overlapping_services_racing_leave_one_owner(tenant, monkeypatch):
    """Two adds from different days both read the number's records before either wrote: each
    passed the overlap check and both were saved, so the number had two owners in April."""
    check = accounts.check_dids
    raced = []

    def check_then_let_the_other_add_land(dids):
        check(dids)
        if not raced:  # the first add has read and checked; the second one lands now
            raced.append(True)
            accounts.add_did(tenant, did(account="acme-res", start=dt.date(2026, 4, 1)))

    monkeypatch.setattr(accounts, "check_dids", check_then_let_the_other_add_land)
    with pytest.raises(ConflictError, match="overlaps"):
        accounts.add_did(tenant, did(start=MARCH_17))
    assert accounts.list_dids(tenant) == [did(account="acme-res", start=dt.date(2026, 4, 1))]


def test_a_did_owner_cannot_become_a_supplier(tenant):
    """update_account let it: its fees then failed to post (a supplier owes no fee)."""
    accounts.add_did(tenant, did())
    with pytest.raises(ConflictError, match="rents DID 442071234567"):
        accounts.update_account(tenant, "acme-cust", {"kind": "supplier"})
    assert accounts.get_account(tenant, "acme-cust").kind == "customer"
    accounts.update_account(tenant, "acme-cust", {"kind": "reseller"})  # still pays for DIDs
    assert accounts.get_account(tenant, "acme-cust").kind == "reseller"
