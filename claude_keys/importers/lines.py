"""The line-reading primitives every reader stands on: raw lines of a byte range of a
file, one JSON value per line, text fields held to the text gate, and BadLine (a
malformed line, with its file and number)."""
from __future__ import annotations

import os

from ..errors import InvalidInput
from ..values import JSON_ERRORS, LazyPattern, check_text, json_scanner

# The json module's C scanner, called directly: json.loads adds ~2 µs a line around it
# (made without loading the json package: see values.json_scanner).
_scan = json_scanner()


class BadLine(InvalidInput):
    """A malformed line; picklable, so a worker's report reaches the importing process."""

    def __init__(self, path: str, line: int, reason: str):
        super().__init__(path, line, reason)
        self.path, self.line, self.reason = path, line, reason

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


def json_line(raw: bytes):
    """The JSON value of one line (ValueError when it is not one, or not UTF-8)."""
    text = raw.decode("utf-8").strip()
    try:
        value, end = _scan(text, 0)
    except JSON_ERRORS:
        raise ValueError("not valid JSON") from None
    except RecursionError:  # a line of thousands of nested brackets
        raise ValueError("not valid JSON (nested too deeply)") from None
    if end != len(text):
        raise ValueError("not valid JSON")
    return value


def shown(path: str) -> str:
    """A path for a message: undecodable bytes of its name as \\x escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def lines(f, start: int = 0, end: int | None = None, positions: bool = False):
    """The raw lines of an open binary file that begin in [start, end); with
    positions=True, (line, the offset just after it)."""
    if start:
        f.seek(start - 1)
        if f.read(1) != b"\n":
            f.readline()  # the line under way belongs to the unit before
    pos = f.tell()
    for raw in f:
        if end is not None and pos >= end:
            return
        pos += len(raw)
        yield (raw, pos) if positions else raw


# C1 controls and the bidirectional controls (which reorder what a terminal shows).
# values.check_text refuses them too once it is the strict gate (issue 12); kept here so
# that text from files is held to that rule on its own.
_UNSAFE_TEXT = LazyPattern("[\x80-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def text_field(value, what: str, *, max_len: int = 256, allow_empty: bool = False) -> str:
    """Text from a file (a model, project, session, request or message id, key): valid
    UTF-8, no control or bidirectional-override characters, at most `max_len`
    characters. Plain printable ASCII (nearly everything) passes at once."""
    if type(value) is str and value.isascii() and value.isprintable() and len(value) <= max_len \
            and (value or allow_empty):
        return value
    check_text(value, what, max_len=max_len, allow_empty=allow_empty)
    if _UNSAFE_TEXT.search(value):
        raise InvalidInput(f"{what} must not contain control or bidirectional-override characters")
    return value
