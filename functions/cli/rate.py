"""`tollgate rate`: rate one CDR file offline against rate decks (also the what-if tool)."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import mmap
import os
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

from functions.cli import CliError, OperationError, json_flag
from functions.shared.money import Rounding, units_to_str

# Parquet output: zstd (compact for Athena scans); bench/rate_bench.py uses the same for its
# baseline so that the comparison is like for like.
PARQUET_COMPRESSION = "zstd"
_UNIQUE_COLUMNS = frozenset({"line", "call_id", "start_time", "callee", "answer_time", "end_time"})
# Text whose min/max prunes no query (ids, dialled numbers, deck labels): no statistics.
_UNSORTED_TEXT = frozenset(
    {
        "call_id",
        "callee",
        "matched_prefix",
        "destination",
        "supplier_prefix",
        "supplier_destination",
    }
)

# Parts past the parse at once (one being rated, one written): more would only hold memory.
_IN_FLIGHT = 2
# Encodings that cost less than PLAIN and store less (both measured on the rate bench): the
# line numbers rise by one, so their deltas pack into a few bits; call ids, with their
# lengths apart, leave zstd only the id bytes to compress.
_ENCODINGS = {"line": "DELTA_BINARY_PACKED", "call_id": "DELTA_LENGTH_BYTE_ARRAY"}

USAGE_EXAMPLE = (
    "tollgate rate cdrs.csv --format generic --customer-deck sell.csv "
    "--supplier-deck buy.csv --out rated.parquet"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rate",
        help="rate a CDR file against rate decks",
        description=f"Rate every CDR of a file. Example: {USAGE_EXAMPLE}",
    )
    parser.add_argument("cdr_file", metavar="CDR_FILE", type=Path)
    parser.add_argument("--format", required=True, dest="fmt", metavar="FMT")
    parser.add_argument("--customer-deck", required=True, type=Path, metavar="DECK.csv")
    parser.add_argument("--supplier-deck", type=Path, metavar="DECK.csv")
    parser.add_argument("--customer-currency", default="USD", metavar="CUR")
    parser.add_argument("--supplier-currency", default="USD", metavar="CUR")
    parser.add_argument(
        "--fx", type=Path, metavar="FX.csv", help="from_currency,to_currency,rate,effective_from"
    )
    parser.add_argument("--timezone", default="UTC", metavar="TZ", help="the switch's time zone")
    parser.add_argument(
        "--mapping",
        type=Path,
        metavar="MAPPING.json",
        help="--format mapped: the file's column mapping, as `tollgate switch columns` stores "
        "it (docs/formats.md)",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="OUT.(csv|parquet)")
    parser.add_argument(
        "--quarantine",
        type=Path,
        metavar="Q.(csv|parquet)",
        help="where rejected rows go (default: OUT with .quarantine.csv)",
    )
    parser.add_argument(
        "--tier",
        action="append",
        default=[],
        dest="tiers",
        metavar="NAME=MODE:PREFIXES:TIERS",
        help="what-if volume pricing, the file as one period, e.g. "
        "us=graduated:1,1242:100000:0.0045,:0.0040 (bounds in minutes; mode graduated or "
        "volume); repeatable",
    )
    parser.add_argument(
        "--plan-deck",
        action="append",
        default=[],
        dest="plan_decks",
        metavar="NAME=DECK.csv",
        help="what-if rate plans: the customer's deck of plan NAME (--customer-deck is the "
        "default plan's); repeatable",
    )
    parser.add_argument(
        "--plan-rule",
        action="append",
        default=[],
        dest="plan_rules",
        metavar="NAME:PREFIX[,PREFIX...]",
        help="calls from callers starting with these prefixes use plan NAME (the longest "
        "prefix wins; others use default), e.g. eea:33,49; repeatable",
    )
    parser.add_argument("--decimals", type=int, default=6, help="amount decimal places")
    parser.add_argument("--rounding", default="half_up", choices=("half_up", "up", "down"))
    json_flag(parser)
    parser.set_defaults(run=run)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise CliError(f"cannot read {what} {path}: {error.strerror or error}") from None


def _map(path: Path, what: str) -> bytes | mmap.mmap:
    """The file's bytes, memory-mapped: its pages come from the page cache as they are read
    (many per fault) instead of being copied into fresh memory first."""
    try:
        with path.open("rb") as handle:
            if os.fstat(handle.fileno()).st_size == 0:
                return b""  # an empty file cannot be mapped
            return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as error:
        raise CliError(f"cannot read {what} {path}: {error.strerror or error}") from None


def _output_kind(path: Path, option: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise CliError(f"{option} {path}: the file name must end in .csv or .parquet")
    return suffix[1:]


def run(args: argparse.Namespace) -> int:
    _keep_freed_memory()
    with _without_pandas():
        return _rate(args)


class _RefusePandas:
    """A meta path finder that makes `import pandas` fail (see `_without_pandas`)."""

    def find_spec(self, name: str, path=None, target=None):
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"{name} is not used by tollgate rate", name=name)
        return None


@contextlib.contextmanager
def _without_pandas():
    """Rating never touches pandas, but pyarrow imports it (~0.2 s) the first time it turns a
    numpy array into Arrow, only to ask whether the array is a pandas object. Refusing the
    import makes pyarrow answer "no pandas", as it does on Lambda where pandas is absent."""
    if "pandas" in sys.modules:  # already imported (e.g. by a test): nothing to save
        yield
        return
    finder = _RefusePandas()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def _keep_freed_memory() -> None:
    """Let glibc keep and reuse freed numpy buffers instead of returning them to the kernel.

    Each part allocates and frees the same column-sized arrays; with glibc's defaults every
    one is a fresh mmap (or a trimmed heap) whose pages fault in again, which cost more system
    time than the rating itself. Buffers up to 64 MiB now come from the heap, and up to
    256 MiB of free heap is kept. Arrow's own pool (mimalloc) already reuses its memory.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):  # not glibc (e.g. musl): keep its defaults
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 64 << 20)
    mallopt(m_trim_threshold, 256 << 20)


def _rate(args: argparse.Namespace) -> int:
    # Heavy imports here, so `tollgate --help` stays instant.
    from functions.ingest.formats import CdrFileError, UnknownFormatError, iter_cdr_chunks
    from functions.ingest.validate import columns_one_at_a_time, empty_quarantine
    from functions.rate.contracts import PeriodCounters
    from functions.rate.fx import FxError
    from functions.rate.rated import RatingSummary, rate_cdrs, summarise

    began = time.perf_counter()
    out_kind = _output_kind(args.out, "--out")
    quarantine_path = args.quarantine or args.out.with_suffix(".quarantine.csv")
    quarantine_kind = _output_kind(quarantine_path, "--quarantine")
    try:
        rounding = Rounding(args.decimals, args.rounding)
    except ValueError as error:
        raise CliError(str(error)) from None
    tiers = [_tier(text) for text in args.tiers]
    counters = PeriodCounters()
    plan_paths, plan_rules = _plans(args.plan_decks, args.plan_rules)
    mapping = mapping_option(args.mapping, args.fmt)
    source = str(args.cdr_file)

    def rate(part):
        customer, supplier, plans, fx = pricing.result()
        return rate_cdrs(
            part.cdrs,
            customer,
            supplier,
            fx=fx,
            rounding=rounding,
            tiers=tiers,
            counters=counters,
            plans=plans,
            plan_rules=plan_rules,
        )

    def write(rating: Future, part) -> RatingSummary:
        rated = rating.result()
        output.write(rated)
        if part.quarantine.num_rows:
            rejected.write(with_file(part.quarantine))
        return summarise(rated, part.quarantine, part.rows_in, rounding.decimals)

    def with_file(quarantine):
        return quarantine.add_column(0, "file", _repeat(source, quarantine.num_rows))

    summaries = []
    # Three stages on three threads: while part k is parsed here, part k-1 is rated and part
    # k-2 written (its rated rows and its quarantined ones). Arrow's kernels, numpy and the
    # Parquet encoder release the GIL, so the two cores share the work; with two stages the
    # writer's share made the rater wait. At most IN_FLIGHT parts are past the parse at once,
    # which bounds the memory.
    with (
        _Output(args.out, out_kind) as output,
        _Output(quarantine_path, quarantine_kind) as rejected,
        ThreadPoolExecutor(max_workers=1) as rater,
        ThreadPoolExecutor(max_workers=1) as writer,
        # The three stages keep both cores busy: a part's columns are parsed in turn.
        columns_one_at_a_time(),
    ):
        # The decks (read and hashed, their cached indexes mapped) are made ready on the
        # rater's thread while the first part is parsed on this one.
        pricing = rater.submit(_pricing, args, plan_paths)
        pending: deque[Future] = deque()
        try:
            data = _map(args.cdr_file, "CDR file")
            parts = iter_cdr_chunks(
                data, args.fmt, timezone=args.timezone, source=source, mapping=mapping
            )
            del data  # the iterator holds the (decompressed) bytes only while it reads them
            for part in parts:
                while len(pending) >= _IN_FLIGHT:
                    summaries.append(pending.popleft().result())
                pending.append(writer.submit(write, rater.submit(rate, part), part))
                del part
            while pending:
                summaries.append(pending.popleft().result())
        except (CliError, UnknownFormatError, CdrFileError, FxError) as error:
            pricing.result()  # a deck's or FX table's error first, as it is read first
            if isinstance(error, CliError):
                raise
            raise CliError(str(error)) from None
        if rejected.empty:  # nothing quarantined: the file still says so, with its columns
            rejected.write(with_file(empty_quarantine()))

    summary = RatingSummary.merge(summaries)
    tier_lines = _tier_results(tiers, counters, rounding)
    _print_summary(summary, args, quarantine_path, time.perf_counter() - began, tier_lines)
    return 0


def _pricing(args: argparse.Namespace, plan_paths: dict[str, Path]):
    """(customer deck, supplier deck or None, plan decks, FX table or None), indexed for
    rating; CliError naming the file at fault."""
    from functions.rate.deck import InvalidDeckError, load_deck_index
    from functions.rate.fx import FxError, parse_fx
    from functions.rate.rating import DeckIndexError

    def deck(path: Path, currency: str):
        try:
            # Compiled and indexed once per deck content; later runs map the cached index.
            index, _skipped = load_deck_index(path, currency=currency)
        except OSError as error:
            raise CliError(f"cannot read deck {path}: {error.strerror or error}") from None
        except (InvalidDeckError, DeckIndexError) as error:
            raise CliError(f"invalid deck {path}:\n{error}") from None
        return index

    customer = deck(args.customer_deck, args.customer_currency)
    supplier = deck(args.supplier_deck, args.supplier_currency) if args.supplier_deck else None
    plans = {name: deck(path, args.customer_currency) for name, path in plan_paths.items()}
    fx = None
    if args.fx:
        try:
            fx = parse_fx(_read(args.fx, "FX table").decode(), str(args.fx))
        except (FxError, UnicodeDecodeError) as error:
            raise CliError(str(error)) from None
    return customer, supplier, plans, fx


def mapping_option(path: Path | None, fmt: str):
    """--mapping FILE.json as a ColumnMapping (None without one); CliError naming the member
    at fault. `tollgate reconcile --mapping` reads a partner's spreadsheet with it too."""
    from functions.ingest.formats import MAPPED_FORMATS, column_mapping
    from functions.ingest.formats.mapped import MappingError

    if path is None:
        if fmt == "mapped":
            raise CliError("--format mapped needs --mapping MAPPING.json (docs/formats.md)")
        return None
    if fmt not in MAPPED_FORMATS:
        raise CliError(f"--mapping: format {fmt} takes no column mapping")
    try:
        data = json.loads(_read(path, "mapping"))
    except ValueError as error:
        raise CliError(f"--mapping {path}: not JSON ({error})") from None
    try:
        return column_mapping(fmt, data)
    except MappingError as error:
        raise CliError(f"--mapping {path}: {error}") from None


def _plans(decks: list[str], rules: list[str]) -> tuple[dict[str, Path], dict[str, str]]:
    """`--plan-deck NAME=DECK.csv` and `--plan-rule NAME:PREFIX,...` as {plan: path} and
    {caller prefix: plan}; CliError naming the option and what is wrong."""
    from functions.rate.plans import DEFAULT_PLAN, check_caller_prefix
    from functions.shared.ids import check_name

    paths: dict[str, Path] = {}
    for text in decks:
        name, _, path = text.partition("=")
        if not path:
            raise CliError(f"invalid --plan-deck {text!r}: use NAME=DECK.csv")
        try:
            check_name("plan", name)
        except ValueError as error:
            raise CliError(f"invalid --plan-deck {text!r}: {error}") from None
        if name == DEFAULT_PLAN or name in paths:
            raise CliError(
                f"invalid --plan-deck {text!r}: plan {name} already has a deck "
                "(the default plan's is --customer-deck)"
            )
        paths[name] = Path(path)
    prefixes: dict[str, str] = {}
    for text in rules:
        name, _, listed = text.partition(":")
        if name != DEFAULT_PLAN and name not in paths:
            raise CliError(f"invalid --plan-rule {text!r}: plan {name!r} has no --plan-deck")
        try:
            for prefix in (check_caller_prefix(p) for p in listed.split(",")):
                if prefixes.get(prefix, name) != name:
                    raise ValueError(f"caller prefix {prefix} is already plan {prefixes[prefix]}")
                prefixes[prefix] = name
        except ValueError as error:
            raise CliError(f"invalid --plan-rule {text!r}: {error}") from None
    return paths, prefixes


def _tier(text: str):
    """`NAME=MODE:PREFIXES:TIERS` as a TierSchedule; CliError naming what is wrong."""
    from functions.rate.tiers import TierSchedule, parse_tiers

    name, _, rest = text.partition("=")
    parts = rest.split(":", 2)
    if not name or len(parts) != 3:
        raise CliError(f"invalid --tier {text!r}: use NAME=MODE:PREFIXES:TIERS")
    mode, prefixes, tiers = parts
    try:
        return TierSchedule(name, tuple(prefixes.split(",")), mode, parse_tiers(tiers))
    except ValueError as error:
        raise CliError(f"invalid --tier {text!r}: {error}") from None


def _tier_results(tiers, counters, rounding: Rounding) -> list[dict]:
    """Per schedule: minutes, what its calls were charged, and a volume schedule's true-up."""
    true_ups = counters.true_ups(tiers, rounding)
    scale = rounding.decimals
    results = []
    for t in tiers:
        seconds, charged = counters.totals(t.name, rounding)
        result = {
            "name": t.name,
            "mode": t.mode,
            "billed_seconds": seconds,
            "charged": units_to_str(charged, scale),
        }
        if t.name in true_ups:
            result["true_up"] = units_to_str(true_ups[t.name], scale)
            result["total"] = units_to_str(charged + true_ups[t.name], scale)
        results.append(result)
    return results


def _repeat(value: str, count: int):
    import pyarrow as pa

    return pa.repeat(pa.scalar(value), count).cast(pa.string())


class _Output:
    """One output file written part by part: Parquet row groups or CSV, created on first use."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path, self.kind, self._writer = path, kind, None

    @property
    def empty(self) -> bool:
        """Nothing written yet (the file is not created until the first table)."""
        return self._writer is None

    def __enter__(self) -> _Output:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self

    def write(self, table) -> None:
        import pyarrow.csv as pa_csv
        import pyarrow.parquet as pq

        try:
            if self._writer is None and self.kind == "parquet":
                self._writer = pq.ParquetWriter(
                    self.path,
                    table.schema,
                    compression=PARQUET_COMPRESSION,
                    # Dictionary pages only where values repeat; on near-unique columns
                    # (ids, numbers, times) the attempt is wasted work before the fallback.
                    use_dictionary=[c for c in table.column_names if c not in _UNIQUE_COLUMNS],
                    # decimal128(18, s) as INT64 (the Parquet spec's encoding for precision
                    # <= 18): the same exact values, cheaper than 16-byte fixed-length arrays.
                    store_decimal_as_integer=True,
                    write_statistics=[c for c in table.column_names if c not in _UNSORTED_TEXT],
                    column_encoding={
                        c: e for c, e in _ENCODINGS.items() if c in table.column_names
                    },
                    # Values handed to each column writer at a time (default 1,024): fewer,
                    # larger batches cost less per value and give the same file.
                    write_batch_size=8192,
                )
            elif self._writer is None:
                options = pa_csv.WriteOptions(quoting_style="needed")
                self._writer = pa_csv.CSVWriter(self.path, table.schema, write_options=options)
            self._writer.write_table(table)
        except OSError as error:  # the input was fine: the disk or the path refused
            raise OperationError(f"cannot write {self.path}: {error}") from None

    def __exit__(self, *exc_info) -> None:
        if self._writer is not None:
            self._writer.close()


def summary_payload(
    summary,
    args: argparse.Namespace,
    quarantine_path: Path,
    seconds: float,
    tiers: list[dict] | None = None,
) -> dict:
    """`tollgate rate --json`: counts that reconcile, exact totals as decimal strings."""

    def exact(value: Decimal | None) -> str | None:
        return None if value is None else format(value, "f")

    return {
        "file": str(args.cdr_file),
        "format": args.fmt,
        "rows_in": summary.rows_in,
        "rated": summary.rated,
        "unrated": summary.unrated,
        "quarantined": summary.quarantined,
        "unrated_reasons": dict(sorted(summary.unrated_reasons.items())),
        "quarantine_reasons": dict(sorted(summary.quarantine_reasons.items())),
        "reconciles": summary.reconciles,
        "billed_seconds": summary.billed_seconds,
        "currency": summary.currency,
        "customer_total": exact(summary.customer_total),
        "surcharge_total": exact(summary.surcharge_total),
        "supplier_total": exact(summary.supplier_total),
        "margin_total": exact(summary.margin_total),
        "supplier_unrated": summary.supplier_unrated,
        "out": str(args.out),
        "quarantine": str(quarantine_path),
        "seconds": round(seconds, 3),
        "tiers": tiers or [],
    }


def _print_summary(
    summary,
    args: argparse.Namespace,
    quarantine_path: Path,
    seconds: float,
    tiers: list[dict] | None = None,
) -> None:
    if args.json:
        print(json.dumps(summary_payload(summary, args, quarantine_path, seconds, tiers)))
        return

    def count(n: int) -> str:
        return f"{n:>12,}"

    def breakdown(reasons: dict[str, int]) -> str:
        parts = ", ".join(f"{k} {v:,}" for k, v in sorted(reasons.items()))
        return f"  ({parts})" if parts else ""

    out = sys.stdout
    print(f"file           {args.cdr_file} ({args.fmt})", file=out)
    print(f"rows in        {count(summary.rows_in)}", file=out)
    print(f"  rated        {count(summary.rated)}", file=out)
    print(f"  unrated      {count(summary.unrated)}{breakdown(summary.unrated_reasons)}", file=out)
    print(
        f"  quarantined  {count(summary.quarantined)}{breakdown(summary.quarantine_reasons)}"
        f"  -> {quarantine_path}",
        file=out,
    )
    check = "reconciles" if summary.reconciles else "DOES NOT RECONCILE"
    print(f"accounting     rows in = rated + unrated + quarantined: {check}", file=out)
    minutes = (Decimal(summary.billed_seconds) / 60).quantize(Decimal("0.1"))
    print(f"billed minutes {minutes:>15,}", file=out)
    cur = summary.currency
    print(f"customer total {summary.customer_total:>15} {cur}", file=out)
    if summary.surcharge_total:
        print(f"surcharges     {summary.surcharge_total:>15} {cur}", file=out)
    if summary.supplier_total is not None:
        print(f"supplier cost  {summary.supplier_total:>15} {cur}", file=out)
        print(f"margin         {summary.margin_total:>15} {cur}", file=out)
        if summary.supplier_unrated:
            print(
                f"warning        {summary.supplier_unrated:,} rated calls have no supplier cost",
                file=out,
            )
    for t in tiers or []:
        minutes = (Decimal(t["billed_seconds"]) / 60).quantize(Decimal("0.1"))
        line = f"tier {t['name']:<9} {t['mode']:<9} {minutes:>12,} min  charged {t['charged']}"
        if "true_up" in t:  # the provisional price until the period closes
            line += f", true-up {t['true_up']}, total {t['total']}"
        print(line + f" {cur}", file=out)
    rate = summary.rows_in / seconds if seconds > 0 else 0
    print(f"output         {args.out}  ({seconds:.2f} s, {rate:,.0f} CDRs/s)", file=out)
