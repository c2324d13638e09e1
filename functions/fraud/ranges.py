"""The IRSF ranges the fraud rules watch: a seeded list from public sources, edited per operator.

International revenue share fraud pumps calls to ranges whose operator pays the fraudster per
minute. The seed comes from three public lists, each entry naming its sources:
* shimaore/ccnq3-support applications/six_minutes/lib/lists.coffee.md: `alert0` (reported on
  any attempt: satellite networks and known test ranges) and a selection of `alert10` ("suspect
  at 10 s": the NANP 555 ranges outside the US and Canada, and small Pacific islands);
* the international destinations Cox and Integra block by default: Cox's list as TransNexus
  reported it (transnexus.com/blog/2014/carriers-block-international-calls-to-stop-traffic-
  pumping-fraud), Integra's from Electric Lightwave's knowledge base (international calling
  options).
A prefix on several lists keeps the strongest kind (the order of KINDS) and all its sources.
An operator's edits add, replace or remove ranges by exact prefix (`RangeList.of`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from functions.fraud.destinations import default_groups
from functions.shared.prefixes import longest_prefix

# Strongest first: where a prefix is on two lists, the earlier kind wins.
KINDS = (
    # An IPRN test number or a range fraudsters test with: any answered call is reported at once.
    "test",
    # Satellite networks (Inmarsat, Iridium, Thuraya...): any answered call is reported at once,
    # as a minute there costs dollars and few customers call them.
    "satellite",
    # Premium and shared-revenue ranges: reported when their minutes pass a small threshold.
    "premium",
    # Countries carriers block by default for IRSF: reported above a small threshold of minutes.
    "high_risk",
)
NO_RANGE = -1
MAX_PREFIX = 15  # E.164: at most 15 digits in a number, so in a prefix
MAX_LABEL = 80
EDIT_FIELDS = ("prefix", "kind", "label", "removed")
EDITED = "operator edit"

_ALERT0 = "ccnq3 six_minutes alert0"
_ALERT10 = "ccnq3 six_minutes alert10"
_COX = "Cox default block list (TransNexus 2014)"
_INTEGRA = "Integra default block list (Electric Lightwave)"
# Labels where the destination group alone would not say what the range is.
_LABELS = {
    "871": "Inmarsat Atlantic East (withdrawn code)",
    "872": "Inmarsat Pacific (withdrawn code)",
    "873": "Inmarsat Indian Ocean (withdrawn code)",
    "874": "Inmarsat Atlantic West (withdrawn code)",
    "878": "Universal Personal Telecommunications",
    "87810": "Universal Personal Telecommunications 878 10",
    "881": "Global Mobile Satellite System",
    "8813": "Global Mobile Satellite System 881 3 (Ellipso)",
    "88213": "International network 882 13",
    "535": "Cuba mobile",
    "5321": "Cuba 53 21",
}
# The NANP members' area codes whose NXX 555 ccnq3 lists (Canada's and Alaska's left out).
_NANP_555 = "787 939 264 242 441 284 345 767 809 473 876 664 869 758 868 649 671 670"
_SOURCES = (
    (_ALERT0, "satellite", "870 871 872 873 874 878 87810 881 8813 88213 88216"),
    (_ALERT0, "test", "670 1340555 681 246 290 53 535 5321 239"),
    (_ALERT10, "premium", " ".join(f"1{area}555" for area in _NANP_555.split())),
    (_ALERT10, "premium", "672 674 675 677 678 682 683 686 688 690 692"),
    (_COX, "high_risk", "220 224 232 236 239 248 252 960 994 377"),
    (_INTEGRA, "high_risk", "53 371 242 243 253 291 225 218 389 850 221 386 688 263"),
)


def _check_prefix(prefix: object) -> str:
    if not (isinstance(prefix, str) and prefix.isascii() and prefix.isdigit()):
        raise ValueError(f"prefix: {prefix!r} is not a string of digits")
    if len(prefix) > MAX_PREFIX:
        raise ValueError(f"prefix: {prefix} has {len(prefix)} digits, at most {MAX_PREFIX}")
    return prefix


def _check_kind(kind: object) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    return kind


def _check_label(label: object) -> str:
    if not isinstance(label, str) or not label.isprintable():
        raise ValueError(f"label: {label!r} is not one line of text")
    if len(label) > MAX_LABEL:
        raise ValueError(f"label: {len(label)} characters, at most {MAX_LABEL}")
    return label


@dataclass(frozen=True, slots=True)
class Range:
    """A prefix the fraud rules watch, what kind of range it is, and where the entry comes from."""

    prefix: str
    kind: str
    label: str
    source: str

    def __post_init__(self) -> None:
        _check_prefix(self.prefix)
        _check_kind(self.kind)
        _check_label(self.label)


def _seed() -> tuple[Range, ...]:
    prefixes = [p for _, _, listed in _SOURCES for p in listed.split()]
    groups = default_groups()
    group_of = {p: groups.name_of(p) for p in prefixes}
    seen: dict[str, tuple[str, list[str]]] = {}
    for source, kind, listed in _SOURCES:
        for prefix in listed.split():
            if prefix not in seen:
                seen[prefix] = (kind, [source])
                continue
            before, sources = seen[prefix]
            if source not in sources:
                sources.append(source)
            seen[prefix] = (min(before, kind, key=KINDS.index), sources)
    return tuple(
        Range(prefix, kind, _label(prefix, group_of[prefix]), "; ".join(sources))
        for prefix, (kind, sources) in seen.items()
    )


def _label(prefix: str, group: str) -> str:
    if prefix in _LABELS:
        return _LABELS[prefix]
    if len(prefix) == 7 and prefix.startswith("1") and prefix.endswith("555"):
        return f"{group} 555"  # NANP NXX 555: directory and premium services
    return group


SEEDED: tuple[Range, ...] = _seed()


def check_edit(edit: Mapping) -> dict:
    """The edit, checked: {prefix, kind, label} or {prefix, removed: True}; ValueError names
    the field at fault."""
    if not isinstance(edit, Mapping):
        raise ValueError(f"an edit is a mapping of {', '.join(EDIT_FIELDS)}, not {edit!r}")
    unknown = sorted(set(edit) - set(EDIT_FIELDS))
    if unknown:
        raise ValueError(f"{unknown[0]}: not a field of a range edit ({', '.join(EDIT_FIELDS)})")
    if "prefix" not in edit:
        raise ValueError("prefix: missing")
    prefix = _check_prefix(edit["prefix"])
    if "removed" in edit:
        if edit["removed"] is not True:
            raise ValueError(f"removed: must be true (or left out), not {edit['removed']!r}")
        extra = sorted({"kind", "label"} & set(edit))
        if extra:
            raise ValueError(f"{extra[0]}: a removal takes only the prefix")
        return {"prefix": prefix, "removed": True}
    if "kind" not in edit:
        raise ValueError("kind: missing")
    return {
        "prefix": prefix,
        "kind": _check_kind(edit["kind"]),
        "label": _check_label(edit.get("label", "")),
    }


@dataclass(frozen=True, slots=True)
class RangeList:
    """The ranges in force: the seed with an operator's edits applied, one range per prefix."""

    ranges: tuple[Range, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for entry in self.ranges:
            if entry.prefix in seen:
                raise ValueError(f"prefix {entry.prefix} is listed twice")
            seen.add(entry.prefix)

    @classmethod
    def of(cls, edits: Sequence[Mapping] = (), seeded: Sequence[Range] = SEEDED) -> RangeList:
        """The seed with `edits` applied in order; a later edit of a prefix overrides an earlier.

        An edit replaces the entry with its exact prefix in place, or is added at the end. A
        removal of a prefix not listed changes nothing: edits are kept across releases, and a
        release may drop a seeded range an operator had removed already.
        """
        by_prefix = {entry.prefix: entry for entry in seeded}
        for number, edit in enumerate(edits, start=1):
            try:
                checked = check_edit(edit)
            except ValueError as error:
                raise ValueError(f"edit {number}: {error}") from None
            if checked.get("removed"):
                by_prefix.pop(checked["prefix"], None)
            else:
                by_prefix[checked["prefix"]] = Range(source=EDITED, **checked)
        return cls(tuple(by_prefix.values()))

    def match(self, callees: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
        """Per callee, the index into `ranges` of its longest matching range (int32) and that
        range's kind, an index into KINDS (int8); -1 for both where none matches."""
        index = longest_prefix(callees, [entry.prefix for entry in self.ranges])
        # One entry per range, then NO_RANGE: index -1 (no match) takes the last.
        kinds = np.array([KINDS.index(e.kind) for e in self.ranges] + [NO_RANGE], dtype=np.int8)
        return index, kinds[index]
