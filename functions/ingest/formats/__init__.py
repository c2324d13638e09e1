"""CDR file formats by name, and the one entry point that parses any of them.

Names are the contract with carriers' ingest configuration: generic, freeswitch-csv,
freeswitch-json, asterisk-csv, vos3000.
"""

from __future__ import annotations

from collections.abc import Callable

from functions.ingest.formats import asterisk, freeswitch, generic, vos3000
from functions.ingest.formats.source import CdrFileError, decompress
from functions.shared.cdr import ParsedFile

__all__ = ["FORMATS", "CdrFileError", "UnknownFormatError", "parse_cdr_file"]

Parser = Callable[..., ParsedFile]

_PARSERS: dict[str, Parser] = {
    generic.NAME: generic.parse,
    freeswitch.CSV_NAME: freeswitch.parse_csv,
    freeswitch.JSON_NAME: freeswitch.parse_json,
    asterisk.NAME: asterisk.parse,
    vos3000.NAME: vos3000.parse,
}

FORMATS: tuple[str, ...] = tuple(_PARSERS)


class UnknownFormatError(ValueError):
    """A format name no parser is registered for."""


def parse_cdr_file(
    data: bytes, fmt: str, *, timezone: str = "UTC", source: str = "<file>"
) -> ParsedFile:
    """Parse one CDR file (gzip or plain) of format `fmt` into accepted and quarantined rows.

    `timezone` (IANA name) is the switch's zone for formats that write local wall-clock times;
    `source` names the file in error messages.
    """
    parser = _PARSERS.get(fmt)
    if parser is None:
        raise UnknownFormatError(f"unknown CDR format {fmt!r}; known formats: {', '.join(FORMATS)}")
    return parser(decompress(data, source), timezone=timezone, source=source)
