"""Charging every party of a call on its own: the customer, each reseller above it, the supplier.

Each account has its own effective-dated deck: for a customer, what its parent (a reseller or
the carrier) sells to it; for a reseller, what its own parent sells to it; for a supplier, what
the carrier pays it. A call from customer C under reseller R1 under reseller R2 yields four
charges: C pays R1, R1 pays R2, R2 pays the carrier (levels 0, 1, 2), and the carrier owes the
supplier. Chains have no depth limit.

A customer may buy several products (rate plans, functions.rate.plans), each its own deck:
the call's plan picks the customer's deck, and each reseller above is priced by its own deck
of the same plan when it has one, else by its default deck (its buy price follows the
product its customer bought). A customer without a deck for the call's plan is left unrated
(`no_deck`), never priced on another plan. Suppliers are priced by their default deck.

Every charge is rated by its own deck alone (as CGRateS's chargers derive one run per party):
a missing rate leaves only that charge unrated, with its own reason, so a reseller without a
rate never leaves its customer uncharged, and the supplier's cost is booked whenever the
supplier's deck prices the call, whatever happened on the sell side. Each charge is rounded
once, by its own account's contract rule.

The output is two tables: `charges` (one row per call x party: what moves balances) and `rated`
(one row per call: the customer's and the supplier's charge side by side, and the carrier's
margin). Loops run over accounts and chain levels (a handful per file), each pricing its calls
column-wise; no loop runs per CDR.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.rate.contracts import COMPONENTS as COMPONENT_CODES
from functions.rate.contracts import Contracts, Counter, RunCounters, apply_contracts
from functions.rate.plans import DEFAULT_PLAN, choose_plans
from functions.rate.rated import start_seconds
from functions.rate.rating import (
    CallerNumbers,
    DeckIndex,
    DialledNumbers,
    Pricing,
    price_numbers,
    surcharges,
)
from functions.rate.recurring import COMPONENT_DID, Did, did_amounts, did_owner
from functions.shared.cdr import MOS_TYPE
from functions.shared.money import AMOUNT_SCALE, RATE_SCALE, Rounding, decimal_array

CARRIER = "carrier"  # the counterparty at the top of every chain: the tenant itself
ROLES = ("customer", "reseller", "supplier")
# What a charge is for, so invoices can show it: deck-priced minutes (usage), minutes priced
# by a volume tier, a per-minute surcharge, minutes a bundle includes, a recurring fee, and
# inbound minutes to a DID charged to its owner.
COMPONENTS = ("usage", "tier", "surcharge", "bundle", "recurring", "did")
STATUSES = ("rated", "unrated")

# Why a charge could not be priced; each charge has its own.
REASONS = (
    None,
    "unknown_account",  # the CDR (or its trunk) names no account of the tenant
    "not_a_customer",  # the calling party is a supplier
    "not_a_supplier",  # the terminating party is not a supplier
    "no_deck",  # the account has no deck at all
    "no_rate",  # no rate in force for the number at the call's start
    "closed",  # the rate in force closes the code
    "cycle",  # the account's reseller chain loops (refused at creation; never expected)
)
_CODE = {reason: code for code, reason in enumerate(REASONS)}

# cdrs_charges, in order: the contract of the lake table (functions/invoice/lake_sql.py).
CHARGE_COLUMNS = (
    "file_id",
    "line",
    "call_id",
    "start_time",
    "account",
    "role",
    "level",
    "counterparty",
    "component",
    "status",
    "reason",
    "prefix",
    "destination",
    "rate",
    "billed_seconds",
    "amount",
    "currency",
    "plan",
)


class ChainCycleError(ValueError):
    """An account is its own ancestor."""


@dataclass(frozen=True, slots=True)
class Account:
    account: str
    kind: str  # customer | reseller | supplier
    parent: str | None = None
    currency: str = "USD"
    rounding: Rounding = field(default_factory=Rounding)

    def __post_init__(self) -> None:
        if self.rounding.decimals > AMOUNT_SCALE:
            raise ValueError(
                f"account {self.account}: charges round to at most {AMOUNT_SCALE} decimals"
            )


@dataclass(frozen=True)
class Parties:
    """A tenant's accounts and the decks their charges are priced with."""

    accounts: Mapping[str, Account]
    decks: Mapping[str, DeckIndex]
    dids: Sequence[Did] = ()  # every DID record of the tenant, released ones included
    timezone: str = "UTC"  # the tenant's: a DID's service days are its calendar days
    contracts: Mapping[str, Contracts] = field(default_factory=dict)  # tiers, bundles
    # Decks of plans other than `default` (those are in `decks`), by (account, plan).
    plan_decks: Mapping[tuple[str, str], DeckIndex] = field(default_factory=dict)
    # Per customer account, its caller prefixes and the plan each chooses.
    plan_rules: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def deck_of(self, account: str, plan: str) -> DeckIndex | None:
        """The account's deck of this plan, or None."""
        if plan == DEFAULT_PLAN:
            return self.decks.get(account)
        return self.plan_decks.get((account, plan))

    def sell_chain(self, account: str) -> list[str]:
        """The calling account, then every reseller above it, nearest first."""
        chain = [account]
        parent = self.accounts[account].parent
        while parent is not None:
            if parent in chain:
                raise ChainCycleError(f"account {parent} is its own ancestor")
            chain.append(parent)
            above = self.accounts.get(parent)
            parent = above.parent if above is not None else None
        return chain

    def needed_by(self, customers: list[str], suppliers: list[str]) -> set[str]:
        """Accounts whose decks a file with these calling and terminating accounts needs."""
        needed = {s for s in suppliers if s in self.accounts}
        for customer in customers:
            if customer in self.accounts:
                try:
                    needed.update(self.sell_chain(customer))
                except ChainCycleError:
                    needed.add(customer)
        return needed


@dataclass(frozen=True)
class PartyRating:
    rated: pa.Table  # one row per call
    charges: pa.Table  # one row per call x party


@dataclass
class _Block:
    """The charges of one account at one level for a group of calls."""

    rows: np.ndarray  # call indices
    account: str | None
    role: int  # index into ROLES
    level: int  # -1: the supplier (no level)
    counterparty: str | None
    currency: str | None
    reason: np.ndarray  # per call, a REASONS code
    pricing: Pricing | None = None
    deck: DeckIndex | None = None
    micro: np.ndarray | None = None  # amounts in micro-units
    component: str = "usage"
    # Priced without a deck (a DID's inbound minutes): what the charge shows instead.
    billed: np.ndarray | None = None
    rate_e8: np.ndarray | None = None
    prefix: pa.Array | None = None
    destination: pa.Array | None = None  # with `prefix`: a surcharge's deck entry
    plan: str | None = None  # the plan whose deck priced (or was to price) the charge


class _Calls:
    """The file's calls, prepared once for every deck they are priced on."""

    def __init__(
        self,
        cdrs: pa.Table,
        contracts: Mapping[str, Contracts] | None = None,
        counters: RunCounters | None = None,
    ) -> None:
        self.cdrs = cdrs
        self.contracts = contracts or {}
        # Without a store behind them (tests, what-if), contracts count from the period's start.
        self.counters = counters if counters is not None else RunCounters(lambda key: Counter())
        self.n = cdrs.num_rows
        self.numbers = DialledNumbers.of(cdrs.column("callee"))
        self.start = start_seconds(cdrs)
        self.answered = np.asarray(cdrs.column("billsec").to_numpy(), dtype=np.int64)
        self._callers: CallerNumbers | None = None

    @property
    def callers(self) -> CallerNumbers:
        """Prepared on first use: only a deck with origin entries reads the callers."""
        if self._callers is None:
            self._callers = CallerNumbers.of(self.cdrs.column("caller"))
        return self._callers

    def price(self, rows: np.ndarray, deck: DeckIndex, rounding: Rounding) -> Pricing:
        numbers = self.numbers
        if len(rows) != self.n:
            head, digits = numbers.head[rows], numbers.digits[rows]
            order = np.argsort((head >> 44).astype(np.uint16), kind="stable")
            numbers = DialledNumbers(head=head, digits=digits, order=order)
        callers = None
        if deck.has_origin:
            callers = self.callers if len(rows) == self.n else self.callers.take(rows)
        return price_numbers(
            deck, numbers, self.start[rows], self.answered[rows], rounding, callers
        )


def _groups(column: pa.ChunkedArray | pa.Array) -> list[tuple[str | None, np.ndarray]]:
    """Row indices per distinct value (a handful of accounts per file), in first-seen order."""
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


def _unpriced(
    rows, account, role, level, counterparty, currency, reason, component="usage"
) -> _Block:
    codes = np.full(len(rows), _CODE[reason], dtype=np.int8)
    return _Block(rows, account, role, level, counterparty, currency, codes, component=component)


def _priced(
    calls: _Calls, rows, account: Account, deck: DeckIndex, role, level, counterparty
) -> list[_Block]:
    """The account's charges for these calls by its deck, then by its contracts: one block
    per component (usage, tier, bundle)."""
    pricing = calls.price(rows, deck, account.rounding)
    reason = np.where(
        pricing.rated, 0, np.where(pricing.closed, _CODE["closed"], _CODE["no_rate"])
    ).astype(np.int8)
    scale = 10 ** (AMOUNT_SCALE - account.rounding.decimals)
    block = _Block(
        rows, account.account, role, level, counterparty, deck.currency, reason, pricing, deck
    )
    contracts = calls.contracts.get(account.account)
    if contracts is None:
        block.micro = pricing.amount * scale
        return [block]
    applied = apply_contracts(
        account.account,
        contracts,
        pricing,
        calls.cdrs.column("callee").take(pa.array(rows, pa.int64())),
        calls.start[rows],
        account.rounding,
        calls.counters,
    )
    pricing = replace(pricing, amount=applied.amount, rate_e8=applied.rate_e8)
    blocks = []
    for code in np.flatnonzero(np.bincount(applied.component, minlength=len(COMPONENT_CODES))):
        component = COMPONENT_CODES[code]
        picked = np.flatnonzero(applied.component == code)
        part = pricing if len(picked) == len(rows) else _take(pricing, picked)
        blocks.append(
            replace(
                block,
                rows=rows[picked],
                reason=reason[picked],
                pricing=part,
                micro=part.amount * scale,
                component=component,
            )
        )
    return blocks


def _take(pricing: Pricing, picked: np.ndarray) -> Pricing:
    """The calls `picked` of a Pricing (every per-call array taken alike)."""
    return replace(
        pricing,
        **{
            f.name: getattr(pricing, f.name)[picked]
            for f in fields(pricing)
            if getattr(pricing, f.name) is not None
        },
    )


def _plan_groups(rows: np.ndarray, plans) -> list[tuple[str, np.ndarray]]:
    """A customer's calls by plan, one group when no call has a plan (a loop over plans)."""
    if plans is None:
        return [(DEFAULT_PLAN, rows)]
    labels, codes = plans
    mine = codes[rows]
    return [(labels[k], rows[mine == k]) for k in np.unique(mine).tolist()]


def _call_plans(calls: _Calls, parties: Parties) -> tuple[list[str], np.ndarray] | None:
    """Each call's plan (labels, codes), or None where every call is on `default` (no trunk
    names a plan and no customer has rules: the usual file, priced as before plans)."""
    cdrs = calls.cdrs
    trunk = cdrs.column("plan") if "plan" in cdrs.column_names else None
    if trunk is None and not parties.plan_rules:
        return None
    callers = cdrs.column("caller") if "caller" in cdrs.column_names else None
    return choose_plans(cdrs.column("customer"), callers, trunk, parties.plan_rules)


def _sell_blocks(calls: _Calls, parties: Parties) -> list[_Block]:
    blocks: list[_Block] = []
    plans = _call_plans(calls, parties)
    for name, named in _groups(calls.cdrs.column("customer")):
        account = parties.accounts.get(name) if name else None
        for plan, rows in _plan_groups(named, plans):
            blocks += _chain_blocks(calls, parties, name, account, plan, rows)
    return blocks


def _chain_blocks(
    calls: _Calls, parties: Parties, name: str | None, account: Account | None, plan: str, rows
) -> list[_Block]:
    """One customer's calls of one plan, charged to it and to every reseller above it."""
    if account is None or account.kind == "supplier":
        reason = "unknown_account" if account is None else "not_a_customer"
        chain, refused = None, _unpriced(rows, name, 0, 0, None, None, reason)
    else:
        try:
            chain = parties.sell_chain(name)
        except ChainCycleError:
            chain, refused = None, _unpriced(rows, name, 0, 0, None, account.currency, "cycle")
    if chain is None:
        refused.plan = plan
        return [refused]
    blocks = []
    for level, member in enumerate(chain):
        above = chain[level + 1] if level + 1 < len(chain) else CARRIER
        role = 0 if level == 0 else 1
        payer = parties.accounts.get(member)
        used, deck = plan, parties.deck_of(member, plan)
        if deck is None and level > 0 and plan != DEFAULT_PLAN:
            # A reseller without this product buys the call on its default deck.
            used, deck = DEFAULT_PLAN, parties.decks.get(member)
        if payer is None:  # a parent that is not (or no longer) an account
            block = _unpriced(rows, member, role, level, above, None, "unknown_account")
        elif deck is None:
            block = _unpriced(rows, member, role, level, above, payer.currency, "no_deck")
        else:
            priced = _priced(calls, rows, payer, deck, role, level, above)
            for block in priced:
                block.plan = used
            blocks += priced
            continue
        block.plan = used
        blocks.append(block)
    return blocks


def _buy_blocks(calls: _Calls, parties: Parties) -> list[_Block]:
    blocks: list[_Block] = []
    for name, rows in _groups(calls.cdrs.column("supplier")):
        account = parties.accounts.get(name) if name else None
        if account is None:
            blocks.append(_unpriced(rows, name, 2, -1, CARRIER, None, "unknown_account"))
        elif account.kind != "supplier":
            blocks.append(_unpriced(rows, name, 2, -1, CARRIER, None, "not_a_supplier"))
        elif name not in parties.decks:
            blocks.append(_unpriced(rows, name, 2, -1, CARRIER, account.currency, "no_deck"))
        else:
            blocks += _priced(calls, rows, account, parties.decks[name], 2, -1, CARRIER)
    for block in blocks:
        block.plan = DEFAULT_PLAN  # suppliers are priced by their default deck
    return blocks


def _did_blocks(calls: _Calls, parties: Parties) -> list[_Block]:
    """Inbound calls to a DID, charged to the DID's owner at its per-minute rate."""
    if not parties.dids:
        return []
    record, rate = did_owner(
        calls.cdrs.column("callee"), parties.dids, calls.start, timezone=parties.timezone
    )
    hit = np.flatnonzero(record >= 0)
    names = sorted({d.account for d in parties.dids})
    code = {name: i for i, name in enumerate(names)}
    owner_of = np.array([code[d.account] for d in parties.dids], dtype=np.int64)
    owner = owner_of[record[hit]]
    numbers = pa.array([d.number for d in parties.dids], pa.string())  # one per DID, not call
    blocks: list[_Block] = []
    for k in np.unique(owner).tolist():  # the owners called in this file
        rows, name = hit[owner == k], names[k]
        account = parties.accounts.get(name)
        role = 1 if account is not None and account.kind == "reseller" else 0
        if account is None:  # the owner is no longer an account: charged to nobody
            blocks.append(
                _unpriced(rows, name, role, 0, CARRIER, None, "unknown_account", COMPONENT_DID)
            )
            continue
        billed, micro = did_amounts(rate[rows], calls.answered[rows], account.rounding)
        blocks.append(
            _Block(
                rows,
                name,
                role,
                0,
                CARRIER,
                account.currency,
                np.zeros(len(rows), np.int8),
                micro=micro,
                component=COMPONENT_DID,
                billed=billed,
                rate_e8=rate[rows],
                prefix=numbers.take(pa.array(record[rows])),
            )
        )
    return blocks


def _surcharge_blocks(priced: list[_Block], accounts: Mapping[str, Account]) -> list[_Block]:
    """A `surcharge` charge beside each usage charge whose deck entry adds one per minute.

    Same call, account, role, level and counterparty; the entry's prefix and destination;
    the surcharge as its rate over the same billed seconds, rounded once on its own by the
    account's rule. Calls not charged (unanswered, within free seconds, unrated) have none.
    """
    blocks: list[_Block] = []
    for block in priced:
        if block.pricing is None or block.deck is None or not block.deck.has_surcharge:
            continue
        account = accounts[block.account]
        rate, amount = surcharges(block.deck, block.pricing, account.rounding)
        keep = np.flatnonzero(amount > 0)
        if not len(keep):
            continue
        rows = block.pricing.row[keep]
        blocks.append(
            _Block(
                block.rows[keep],
                block.account,
                block.role,
                block.level,
                block.counterparty,
                block.currency,
                np.zeros(len(keep), np.int8),
                micro=amount[keep] * 10 ** (AMOUNT_SCALE - account.rounding.decimals),
                component="surcharge",
                billed=block.pricing.billed[keep],
                rate_e8=rate[keep],
                prefix=block.deck.deck.column("prefix").combine_chunks().take(pa.array(rows)),
                destination=block.deck.deck.column("destination")
                .combine_chunks()
                .take(pa.array(rows)),
                plan=block.plan,
            )
        )
    return blocks


def _labels(values: list[str | None]) -> tuple[pa.Array, np.ndarray]:
    """Distinct labels and, per value, its code (-1: null)."""
    distinct = sorted({v for v in values if v is not None})
    code = {v: i for i, v in enumerate(distinct)}
    return pa.array(distinct, pa.string()), np.array(
        [code.get(v, -1) if v is not None else -1 for v in values], dtype=np.int32
    )


def _dictionary(per_block: list[str | None], sizes: np.ndarray) -> pa.DictionaryArray:
    """One label per block, repeated over its rows, as a dictionary array (no string per row)."""
    dictionary, codes = _labels(per_block)
    indices = np.repeat(codes, sizes)
    mask = indices < 0
    return pa.DictionaryArray.from_arrays(
        pa.array(np.maximum(indices, 0), pa.int32(), mask=mask if mask.any() else None),
        dictionary,
    )


def _constant(label: str, count: int) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(count, np.int32)), pa.array([label], pa.string())
    )


def _deck_text(blocks: list[_Block], column: str) -> pa.Array:
    """A deck column (prefix, destination) for every charge; null where no rate applied."""
    pieces = []
    for block in blocks:
        if block.prefix is not None:  # a DID's (the number) or a surcharge's entry
            if column == "prefix":
                pieces.append(block.prefix)
            elif block.destination is not None:
                pieces.append(block.destination)
            else:
                pieces.append(pa.nulls(len(block.rows), pa.string()))
            continue
        if block.pricing is None or len(block.deck.deck) == 0:
            pieces.append(pa.nulls(len(block.rows), pa.string()))
            continue
        row = block.pricing.row
        indices = pa.array(np.maximum(row, 0), mask=row < 0)
        pieces.append(block.deck.deck.column(column).combine_chunks().take(indices))
    return pa.concat_arrays(pieces) if pieces else pa.array([], pa.string())


def _numbers(blocks: list[_Block], name: str) -> np.ndarray:
    parts = [getattr(b.pricing if b.pricing is not None else b, name, None) for b in blocks]
    parts = [
        np.zeros(len(b.rows), np.int64) if part is None else part
        for b, part in zip(blocks, parts, strict=True)
    ]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def _charges(calls: _Calls, blocks: list[_Block], file_id: str) -> pa.Table:
    sizes = np.array([len(b.rows) for b in blocks], dtype=np.int64)
    rows = np.concatenate([b.rows for b in blocks]) if blocks else np.zeros(0, np.int64)
    take = pa.array(rows, pa.int64())
    reason = np.concatenate([b.reason for b in blocks]) if blocks else np.zeros(0, np.int8)
    unrated = reason != 0
    micro = (
        np.concatenate(
            [b.micro if b.micro is not None else np.zeros(len(b.rows), np.int64) for b in blocks]
        )
        if blocks
        else np.zeros(0, np.int64)
    )
    level = np.repeat(np.array([b.level for b in blocks], dtype=np.int64), sizes)
    cdrs = calls.cdrs
    columns = {
        "file_id": _constant(file_id, len(rows)),
        "line": cdrs.column("line").take(take).combine_chunks(),
        "call_id": cdrs.column("call_id").take(take).combine_chunks(),
        "start_time": cdrs.column("start_time").take(take).combine_chunks(),
        "account": _dictionary([b.account for b in blocks], sizes),
        "role": _dictionary([ROLES[b.role] for b in blocks], sizes),
        "level": pa.array(level, pa.int64(), mask=level < 0),
        "counterparty": _dictionary([b.counterparty for b in blocks], sizes),
        "component": _dictionary([b.component for b in blocks], sizes),
        "status": pa.DictionaryArray.from_arrays(
            pa.array(unrated.astype(np.int8)), pa.array(STATUSES, pa.string())
        ),
        "reason": pa.DictionaryArray.from_arrays(
            pa.array(np.maximum(reason - 1, 0).astype(np.int8), mask=~unrated),
            pa.array(REASONS[1:], pa.string()),
        ),
        "prefix": _deck_text(blocks, "prefix"),
        "destination": _deck_text(blocks, "destination"),
        "rate": decimal_array(_numbers(blocks, "rate_e8"), RATE_SCALE, unrated),
        "billed_seconds": pa.array(_numbers(blocks, "billed"), pa.int64()),
        "amount": decimal_array(micro, AMOUNT_SCALE, unrated),
        "currency": _dictionary([b.currency for b in blocks], sizes),
        "plan": _dictionary([b.plan for b in blocks], sizes),
    }
    return pa.table(columns)


def _per_call(n: int, blocks: list[_Block], starts: list[int]) -> tuple[pa.Array, np.ndarray]:
    """Indices into the charges of the one block per call chosen (null where a call has none)."""
    position = np.full(n, -1, dtype=np.int64)
    for block, start in zip(blocks, starts, strict=True):
        position[block.rows] = np.arange(start, start + len(block.rows))
    missing = position < 0
    take = pa.array(np.maximum(position, 0), pa.int64(), mask=missing if missing.any() else None)
    return take, missing


def rate_parties(
    cdrs: pa.Table,
    parties: Parties,
    file_id: str = "",
    rounding: Rounding | None = None,
    counters: RunCounters | None = None,
) -> PartyRating:
    """Price every call for every party; `rounding` overrides every account's (what-if runs).

    `counters` are the run's period counters of the accounts' tiers and bundles (see
    functions.rate.contracts); the caller commits their moves with the run.
    """
    if rounding is not None:
        parties = replace(
            parties,
            accounts={name: _with_rounding(a, rounding) for name, a in parties.accounts.items()},
        )
    calls = _Calls(cdrs, parties.contracts, counters)
    sell = _sell_blocks(calls, parties)
    buy = _buy_blocks(calls, parties)
    extra = _surcharge_blocks(sell + buy, parties.accounts)
    blocks = sell + buy + _did_blocks(calls, parties) + extra
    charges = _charges(calls, blocks, file_id)
    start_of: dict[int, int] = {}
    offset = 0
    for block in blocks:
        start_of[id(block)] = offset
        offset += len(block.rows)

    def chosen(picked: list[_Block]) -> tuple[pa.Array, np.ndarray]:
        return _per_call(calls.n, picked, [start_of[id(b)] for b in picked])

    customer_take, _ = chosen([b for b in sell if b.level == 0])
    supplier_take, _ = chosen(buy)
    # The carrier's own revenue is what the top of each chain pays it.
    top_take, _ = chosen([b for b in sell if b.counterparty == CARRIER])
    surcharge_take = None
    if extra:
        sold = [b for b in extra if b.role != 2]
        surcharge_take = (
            chosen([b for b in sold if b.level == 0])[0],
            chosen([b for b in sold if b.counterparty == CARRIER])[0],
            chosen([b for b in extra if b.role == 2])[0],
        )
    rated = _rated(calls, file_id, charges, customer_take, supplier_take, top_take, surcharge_take)
    return PartyRating(rated=rated, charges=charges)


def _with_rounding(account: Account, rounding: Rounding) -> Account:
    return Account(account.account, account.kind, account.parent, account.currency, rounding)


def _plain(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column


def _rated(
    calls: _Calls,
    file_id: str,
    charges: pa.Table,
    cust_take: pa.Array,
    buy_take: pa.Array,
    top_take: pa.Array,
    surcharge_take: tuple[pa.Array, pa.Array, pa.Array] | None = None,
) -> pa.Table:
    """One row per call: its customer charge, its supplier charge, the carrier's margin.

    `surcharge_take` picks each call's surcharge charges (the customer's, the top of the
    chain's, the supplier's); margin counts the top's as revenue and the supplier's as cost.
    """
    cdrs = calls.cdrs

    def side(take: pa.Array, name: str) -> pa.Array:
        return _plain(charges.column(name)).take(take)

    status = side(cust_take, "status")
    supplier_status = side(buy_take, "status")
    top_amount = side(top_take, "amount")
    supplier_amount = side(buy_take, "amount")
    same_currency = pc.fill_null(
        pc.equal(side(top_take, "currency"), side(buy_take, "currency")), False
    )
    margin_ok = pc.and_(
        pc.and_(pc.is_valid(top_amount), pc.is_valid(supplier_amount)), same_currency
    )
    money = pa.decimal128(18, AMOUNT_SCALE)
    customer_surcharge = pa.nulls(calls.n, money)
    if surcharge_take is not None:
        customer_surcharge = side(surcharge_take[0], "amount").cast(money)
        zero = pa.scalar(Decimal(0), money)
        top_amount = pc.add(top_amount, pc.fill_null(side(surcharge_take[1], "amount"), zero))
        supplier_amount = pc.add(
            supplier_amount, pc.fill_null(side(surcharge_take[2], "amount"), zero)
        )
    margin = pc.if_else(
        margin_ok,
        pc.subtract(top_amount, supplier_amount).cast(money),
        pa.scalar(None, money),
    )
    dialled = cdrs.column("dialled") if "dialled" in cdrs.column_names else cdrs.column("callee")
    columns = {
        "file_id": _constant(file_id, calls.n),
        "line": cdrs.column("line").combine_chunks(),
        "call_id": cdrs.column("call_id").combine_chunks(),
        "start_time": cdrs.column("start_time").combine_chunks(),
        "caller": cdrs.column("caller").combine_chunks(),
        "callee": cdrs.column("callee").combine_chunks(),
        "dialled": _plain(dialled),
        "billsec": cdrs.column("billsec").combine_chunks(),
        "disposition": cdrs.column("disposition").combine_chunks(),
        "status": pc.fill_null(status, "unrated"),
        "reason": side(cust_take, "reason"),
        "customer": cdrs.column("customer").combine_chunks(),
        "matched_prefix": side(cust_take, "prefix"),
        "destination": side(cust_take, "destination"),
        "billed_seconds": pc.fill_null(side(cust_take, "billed_seconds"), 0),
        "customer_rate": side(cust_take, "rate"),
        "customer_amount": side(cust_take, "amount"),
        "customer_surcharge": customer_surcharge,
        "currency": side(cust_take, "currency"),
        "supplier": cdrs.column("supplier").combine_chunks(),
        "supplier_status": supplier_status,
        "supplier_reason": side(buy_take, "reason"),
        "supplier_prefix": side(buy_take, "prefix"),
        "supplier_destination": side(buy_take, "destination"),
        "supplier_rate": side(buy_take, "rate"),
        "supplier_amount": side(buy_take, "amount"),
        "supplier_currency": side(buy_take, "currency"),
        "margin": margin,
        # Taken as codes, then decoded: one string per call, not per charge.
        "plan": _plain(charges.column("plan").take(cust_take)),
        # Call quality, kept for quality queries; absent from normalised tables written
        # before the switch's format read it (null).
        **{name: _quality(cdrs, name, kind) for name, kind in QUALITY_TYPES.items()},
    }
    return pa.table(columns)


# The rated table's call-quality columns (functions.invoice.lake_sql.RATED_COLUMNS).
QUALITY_TYPES = {"pdd_ms": pa.int64(), "mos": MOS_TYPE}


def _quality(cdrs: pa.Table, name: str, kind: pa.DataType) -> pa.Array:
    if name not in cdrs.column_names:
        return pa.nulls(cdrs.num_rows, kind)
    return cdrs.column(name).combine_chunks().cast(kind)


def charge_deltas(charges: pa.Table) -> dict[str, int]:
    """Balance change per account from a charges table, in micro-units, exactly.

    A customer or reseller is charged (its balance falls); the supplier is owed (its balance,
    what the carrier owes it, rises). Only rated charges move money. Computed from the table as
    stored, so a retry that reuses stored output posts exactly what the first attempt would.
    """
    if charges.num_rows == 0:
        return {}
    rated = pc.equal(_plain(charges.column("status")), "rated")
    picked = charges.filter(rated).select(["account", "role", "amount"])
    if picked.num_rows == 0:
        return {}
    picked = pa.table(
        {
            "account": _plain(picked.column("account")),
            "role": _plain(picked.column("role")),
            "amount": picked.column("amount"),
        }
    )
    summed = picked.group_by(["account", "role"]).aggregate([("amount", "sum")])
    deltas: dict[str, int] = {}
    for account, role, total in zip(
        summed.column("account").to_pylist(),
        summed.column("role").to_pylist(),
        summed.column("amount_sum").to_pylist(),
        strict=True,
    ):
        units = int(total.scaleb(AMOUNT_SCALE))
        sign = 1 if role == "supplier" else -1
        deltas[account] = deltas.get(account, 0) + sign * units
    return {account: delta for account, delta in deltas.items() if delta}
