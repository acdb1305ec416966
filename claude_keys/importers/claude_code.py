"""Claude Code session logs: `~/.claude/projects/<project>/<session>.jsonl`, with
subagent logs below the session (`<session>/subagents/*.jsonl`).

One request per message.id + requestId. Claude Code writes a response once per
content block, each line carrying the usage so far, so the copy with the most tokens
is kept (and a main-conversation copy over a sidechain one). Skipped, and counted:
lines without usage, `<synthetic>` messages, lines that do not parse (a torn last
line). 5-minute and 1-hour cache writes are kept apart and priced apart. The project
is the log's project folder; --key attributes the usage to a key.
"""
from __future__ import annotations

import os

from ..errors import InvalidInput
from ..pricing import Pricer
from ..secret import _sha256
from ..values import LAST_MS, MAX_COUNT, parse_cost, time_ms
from .units import json_line, lines

_MEMORY = 10_000  # requests held to fold repeated lines before they go to staging


def log_files(path: str):
    """(file, project) for every log under `path`, in path order, found as they are
    needed (a folder may hold tens of thousands of logs). `path` may be a Claude config
    folder (~/.claude), its `projects/` folder, one project's folder, or one log."""
    path = os.path.abspath(path)
    if os.path.isfile(path):
        yield path, _project_of_file(path)
        return
    if os.path.isdir(os.path.join(path, "projects")):
        path = os.path.join(path, "projects")
    one_project = os.path.basename(path) != "projects" and any(
        name.endswith(".jsonl") and os.path.isfile(os.path.join(path, name)) for name in os.listdir(path))
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".jsonl"):
                file = os.path.join(root, name)
                if one_project:
                    yield file, os.path.basename(path)
                else:  # a folder of projects: the first folder below it
                    rel = os.path.relpath(file, path).split(os.sep)
                    yield file, rel[0] if len(rel) > 1 else os.path.basename(path)


def _project_of_file(file: str) -> str:
    """A log's project: the folder under `projects/`, else the folder holding its session
    (for a subagent's log, <project>/<session>/subagents/agent-….jsonl)."""
    parts = file.split(os.sep)
    if "projects" in parts[:-2]:
        i = len(parts) - 2 - parts[-2::-1].index("projects")
        return parts[i + 1]
    if len(parts) >= 4 and parts[-2] == "subagents":
        return parts[-4]
    return parts[-2] if len(parts) >= 2 else "unknown"


def read(part, staging, result, *, key=None, prices=None) -> None:
    """Parse a part (a log, or a byte range of one) into `staging`."""
    key_id = key["id"] if key is not None else None
    price = Pricer(prices)
    skipped = result.skipped
    held: dict = {}
    count = 0
    with open(part.path, "rb") as f:
        for raw in lines(f, part.start, part.end):
            count += 1
            if b'"usage"' not in raw:
                skipped["no usage"] = skipped.get("no usage", 0) + 1
                continue
            try:
                line = json_line(raw)
            except ValueError:
                skipped["unreadable line"] = skipped.get("unreadable line", 0) + 1
                continue
            record, rank, why = _request(line, raw, key_id, part.project, price)
            if record is None:
                skipped[why] = skipped.get(why, 0) + 1
                continue
            if not record[11]:
                result.unpriced_models.add(record[4] or "(none)")
            earlier = held.get(record[0])
            if earlier is None or rank > earlier[1]:
                held[record[0]] = (record, rank)
            if len(held) >= _MEMORY:
                _hand_over(held, staging)
    result.lines += count
    _hand_over(held, staging)


def _hand_over(held: dict, staging) -> None:
    for record, rank in held.values():
        staging.add(record, rank)
    held.clear()


def _count(value) -> int:
    """A token count as logged; anything that is not a plausible count is refused."""
    if value is None:
        return 0
    if type(value) is not int or not 0 <= value <= MAX_COUNT:
        raise ValueError("implausible usage")
    return value


def _request(line, raw: bytes, key_id, project, price):
    """(record, rank, None) for a request, or (None, None, why it was skipped)."""
    if type(line) is not dict:
        return None, None, "no usage"
    if line.get("type") == "progress":  # a subagent's message relayed into the parent log
        data = line.get("data")
        line = data.get("message") if type(data) is dict else None
        if type(line) is not dict:
            return None, None, "no usage"
    message = line.get("message")
    if type(message) is not dict:
        return None, None, "no usage"
    tokens = message.get("usage")
    if type(tokens) is not dict:
        return None, None, "no usage"
    inp, out = tokens.get("input_tokens"), tokens.get("output_tokens")
    if type(inp) is not int or type(out) is not int:
        return None, None, "no usage"
    model = message.get("model") or ""
    if model == "<synthetic>":
        return None, None, "synthetic message"
    if type(model) is not str:
        return None, None, "no usage"
    at_ms = time_ms(line.get("timestamp"))
    if at_ms is None or not 0 <= at_ms < LAST_MS:
        return None, None, "no timestamp"
    creation = tokens.get("cache_creation")
    try:
        if type(creation) is dict:
            w5 = _count(creation.get("ephemeral_5m_input_tokens"))
            w1 = _count(creation.get("ephemeral_1h_input_tokens"))
        else:
            w5, w1 = _count(tokens.get("cache_creation_input_tokens")), 0
        inp, out, read = _count(inp), _count(out), _count(tokens.get("cache_read_input_tokens"))
    except ValueError:
        return None, None, "implausible usage"
    message_id, request = message.get("id"), line.get("requestId")
    if message_id and request:
        request_id = f"cc:{message_id}:{request}"
    elif message_id:
        request_id = f"cc:{message_id}:{line.get('sessionId')}:{line.get('timestamp')}"
    else:  # nothing to deduplicate on: the line itself
        request_id = f"cc-line:{line.get('uuid') or _sha256(raw.strip()).hexdigest()[:40]}"
    given = line.get("costUSD")
    try:
        if type(given) in (int, float) and 0 <= given < float("inf"):
            cost, priced = parse_cost(given), 1
        else:
            cost = price(model, inp, out, read, w5, w1)
            cost, priced = (0, 0) if cost is None else (cost, 1)
    except InvalidInput:
        return None, None, "implausible usage"
    record = (request_id, key_id, project, at_ms, model, inp, out, read, w5, w1, cost, priced)
    return record, (0 if line.get("isSidechain") else 1, inp + out + read + w5 + w1), None
