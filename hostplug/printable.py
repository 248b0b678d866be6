"""Text shown as it is, one line staying one line: another program's file names and sidecar texts can hold
newlines, escape sequences and direction marks that would fake or hide a line of a log, an error or a listing.

Standard library only: the quickest commands (``info``, ``show``) use it.
"""

from __future__ import annotations

import copy
import logging
import unicodedata
from typing import Any

# Characters that would break or disguise a readable line: controls (newline, escape), line and paragraph
# separators, and the marks that reverse the direction text is shown in
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _hidden(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Zl", "Zp") or char in _BIDI_CONTROLS


def printable(text: str) -> str:
    """``text`` with the characters that could fake or hide a log line written as escapes (``\\n``, ``\\x1b``,
    ``\\u202e``): a file named ``a\\nERROR b.dng`` stays on its one line."""
    if not any(_hidden(c) for c in text):
        return text
    return "".join(c.encode("unicode_escape").decode("ascii") if _hidden(c) else c for c in text)


class PrintableFormatter(logging.Formatter):
    """A log's lines with the message (file names and all) escaped by :func:`printable`; a traceback, should one
    be attached (``exc_info``), follows on lines of its own, each indented and escaped, so that a file name in it
    cannot start a line that looks like the log's."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        escaped = copy.copy(record)  # other handlers read the record too (the daemon's JSON log escapes by itself)
        escaped.message = printable(record.message)
        return super().formatMessage(escaped)

    def formatException(self, ei: Any) -> str:  # noqa: N802 (logging's name)
        return "\n".join(f"    {printable(line)}" for line in super().formatException(ei).splitlines())


def log_to_stderr(line_format: str) -> None:
    """Log INFO and above on stderr in ``line_format``, each message one line (:class:`PrintableFormatter`)."""
    handler = logging.StreamHandler()
    handler.setFormatter(PrintableFormatter(line_format))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
