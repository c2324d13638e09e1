"""Who an API caller is and which accounts it may see (plain Python, no AWS).

A key at tenant level sees its tenant; a key with an account sees that account's subtree
(a reseller's customers, their customers...), a customer key its own account alone. Suppliers
hold the carrier's costs: only the carrier's own roles (tenant-admin, finance) see them.
What a caller is shown of an account (`account_view`) depends on its role in the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from functions.shared.money import AMOUNT_SCALE, units_to_str

CARRIER_ROLES = frozenset({"tenant-admin", "finance"})  # the carrier itself: suppliers too
SUBTREE_ROLES = frozenset({"reseller-admin", "read-only"})  # with an account: its subtree


class AccountLike(Protocol):
    tenant: str
    account: str
    kind: str
    parent: str | None
    prepaid: bool
    credit_limit_micro: int
    currency: str
    status: str
    status_reason: str | None


@dataclass(frozen=True, slots=True)
class Caller:
    """The key a request presented, as the routes need it."""

    tenant: str
    key_id: str
    role: str
    account: str | None  # None: tenant level

    @property
    def tenant_level(self) -> bool:
        return self.account is None


def visible(caller: Caller, accounts: Iterable[AccountLike]) -> list[AccountLike]:
    """The accounts the caller may see, ordered by account id (the API's paging order)."""
    own = [a for a in accounts if a.tenant == caller.tenant]
    if caller.account is None:
        if caller.role in CARRIER_ROLES:
            seen = own
        elif caller.role == "read-only":
            seen = [a for a in own if a.kind != "supplier"]
        else:  # a reseller-admin or customer key always has an account: one without sees nothing
            seen = []
    elif caller.role == "customer":
        seen = [a for a in own if a.account == caller.account and a.kind != "supplier"]
    elif caller.role in SUBTREE_ROLES:
        seen = _subtree(caller.account, own)
    else:  # tenant-wide roles never hold an account (keys.check_role): such a key sees nothing
        seen = []
    return sorted(seen, key=lambda a: a.account)


def _subtree(root: str, accounts: Sequence[AccountLike]) -> list[AccountLike]:
    by_id = {a.account: a for a in accounts}
    if root not in by_id or by_id[root].kind == "supplier":
        return []
    children: dict[str, list[str]] = {}
    for a in accounts:
        if a.parent is not None:
            children.setdefault(a.parent, []).append(a.account)
    found, todo = {root}, [root]
    while todo:  # `found` also guards against a parent cycle in corrupt data
        for child in children.get(todo.pop(), ()):
            if child not in found and by_id[child].kind != "supplier":
                found.add(child)
                todo.append(child)
    return [by_id[name] for name in found]


def find_visible(
    caller: Caller, account_id: str, accounts: Iterable[AccountLike]
) -> AccountLike | None:
    """The account if the caller may see it; None whether it is hidden or does not exist, so
    an answer never tells which."""
    return next((a for a in visible(caller, accounts) if a.account == account_id), None)


def find_known(
    caller: Caller, account_id: str, known: Mapping[str, AccountLike]
) -> tuple[bool, AccountLike | None]:
    """(decided, the account if the caller may see it) from the accounts at hand: the
    requested one and the caller's own (by id; absent: it does not exist). Undecided only for
    an account deeper in a reseller's subtree than its direct customers, whose ancestors are
    not at hand: then `find_visible` over the tenant's accounts decides. Where it decides,
    it decides as `find_visible` does."""
    target = known.get(account_id)
    if target is None or target.tenant != caller.tenant:
        return True, None
    if caller.account is None:
        if caller.role in CARRIER_ROLES:
            return True, target
        shown = caller.role == "read-only" and target.kind != "supplier"
        return True, target if shown else None
    if caller.role == "customer":
        own = account_id == caller.account and target.kind != "supplier"
        return True, target if own else None
    if caller.role not in SUBTREE_ROLES:
        return True, None
    root = known.get(caller.account)
    if root is None or root.tenant != caller.tenant or root.kind == "supplier":
        return True, None
    if target.kind == "supplier" or target.parent is None:
        return True, target if account_id == caller.account else None
    if account_id == caller.account or target.parent == caller.account:
        return True, target
    return False, None


def can_read_account(caller: Caller, account_id: str, accounts: Iterable[AccountLike]) -> bool:
    return find_visible(caller, account_id, accounts) is not None


def account_view(account: AccountLike, caller: Caller) -> dict[str, Any]:
    """An account as the caller sees it. Below tenant level: no status reason (it may name
    fraud rules or the carrier's dealings) and no parent above the caller's own account (the
    reseller above it is not its business)."""
    parent = account.parent
    if not caller.tenant_level and account.account == caller.account:
        parent = None
    view: dict[str, Any] = {
        "account": account.account,
        "kind": account.kind,
        "parent": parent,
        "prepaid": bool(account.prepaid),
        "credit_limit": units_to_str(account.credit_limit_micro, AMOUNT_SCALE),
        "currency": account.currency,
        "status": account.status,
    }
    if caller.tenant_level:
        view["status_reason"] = account.status_reason
    return view


def balance_view(account: AccountLike, balance_micro: int, reserved_micro: int) -> dict[str, Any]:
    return {
        "account": account.account,
        "currency": account.currency,
        "balance": units_to_str(balance_micro, AMOUNT_SCALE),
        "reserved": units_to_str(reserved_micro, AMOUNT_SCALE),
    }
