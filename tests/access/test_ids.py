"""One id rule (functions.shared.ids) for store keys, lake prefixes, IAM names and lake SQL.

The rule stood in three copies (store, policies, lake_sql); each place must refuse exactly
what the others refuse, or one tenant's id could reach further in one of them.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from functions.invoice import lake_sql
from functions.shared import policies
from functions.shared.ids import check_name, check_token
from functions.store import lake


def _outcome(check) -> str:
    try:
        check()
    except ValueError as error:
        return str(error)
    return "ok"


@settings(max_examples=150, deadline=None)
@given(tenant=st.text(st.sampled_from("aZ09_.-#/=*?${} é"), max_size=66))
@example(tenant="a" * 64)
@example(tenant="a" * 65)
def test_every_place_that_takes_a_tenant_id_refuses_the_same_ids_with_the_same_words(tenant):
    expected = _outcome(lambda: check_name("tenant", tenant))
    assert _outcome(lambda: lake_sql.check_tenant(tenant)) == expected
    assert _outcome(lambda: policies.lake_prefixes(tenant)) == expected
    assert _outcome(lambda: policies.results_prefix(tenant)) == expected
    assert _outcome(lambda: lake.table_key("rated", tenant, "2024-05-01", "f1")) == expected


@pytest.mark.parametrize("good", ["acme", "A", "0", "a.b_c-d", "a" * 64])
def test_a_name_of_letters_digits_and_dot_dash_underscore_is_taken(good):
    assert check_name("tenant", good) == good


@pytest.mark.parametrize("bad", ["", "a#b", "a/b", "a=b", "*", "${aws:username}", "-a", "a" * 65])
def test_a_name_that_could_reach_outside_its_tenant_is_refused_by_kind(bad):
    with pytest.raises(ValueError, match=r"^invalid switch id "):
        check_name("switch", bad)


@pytest.mark.parametrize("good", ["sha256:9f2c", "pay-2024.05", "a@b+c", "x" * 128])
def test_a_token_of_its_characters_is_taken(good):
    assert check_token("file id", good) == good


@pytest.mark.parametrize("bad", ["", "a/b", "a#b", "a=b", "a b", "x" * 129])
def test_a_token_with_a_separator_or_too_long_is_refused_by_kind(bad):
    with pytest.raises(ValueError, match=r"^invalid file id "):
        check_token("file id", bad)
