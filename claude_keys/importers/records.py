"""Our own record format, as jsonl (one object per line) or csv (one row per line).

Fields, as `usage export` writes them: key (id or secret), project_id, at, model,
input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd,
request_id, session_id; cache_write_1h_tokens may say how many of the cache writes were
1-hour ones, speed ("standard" or "fast") prices a record without a cost at
fast-mode rates, and web_search_requests adds the web searches' price to it. With the
cost mode `calculate` a given cost_usd is ignored and the cost computed; with
`display` only a given cost_usd counts (see pricing.COST_MODES). Any problem with a line stops the whole import with its file and line
number: bad text (see lines.text_field), a time more than a day ahead, a project_id
that is not the project of the record's own key.

This is the import's hot loop, so it checks each distinct project, model and key only
once, and parses lines and times without the general-purpose parsers' overhead.
"""
from __future__ import annotations

import json

from .. import keys
from ..errors import ClaudeKeysError, InvalidInput
from ..pricing import Pricer, is_fast
from ..secret import _sha256
from ..usage import check_time
from ..values import LAST_MS, MAX_COUNT, now_ms, parse_cost, parse_count, parse_time, time_ms
from .lines import BadLine, json_line, lines, text_field

FIELDS = ("key", "project_id", "at", "model", "input_tokens", "output_tokens",
          "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens", "cost_usd",
          "request_id", "session_id", "speed", "web_search_requests")
_FIELD_SET = frozenset(FIELDS)



class KeyResolver:
    """KEY references in records -> (key id, project id), looked up once each."""

    def __init__(self, conn, default=None):
        self.conn = conn
        self.default = (default["id"], default["project_id"]) if default is not None else (None, None)
        self.cache: dict = {}

    def __call__(self, ref):
        if ref is None or ref == "":
            return self.default
        if not isinstance(ref, str):
            raise InvalidInput("key must be a key id or secret (text)")
        found = self.cache.get(ref)
        if found is None:
            row = keys.find(self.conn, text_field(ref, "key"), "the key field")
            found = self.cache[ref] = (row["id"], row["project_id"])
        return found


def _jsonl(part):
    """(line number within the part, record dict) for each non-blank line."""
    with open(part.path, "rb") as f:
        for n, raw in enumerate(lines(f, part.start, part.end), 1):
            if not raw.strip():
                continue
            try:
                obj = json_line(raw)
            except UnicodeDecodeError as e:
                raise BadLine(part.path, n, f"not UTF-8 text ({e.reason})") from None
            except ValueError as e:
                raise BadLine(part.path, n, str(e)) from None
            if type(obj) is not dict:
                raise BadLine(part.path, n, "expected a JSON object")
            yield n, obj


def _csv(path: str):
    import csv

    reader = None
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            unknown = [c for c in header or [] if c not in _FIELD_SET]
            if unknown or not header:
                raise BadLine(path, 1, f"unknown column(s) {', '.join(unknown) or '(no header)'}; "
                                       f"expected {', '.join(FIELDS)}")
            width = len(header)
            for values in reader:
                if len(values) > width:
                    raise BadLine(path, reader.line_num, "more values than columns")
                yield reader.line_num, {k: v for k, v in zip(header, values) if v != ""}
    except UnicodeDecodeError as e:
        raise InvalidInput(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise BadLine(path, reader.line_num if reader else 1, f"not valid CSV ({e})") from None


def read(part, sink, result, resolver: KeyResolver, *, prices=None) -> None:
    """Parse a part of a jsonl or csv file into `sink`."""
    convert = _Converter(resolver, prices, result)
    count = 0
    try:
        for n, obj in (_jsonl(part) if part.kind == "jsonl" else _csv(part.path)):
            count += 1
            try:
                sink.add(convert(obj))
            except ClaudeKeysError as e:
                raise BadLine(part.path, n, str(e)) from None
    finally:
        result.lines += count


class _Converter:
    """Record dict -> a usage row, checking every field; distinct texts checked once."""

    def __init__(self, resolver, prices, result):
        self.resolver, self.result = resolver, result
        self.price = Pricer(prices)
        self.texts: set = set()
        self.now = now_ms()

    def text(self, value, what, allow_empty=False) -> str:
        if type(value) is not str or value not in self.texts:
            text_field(value, what, allow_empty=allow_empty)
            self.texts.add(value)
        return value

    def __call__(self, obj: dict) -> tuple:
        if not _FIELD_SET.issuperset(obj):
            unknown = [k for k in obj if k not in _FIELD_SET]
            raise InvalidInput(f"unknown field(s) {', '.join(map(repr, unknown))}")
        get = obj.get
        key_id, key_project = self.resolver(get("key"))
        project = get("project_id") or key_project
        if project is None:
            raise InvalidInput("no key: give a key or project_id field, or --key")
        self.text(project, "project_id")
        request_id = get("request_id")
        if get("key") and project != key_project and not _from_claude_code(request_id):
            raise InvalidInput(f"project_id {project!r} is not the project of its key {key_id} "
                               f"({key_project!r})")
        at_ms = check_time(_time_ms(get("at")), self.now)
        model = get("model") or ""
        self.text(model, "model", allow_empty=True)
        inp, out, read = get("input_tokens", 0), get("output_tokens", 0), get("cache_read_tokens", 0)
        writes, hour_writes = get("cache_write_tokens", 0), get("cache_write_1h_tokens", 0)
        for value in (inp, out, read, writes, hour_writes):
            if type(value) is not int or not 0 <= value <= MAX_COUNT:
                inp, out, read, writes, hour_writes = map(_count, (inp, out, read, writes, hour_writes))
                break
        if hour_writes > writes:
            raise InvalidInput("cache_write_1h_tokens is more than cache_write_tokens")
        cost = get("cost_usd")
        cost_nanos = None if cost is None else parse_cost(cost)
        session = get("session_id") or None
        if session is not None:
            self.text(session, "session_id")
        fast = is_fast(get("speed"))
        searches = get("web_search_requests", 0)
        if type(searches) is not int or not 0 <= searches <= MAX_COUNT:
            searches = parse_count(searches, "web_search_requests")
        if request_id is None:
            # No id: one derived from the record, so re-importing the same file adds nothing.
            basis = json.dumps([key_id, project, at_ms, model, inp, out, read, writes, hour_writes,
                                cost_nanos])
            request_id = "imp_" + _sha256(basis.encode()).hexdigest()[:40]
        else:
            text_field(request_id, "request_id")
        if cost_nanos is None or self.price.mode != "auto":
            cost_nanos = self.price.cost(cost_nanos, model, inp, out, read, writes - hour_writes,
                                         hour_writes, fast, searches)  # may refuse
            if cost_nanos is None:  # unknown model (or no cost to display): $0, and marked
                self.result.unpriced_models.add(model or "(none)")
                return (request_id, key_id, project, at_ms, model, inp, out, read,
                        writes - hour_writes, hour_writes, 0, 0, session)
        return (request_id, key_id, project, at_ms, model, inp, out, read, writes - hour_writes,
                hour_writes, cost_nanos, 1, session)


def _from_claude_code(request_id) -> bool:
    """An exported Claude Code request (`cc:…`): its project is its log's folder, which
    `usage import --key` attributes to a key of another project, so it may differ."""
    return type(request_id) is str and request_id.startswith(("cc:", "cc-line:"))


def _count(value) -> int:
    if type(value) is int and 0 <= value <= MAX_COUNT:
        return value
    return parse_count(value, "token counts")


def _time_ms(text) -> int:
    ms = time_ms(text)
    if ms is None:
        if type(text) is not str:
            raise InvalidInput("at must be an ISO-8601 time")
        ms = parse_time(text)  # a date alone; otherwise raises with the full explanation
    if not 0 <= ms < LAST_MS:
        raise InvalidInput("at must be between 1970 and 9999")
    return ms
