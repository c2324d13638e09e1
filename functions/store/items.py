"""What the PynamoDB adapters (accounts, files) share: the item base and exact integers."""

from __future__ import annotations

from datetime import UTC, datetime

import pynamodb.connection.base
from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import PutError, UpdateError
from pynamodb.models import Model

from functions.store import botocore_session, budget

# PynamoDB opens a botocore session per model class and thread, each parsing botocore's
# service and endpoint JSON again (0.05 s apiece, a dozen models): share the store's loader.
pynamodb.connection.base.get_session = botocore_session  # type: ignore[attr-defined]


class IntAttribute(NumberAttribute):
    """An exact integer (micro-units, counters): never read back through float."""

    def serialize(self, value: int) -> str:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"expected an int, got {type(value).__name__}")
        return str(value)

    def deserialize(self, value: str) -> int:
        return int(value)


class Item(Model):
    """Every item's key: `pk` starts with the tenant, `sk` names the item within it."""

    class Meta:
        table_name = "unbound"  # bound per table name at runtime (PynamoDB#922)

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


def bind(base: type[Item], table: str, limits: budget.Limits | None = None) -> type[Item]:
    """`base` as a model of the table named at run time (settings decide, not the class);
    with `limits`, its connection has their timeouts and attempts (functions/store/budget.py)."""
    meta = {"table_name": table, **(budget.model_meta(limits) if limits else {})}
    return type(base.__name__, (base,), {"Meta": type("Meta", (), meta)})


def conditional_failed(error: PutError | UpdateError) -> bool:
    """True when a write was refused by its condition (the item was not as expected)."""
    return error.cause_response_code == "ConditionalCheckFailedException"


def now() -> datetime:
    return datetime.now(UTC)
