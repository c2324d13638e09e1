"""scope.find_known, the one-read visibility check of the account routes, decides as
scope.find_visible over the tenant's accounts does, wherever it decides at all."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from functions.api import scope
from functions.api.keys import ROLES
from functions.api.scope import Caller
from tests.api.test_scope import TREE, Acct

NAMES = ["A", "B", "C", "D", "E", "F"]


def known_of(accounts, caller, account_id):
    """What the route reads: the requested account and the caller's own, if they exist."""
    wanted = {account_id, caller.account}
    return {a.account: a for a in accounts if a.account in wanted and a.tenant == caller.tenant}


def agree(accounts, caller, account_id) -> bool:
    """Whether find_known decided (asserting it decided as find_visible does)."""
    decided, found = scope.find_known(caller, account_id, known_of(accounts, caller, account_id))
    if decided:
        assert found == scope.find_visible(caller, account_id, accounts), (caller, account_id)
    return decided


def test_on_the_reseller_tree_only_an_account_further_down_is_left_to_the_list():
    by_id = {a.account: a for a in TREE if a.tenant == "acme"}
    undecided = set()
    for role in ROLES:
        for own in [None, "RES_A", "CUST_A1", "RES_B", "DIRECT", "CARRIER_X", "NOBODY"]:
            caller = Caller("acme", "k", role, own)
            for target in [*by_id, "NOBODY"]:
                if not agree(TREE, caller, target):
                    undecided.add((role, own, target))
    # A subtree key asking for an account whose parent is another account (not its own):
    # whether that parent is under the key's account takes the chain above it.
    for role, own, target in undecided:
        assert role in scope.SUBTREE_ROLES and by_id[own].kind != "supplier"
        assert by_id[target].parent not in (None, own) and by_id[target].kind != "supplier"
    assert ("reseller-admin", "RES_A", "CUST_B1") in undecided
    # the reseller's own account and its customers are decided from the one read
    for target in ("RES_A", "CUST_A1", "RES_B", "DIRECT", "CARRIER_X", "SUP_UNDER_A"):
        assert ("reseller-admin", "RES_A", target) not in undecided


trees = st.lists(
    st.builds(
        Acct,
        account=st.sampled_from(NAMES),
        kind=st.sampled_from(["customer", "reseller", "supplier"]),
        parent=st.none() | st.sampled_from(NAMES),  # cycles and dangling parents too
        tenant=st.sampled_from(["acme", "acme", "other"]),
    ),
    max_size=8,
    unique_by=lambda a: (a.tenant, a.account),
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    accounts=trees,
    role=st.sampled_from(ROLES),
    own=st.none() | st.sampled_from(NAMES),
    target=st.sampled_from(NAMES),
)
def test_it_decides_as_find_visible_on_any_tree(accounts, role, own, target):
    agree(accounts, Caller("acme", "k", role, own), target)
