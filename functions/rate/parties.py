"""Rating every party of a call: the customer, each reseller above it, and the supplier.

Each account has one active deck: for a customer, what its parent (a reseller or the
carrier) sells to it; for a reseller, what its own parent sells to it; for a supplier, what
the carrier pays it. A call from customer C under reseller R1 under reseller R2 is priced
three times on the sell side (C pays R1, R1 pays R2, R2 pays the carrier) and once on the
buy side (the carrier pays the supplier). Every level keeps its margin.

Loops run over accounts (a handful per file), each pricing its calls column-wise; no loop
runs per CDR. Only fully rated calls (every sell-side level priced) move money; the others
are kept with a reason and can be re-rated once the decks are fixed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.rate.rated import start_seconds
from functions.rate.rating import DeckIndex, price
from functions.shared.money import RATE_SCALE, Rounding, decimal_array

MAX_RESELLER_LEVELS = 3

# Why a call could not be charged. The sell side decides `status`; a supplier problem
# leaves the call rated (the customer still owes) with `supplier_reason` set.
REASONS = (
    None,
    "unknown_customer",  # the CDR's customer is not an account of the tenant
    "not_a_customer",  # the CDR names a supplier or reseller as the customer
    "no_deck",  # an account in the chain has no active deck
    "no_rate",  # no live rate for the number at the customer level
    "closed",  # the customer's live rate closes the code
    "reseller_no_rate",  # a reseller level has no live rate
    "reseller_closed",
    "unknown_supplier",
    "supplier_no_rate",
    "supplier_closed",
    "currency_mismatch",  # levels priced in different currencies: no margin computed
)
_CODE = {reason: i for i, reason in enumerate(REASONS)}


@dataclass(frozen=True, slots=True)
class Account:
    account: str
    kind: str  # customer | reseller | supplier
    parent: str | None = None
    currency: str = "USD"


@dataclass(frozen=True)
class Parties:
    """A tenant's accounts and their active decks, as the rate service loaded them."""

    accounts: Mapping[str, Account]
    decks: Mapping[str, DeckIndex]

    def sell_chain(self, customer: str) -> list[str]:
        """The customer, then each reseller above it, nearest first."""
        chain = [customer]
        parent = self.accounts[customer].parent
        while parent is not None and len(chain) <= MAX_RESELLER_LEVELS:
            if parent in chain:
                raise ValueError(f"account {parent} is its own ancestor")
            chain.append(parent)
            parent = self.accounts[parent].parent if parent in self.accounts else None
        return chain


@dataclass(frozen=True)
class PartyRating:
    table: pa.Table  # one row per CDR (RATED columns below)
    currency_of: dict[str, str]  # account → currency it was priced in


def _groups(column: pa.ChunkedArray | pa.Array) -> list[tuple[str | None, np.ndarray]]:
    """Row indices per distinct value (a handful of accounts per file)."""
    if len(column) == 0:
        return []
    encoded = pc.dictionary_encode(column)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    codes = pc.fill_null(encoded.indices, -1).to_numpy().astype(np.int64)
    order = np.argsort(codes, kind="stable")
    values, starts = np.unique(codes[order], return_index=True)
    bounds = [*starts[1:], len(order)]
    names = encoded.dictionary.to_pylist()
    return [
        (names[v] if v >= 0 else None, order[s:e])
        for v, s, e in zip(values, starts, bounds, strict=True)
    ]


class _Names:
    """Accounts and currencies seen in one file, as small integer codes."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.currencies: list[str] = []
        self._code: dict[str, int] = {}

    def code(self, name: str, currency: str) -> int:
        if name not in self._code:
            self._code[name] = len(self.names)
            self.names.append(name)
            self.currencies.append(currency)
        return self._code[name]

    def column(self, codes: np.ndarray) -> pa.Array:
        labels = pa.array(self.names, pa.string())
        return labels.take(pa.array(np.maximum(codes, 0), mask=codes < 0))

    def currency_codes(self, codes: np.ndarray) -> np.ndarray:
        """A currency id per row (-1 where no account), comparable across levels."""
        table = sorted(set(self.currencies))
        lookup = np.array([table.index(c) for c in self.currencies] or [0], dtype=np.int64)
        return np.where(codes >= 0, lookup[np.maximum(codes, 0)], -1)

    def currency_column(self, codes: np.ndarray) -> pa.Array:
        labels = pa.array(self.currencies or [""], pa.string())
        return labels.take(pa.array(np.maximum(codes, 0), mask=codes < 0))


class _Level:
    """Column buffers for one sell-side level (or the supplier), filled group by group."""

    def __init__(self, n: int) -> None:
        self.account = np.full(n, -1, dtype=np.int64)
        self.rate = np.zeros(n, dtype=np.int64)
        self.amount = np.zeros(n, dtype=np.int64)
        self.billed = np.zeros(n, dtype=np.int64)
        self.priced = np.zeros(n, dtype=bool)
        self._parts: list[tuple[np.ndarray, DeckIndex, np.ndarray]] = []

    def fill(self, rows: np.ndarray, code: int, index: DeckIndex, pricing) -> None:
        self.account[rows] = code
        self.rate[rows] = pricing.rate_e8
        self.amount[rows] = pricing.amount
        self.billed[rows] = pricing.billed
        self.priced[rows] = pricing.rated
        self._parts.append((rows, index, pricing.row))

    def deck_column(self, name: str, n: int) -> pa.Array:
        """A deck column (prefix, destination) per call, gathered deck by deck in Arrow."""
        if not self._parts:
            return pa.nulls(n, pa.string())
        pieces, positions = [], []
        for rows, index, deck_rows in self._parts:
            indices = pa.array(np.maximum(deck_rows, 0), mask=deck_rows < 0)
            pieces.append(index.deck.column(name).combine_chunks().take(indices))
            positions.append(rows)
        covered = np.concatenate(positions)
        missing = np.setdiff1d(np.arange(n), covered, assume_unique=True)
        pieces.append(pa.nulls(len(missing), pa.string()))
        gathered = pa.concat_arrays(pieces)
        where = np.empty(n, dtype=np.int64)
        where[np.concatenate([covered, missing])] = np.arange(n)
        return gathered.take(pa.array(where))


def rate_parties(cdrs: pa.Table, parties: Parties, rounding: Rounding | None = None) -> PartyRating:
    """Price every CDR for all parties; status, reasons, per-level amounts, balance deltas."""
    rounding = rounding or Rounding()
    n = cdrs.num_rows
    callee = cdrs.column("callee").combine_chunks()
    start = start_seconds(cdrs)
    answered = cdrs.column("billsec").to_numpy()
    reason = np.zeros(n, dtype=np.int8)
    supplier_reason = np.zeros(n, dtype=np.int8)
    names = _Names()
    levels = [_Level(n) for _ in range(MAX_RESELLER_LEVELS + 1)]
    buy = _Level(n)

    def flag(codes: np.ndarray, rows: np.ndarray, name: str) -> None:
        unset = rows[codes[rows] == 0]
        codes[unset] = _CODE[name]

    def priced(rows: np.ndarray, member: str, deck: DeckIndex, level: _Level):
        pricing = price(deck, callee.take(pa.array(rows)), start[rows], answered[rows], rounding)
        level.fill(rows, names.code(member, deck.currency), deck, pricing)
        missing = rows[~pricing.rated]
        return missing, missing[pricing.closed[~pricing.rated]]

    for customer, rows in _groups(cdrs.column("customer")):
        account = parties.accounts.get(customer) if customer else None
        if account is None:
            flag(reason, rows, "unknown_customer")
            continue
        if account.kind != "customer":
            flag(reason, rows, "not_a_customer")
            continue
        for depth, member in enumerate(parties.sell_chain(customer)):
            deck = parties.decks.get(member)
            if deck is None:
                flag(reason, rows, "no_deck")
                break
            missing, closed = priced(rows, member, deck, levels[depth])
            prefix = "" if depth == 0 else "reseller_"
            flag(reason, closed, f"{prefix}closed")
            flag(reason, missing, f"{prefix}no_rate")

    for supplier, rows in _groups(cdrs.column("supplier")):
        account = parties.accounts.get(supplier) if supplier else None
        if account is None or account.kind != "supplier":
            flag(supplier_reason, rows, "unknown_supplier")
            continue
        deck = parties.decks.get(supplier)
        if deck is None:
            flag(supplier_reason, rows, "no_deck")
            continue
        missing, closed = priced(rows, supplier, deck, buy)
        flag(supplier_reason, closed, "supplier_closed")
        flag(supplier_reason, missing, "supplier_no_rate")

    rated = reason == 0
    has_cost = rated & (supplier_reason == 0)
    # The carrier's own revenue is what the top of the sell chain pays it.
    top_amount = levels[0].amount.copy()
    top_account = levels[0].account.copy()
    for level in levels[1:]:
        present = level.account >= 0
        top_amount = np.where(present, level.amount, top_amount)
        top_account = np.where(present, level.account, top_account)
    same_currency = names.currency_codes(top_account) == names.currency_codes(buy.account)
    margin_ok = has_cost & same_currency
    flag(supplier_reason, np.flatnonzero(has_cost & ~same_currency), "currency_mismatch")

    scale = rounding.decimals
    reason_labels = pa.array(REASONS, pa.string())
    columns: dict[str, pa.Array] = {
        "line": cdrs.column("line").combine_chunks(),
        "call_id": cdrs.column("call_id").combine_chunks(),
        "start_time": cdrs.column("start_time").combine_chunks(),
        "caller": cdrs.column("caller").combine_chunks(),
        "callee": callee,
        "billsec": cdrs.column("billsec").combine_chunks(),
        "disposition": cdrs.column("disposition").combine_chunks(),
        "status": pa.array(["rated", "unrated"]).take(pa.array((~rated).astype(np.int8))),
        "reason": reason_labels.take(pa.array(reason)),
        "customer": cdrs.column("customer").combine_chunks(),
        "matched_prefix": levels[0].deck_column("prefix", n),
        "destination": levels[0].deck_column("destination", n),
        "billed_seconds": pa.array(levels[0].billed),
        "customer_rate": decimal_array(levels[0].rate, RATE_SCALE, ~levels[0].priced),
        "customer_amount": decimal_array(levels[0].amount, scale, ~rated),
        "currency": names.currency_column(levels[0].account),
    }
    for depth in range(1, MAX_RESELLER_LEVELS + 1):
        level, below = levels[depth], levels[depth - 1]
        present = rated & (level.account >= 0)
        same = names.currency_codes(below.account) == names.currency_codes(level.account)
        columns[f"reseller{depth}"] = names.column(level.account)
        columns[f"reseller{depth}_amount"] = decimal_array(level.amount, scale, ~present)
        # What this reseller keeps: what the level below pays it minus what it pays above.
        columns[f"reseller{depth}_margin"] = decimal_array(
            below.amount - level.amount, scale, ~(present & same)
        )
    columns |= {
        "supplier": cdrs.column("supplier").combine_chunks(),
        "supplier_reason": reason_labels.take(pa.array(supplier_reason)),
        "supplier_prefix": buy.deck_column("prefix", n),
        "supplier_rate": decimal_array(buy.rate, RATE_SCALE, ~buy.priced),
        "supplier_amount": decimal_array(buy.amount, scale, ~has_cost),
        "supplier_currency": names.currency_column(buy.account),
        "margin": decimal_array(top_amount - buy.amount, scale, ~margin_ok),
    }
    currency_of = {name: names.currencies[i] for i, name in enumerate(names.names)}
    return PartyRating(table=pa.table(columns), currency_of=currency_of)


def balance_deltas(rated: pa.Table, decimals: int = 6) -> dict[str, int]:
    """Balance change per account from a rated table, in integer units of 10^-decimals.

    Each sell-side payer is charged (negative); the supplier is credited with what the
    carrier owes it (positive). Computed from the table as stored, so a retry that reuses
    stored output posts exactly what the first attempt would have. Sums are decimal, exact.
    """
    sides = [("customer", "customer_amount", -1), ("supplier", "supplier_amount", 1)]
    sides += [
        (f"reseller{d}", f"reseller{d}_amount", -1) for d in range(1, MAX_RESELLER_LEVELS + 1)
    ]
    deltas: dict[str, int] = {}
    for account_column, amount_column, sign in sides:
        pairs = rated.select([account_column, amount_column]).filter(
            pc.and_(pc.is_valid(rated[account_column]), pc.is_valid(rated[amount_column]))
        )
        if not pairs.num_rows:
            continue
        summed = pairs.group_by(account_column).aggregate([(amount_column, "sum")])
        for account, total in zip(
            summed.column(account_column).to_pylist(),
            summed.column(f"{amount_column}_sum").to_pylist(),
            strict=True,
        ):
            units = int(total.scaleb(decimals))
            deltas[account] = deltas.get(account, 0) + sign * units
    return {account: delta for account, delta in deltas.items() if delta}
