"""Claude Code session logs: `~/.claude/projects/<project>/<session>.jsonl`, with
subagent logs below the session (`<session>/subagents/*.jsonl`).

One request per message.id + requestId. Claude Code writes a response once per
content block, each line carrying the usage so far, so the copy with the most tokens
is kept (on a tie, a main-conversation copy over a sidechain one). A line whose
message.id is known under another requestId (a subagent replaying its parent's message,
a resumed session's copy) is that request, not a new one, whichever was read first
(see staging.py). Skipped,
and counted: lines without usage, `<synthetic>` messages, lines that do not parse, an
unfinished last line (read again by the next import, once complete), implausible
tokens or times, and text that fails the text gate (a lone surrogate, a control or
bidirectional-override character, a 200,000-character model). 5-minute and 1-hour
cache writes are kept apart and priced apart; `usage.speed: "fast"` is priced at
fast-mode rates, and `usage.server_tool_use.web_search_requests` adds the searches'
price. A line's own `costUSD` is its cost unless the cost mode says otherwise
(pricing.COST_MODES). The project is the log's project folder; the session is the line's
sessionId; --key attributes the usage to a key.

Only regular files are read: a FIFO, a device, a dangling symlink or a symlink loop in
a log folder is one warning and a count, and the rest is imported. Symlinked folders
are followed, each folder once.
"""
from __future__ import annotations

import os
import stat

from ..errors import InvalidInput
from ..pricing import Pricer
from ..secret import _sha256
from ..values import LAST_MS, MAX_COUNT, now_ms, parse_cost, time_ms
from .offsets import EMPTY, identity
from .lines import json_line, lines, shown, text_field

_MEMORY = 10_000  # requests held to fold repeated lines before they go to staging
_SHAPE = ("sessionId", "uuid", "leafUuid", "parentUuid", "messageId")  # keys only its lines have
FUTURE_MS = 86_400_000


def looks_like_log(record) -> bool:
    """A Claude Code log line, by its own shape: a "type" and one of the ids every kind
    of its lines carries (a summary's leafUuid, a snapshot's messageId, …). A record
    of our import format with a typo is not one: it follows the jsonl rules."""
    return type(record) is dict and type(record.get("type")) is str and any(k in record for k in _SHAPE)


def default_folders(environ=None) -> tuple[list[str], list[str]]:
    """(Claude config folders that hold logs, every folder looked at): CLAUDE_CONFIG_DIR
    (one folder, or several separated by commas), else ~/.claude and ~/.config/claude
    ($XDG_CONFIG_HOME/claude)."""
    environ = os.environ if environ is None else environ
    given = environ.get("CLAUDE_CONFIG_DIR", "").strip()
    if given:
        candidates = [os.path.expanduser(p.strip()) for p in given.split(",") if p.strip()]
    else:
        config_home = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
        candidates = [os.path.join(os.path.expanduser("~"), ".claude"), os.path.join(config_home, "claude")]
    found = [p for p in dict.fromkeys(candidates) if os.path.isdir(os.path.join(p, "projects"))]
    return found, list(dict.fromkeys(candidates))


def log_files(path: str, problem):
    """(file, project, stat) for every log under `path`, in path order, found as they
    are needed (a folder may hold tens of thousands of logs). `path` may be a Claude
    config folder (~/.claude), its `projects/` folder, one project's folder, or one log.
    `problem(path, why)` hears of each thing that could not be read."""
    path = os.path.abspath(path)
    if os.path.isfile(path):
        yield path, _project_of_file(path), os.stat(path)
        return
    if os.path.isdir(os.path.join(path, "projects")):
        path = os.path.join(path, "projects")
    try:
        one_project = os.path.basename(path) != "projects" and any(
            e.name.endswith(".jsonl") and e.is_file() for e in os.scandir(path))
    except OSError as e:
        problem(path, _why(e))
        return
    here = os.path.basename(path)
    for file, st, below in _walk(path, problem):
        # A folder of projects: the first folder below it; one project's folder: itself.
        yield file, here if one_project or below is None else below, st


def _walk(top: str, problem):
    """(path, stat, the name of the folder below `top` it is in, or None) of the
    regular `*.jsonl` files below `top`: a folder's files (by name), then its folders
    (by name), symlinked ones too, each folder once (so a symlink loop ends)."""
    seen: set = set()
    folders = [(top, None)]
    while folders:
        folder, first = folders.pop()
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen:
                problem(folder, "already read through another link (a symlink loop?)")
                continue
            seen.add((st.st_dev, st.st_ino))
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            problem(folder, _why(e))
            continue
        below = []
        for entry in entries:
            if entry.name.endswith(".jsonl"):
                try:
                    st = os.stat(entry.path)  # through a symlink
                except OSError as e:
                    problem(entry.path, _why(e))
                    continue
                if stat.S_ISREG(st.st_mode):
                    yield entry.path, st, first
                elif not stat.S_ISDIR(st.st_mode):
                    problem(entry.path, "not a regular file")
                    continue
            if _is_dir(entry):
                below.append((entry.path, first if first is not None else entry.name))
        folders.extend(reversed(below))


def _is_dir(entry) -> bool:
    try:
        return entry.is_dir()  # follows symlinks; False for a dangling one
    except OSError:
        return False


def _why(e: OSError) -> str:
    import errno

    if e.errno == errno.ELOOP:
        return "a symlink loop"
    if e.errno == errno.ENOENT:
        return "a dangling symlink (or it vanished)"
    return e.strerror or str(e)


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


def _session_of_file(file: str) -> str:
    """The session a log belongs to, from its path (lines usually say it themselves)."""
    parts = file.split(os.sep)
    if len(parts) >= 3 and parts[-2] == "subagents":
        return parts[-3]
    return os.path.basename(file)[:-len(".jsonl")] if file.endswith(".jsonl") else os.path.basename(file)


class _Skip(Exception):
    """A line that is not a countable request; its argument says why."""


def read(part, staging, result, *, key=None, prices=None) -> None:
    """Parse a part (a log, or a byte range of one) into `staging`. For a file's last
    part, result.read_to[path] is where its last complete line ends."""
    context = _Context(part, key, prices)
    skipped = result.skipped
    held: dict = {}
    count = 0
    done = part.start
    try:
        f = open(part.path, "rb")
    except OSError as e:
        result.warnings.append(f"{shown(part.path)}: not read: {_why(e)}")
        skipped["file not read"] = skipped.get("file not read", 0) + 1
        return
    with f:
        for raw, end in lines(f, part.start, part.end, positions=True):
            count += 1
            complete = raw.endswith(b"\n")
            if complete:
                done = end
            if b'"usage"' not in raw:
                why = "no usage" if complete else "unfinished last line"
            else:
                try:
                    record, rank = context.request(json_line(raw), raw)
                except (ValueError, _Skip) as e:
                    why = e.args[0] if isinstance(e, _Skip) else "unreadable line"
                    if not complete:
                        why = "unfinished last line"  # read again next time
                else:
                    if not record[11]:
                        result.unpriced_models.add(record[4] or "(none)")
                    earlier = held.get(record[0])
                    if earlier is None or rank[:2] > earlier[1][:2]:
                        held[record[0]] = (record, rank)
                    if len(held) >= _MEMORY:
                        _hand_over(held, staging)
                    continue
            skipped[why] = skipped.get(why, 0) + 1
        if part.last:
            result.read_to[part.path] = identity(f, done, part.seed or EMPTY)
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
        raise _Skip("implausible usage")
    return value


def _text(value, what, allow_empty=False):
    try:
        return text_field(value, what, allow_empty=allow_empty)
    except InvalidInput:
        raise _Skip("bad text") from None


class _Context:
    """What every line of a part shares: its key, project, session, pricing, now."""

    def __init__(self, part, key, prices):
        self.key_id = key["id"] if key is not None else None
        self.project = part.project
        try:
            self.session = text_field(_session_of_file(part.path), "session id")
        except InvalidInput:
            self.session = None
        self.subagent = f"{os.sep}subagents{os.sep}" in part.path
        self.price = Pricer(prices)
        self.latest = now_ms() + FUTURE_MS
        self.good: set = set()  # models and sessions that passed the text rule (they repeat)

    def known(self, value, what, allow_empty=False):
        if type(value) is str and value in self.good:
            return value
        _text(value, what, allow_empty)
        self.good.add(value)
        return value

    def request(self, line, raw: bytes):
        """(record, rank) for a request; raises _Skip (or ValueError) otherwise."""
        if type(line) is not dict:
            raise _Skip("no usage")
        if line.get("type") == "progress":  # a subagent's message relayed into the parent log
            data = line.get("data")
            line = data.get("message") if type(data) is dict else None
            if type(line) is not dict:
                raise _Skip("no usage")
        message = line.get("message")
        if type(message) is not dict:
            raise _Skip("no usage")
        tokens = message.get("usage")
        if type(tokens) is not dict:
            raise _Skip("no usage")
        inp, out = tokens.get("input_tokens"), tokens.get("output_tokens")
        if type(inp) is not int or type(out) is not int:
            raise _Skip("no usage")
        model = message.get("model") or ""
        if model == "<synthetic>":
            raise _Skip("synthetic message")
        if type(model) is not str:
            raise _Skip("no usage")
        model = self.known(model, "model", allow_empty=True)
        at_ms = time_ms(line.get("timestamp"))
        if at_ms is None or not 0 <= at_ms < LAST_MS:
            raise _Skip("no timestamp")
        if at_ms > self.latest:
            raise _Skip("time in the future")
        creation = tokens.get("cache_creation")
        if type(creation) is dict:
            w5 = _count(creation.get("ephemeral_5m_input_tokens"))
            w1 = _count(creation.get("ephemeral_1h_input_tokens"))
        else:
            w5, w1 = _count(tokens.get("cache_creation_input_tokens")), 0
        inp, out, read = _count(inp), _count(out), _count(tokens.get("cache_read_input_tokens"))
        message_id = message.get("id") or None
        if message_id is not None:
            _text(message_id, "message id")
        request = line.get("requestId") or None
        if request is not None:
            _text(request, "request id")
        session = line.get("sessionId")
        session = self.known(session, "session id") if session else self.session
        if message_id and request:
            request_id = f"cc:{message_id}:{request}"
        elif message_id:  # the time is ISO text (it parsed): the id is as clean as its parts
            request_id = f"cc:{message_id}:{session}:{line.get('timestamp')}"
        else:  # nothing to deduplicate on: the line itself
            uuid = line.get("uuid")
            request_id = f"cc-line:{_text(uuid, 'uuid') if type(uuid) is str else _sha256(raw.strip()).hexdigest()[:40]}"
        if len(request_id) > 256:
            raise _Skip("bad text")
        given = line.get("costUSD")
        server = tokens.get("server_tool_use")
        searches = _count(server.get("web_search_requests")) if type(server) is dict else 0
        try:
            given = parse_cost(given) if type(given) in (int, float) and 0 <= given < float("inf") else None
            cost = self.price.cost(given, model, inp, out, read, w5, w1, tokens.get("speed") == "fast",
                                   searches)
            cost, priced = (0, 0) if cost is None else (cost, 1)
        except InvalidInput:
            raise _Skip("implausible usage") from None
        record = (request_id, self.key_id, self.project, at_ms, model, inp, out, read, w5, w1,
                  cost, priced, session)
        main = 0 if self.subagent or line.get("isSidechain") is True else 1
        return record, (inp + out + read + w5 + w1, main, 1, message_id)
