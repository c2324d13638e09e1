"""A CSV row's raw text (what the quarantine keeps) is the line the file holds, whichever way
`CsvRows.raw` finds it: fields joined again for a part without quotes or recoded lines, the
line sliced from the bytes otherwise."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from functions.ingest.formats.source import read_csv_rows

# Field text as switches write it: digits, letters, spaces, punctuation, accented names; no
# delimiter, quote or line end (those make a different row, or a quoted one).
FIELD = st.text(alphabet=st.sampled_from("0123456789abcXYZ -+:.;é€中\t"), min_size=0, max_size=12)


def _file(rows: list[list[str]], crlf: bool, delimiter: str = ",") -> bytes:
    width = len(rows[0])
    header = delimiter.join(f"c{i}" for i in range(width))
    end = "\r\n" if crlf else "\n"
    return (end.join([header, *(delimiter.join(row) for row in rows)]) + end).encode()


def _rows(width: int):
    # Some rows a field short or long: those are rejected (column_count), not table rows.
    row = st.lists(FIELD, min_size=max(width - 1, 1), max_size=width + 1)
    return st.lists(row, min_size=1, max_size=30).map(
        lambda rows: [[f"r{i}", *r[1:]] if r else [f"r{i}"] for i, r in enumerate(rows)]
    )


@given(width=st.integers(2, 6), data=st.data(), crlf=st.booleans())
def test_joined_fields_are_the_line_the_file_holds(width, data, crlf):
    rows = data.draw(_rows(width))
    rows[0] = [f"first{i}" for i in range(width)]  # the header's width is the table's
    delimiter = data.draw(st.sampled_from([",", ";", "|"]))
    content = _file(rows, crlf, delimiter)
    read = read_csv_rows(content, source="sw1/cdrs.csv", header_line=True, delimiter=delimiter)
    assert read.verbatim
    every = np.arange(read.table.num_rows)
    assert read.raw(every).to_pylist() == read.lines.text(read.line.to_numpy()).to_pylist()
    # And the rows are the lines they say they are.
    lines = content.decode().split("\r\n" if crlf else "\n")
    assert read.raw(every).to_pylist() == [lines[n - 1] for n in read.line.to_pylist()]


def test_a_part_with_quotes_or_recoded_lines_slices_the_bytes():
    quoted = b'c0,c1\n"a,1",2\nb,3\n'
    read = read_csv_rows(quoted, source="q.csv", header_line=True)
    assert not read.verbatim  # the reader took the quotes away: joining would lose them
    assert read.raw(np.arange(2)).to_pylist() == ['"a,1",2', "b,3"]

    latin1 = "c0,c1\nJos\xe9,1\nb,2\n".encode("latin-1")
    read = read_csv_rows(latin1, source="l.csv", header_line=True)
    assert not read.verbatim  # the table holds the recoding, the quarantine the file's bytes
    assert read.raw(np.arange(2)).to_pylist() == ["Jos\\xe9,1", "b,2"]


def test_a_column_the_reader_typed_itself_slices_the_bytes():
    # A header name spelt otherwise than the reader was told (here a no-break space) escapes
    # the text types: its column is read as numbers, and "007" would come back as "7".
    odd = "c0,c1\u00a0,c2\nr1,007,x\nr2,0010,y\n".encode()
    read = read_csv_rows(odd, source="o.csv", header_line=True)
    assert read.raw(np.arange(2)).to_pylist() == ["r1,007,x", "r2,0010,y"]


def test_a_headerless_part_with_a_byte_order_mark_keeps_it_in_the_first_row():
    # The reader drops the mark; the file holds it, before the first row's first field.
    marked = b"\xef\xbb\xbfr1,007,x\nr2,0010,y\n"
    read = read_csv_rows(marked, source="m.csv", column_names=["a", "b", "c"])
    assert read.raw(np.arange(2)).to_pylist() == ["\ufeffr1,007,x", "r2,0010,y"]
