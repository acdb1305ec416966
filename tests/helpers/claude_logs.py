"""A generator of Claude Code session logs whose true totals are known.

It writes what Claude Code writes: a response once per content block (same message.id
and requestId; earlier lines carry placeholder output_tokens), user lines (some with
"usage" in their text), resumed sessions that repeat earlier requests, subagent logs
(sidechains) below their session, `<synthetic>` messages, old-style flat cache fields,
1-hour cache writes, and a torn last line. The expected totals are computed from the
requests it made up, with its own price table, never by the importer's code.

Used by the tests and by bench/ (which also hands the same logs to ccusage).
"""
from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

# $ per million tokens: input, output, cache read, 5-minute write, 1-hour write
PRICES = {
    "claude-sonnet-4-5-20250929": (3, 15, 0.3, 3.75, 6),
    "claude-opus-4-5-20251101": (5, 25, 0.5, 6.25, 10),
    "claude-haiku-4-5-20251001": (1, 5, 0.1, 1.25, 2),
    "claude-opus-4-1-20250805": (15, 75, 1.5, 18.75, 30),
    "claude-sonnet-4-20250514": (3, 15, 0.3, 3.75, 6),
}
MODELS = list(PRICES)
WORDS = "the quick brown fox jumps over lazy dog refactor module function test build cache".split()


@dataclass
class Truth:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_nanos: int = 0
    lines: int = 0
    torn_lines: int = 0
    by_day: dict = field(default_factory=dict)  # "YYYY-MM-DD" (UTC) -> [requests, tokens, cost_nanos]
    by_project: dict = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_read_tokens + self.cache_write_tokens

    def add(self, project, at, model, inp, out, read, w5, w1):
        p_in, p_out, p_read, p_5m, p_1h = PRICES[model]
        cost = round((inp * p_in + out * p_out + read * p_read + w5 * p_5m + w1 * p_1h) * 1000)
        tokens = inp + out + read + w5 + w1
        self.requests += 1
        self.input_tokens += inp
        self.output_tokens += out
        self.cache_read_tokens += read
        self.cache_write_tokens += w5 + w1
        self.cost_nanos += cost
        for table, k in ((self.by_day, at.strftime("%Y-%m-%d")), (self.by_project, project)):
            entry = table.setdefault(k, [0, 0, 0])
            entry[0] += 1
            entry[1] += tokens
            entry[2] += cost


def _dump(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))  # compact, as Claude Code writes


class _Writer:
    def __init__(self, rng, truth):
        self.rng, self.truth = rng, truth

    def text(self, n):
        return " ".join(self.rng.choice(WORDS) for _ in range(n))

    def rid(self, prefix):
        return prefix + "".join(self.rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz123456789")
                                for _ in range(24))

    def uid(self):
        return str(uuid.UUID(int=self.rng.getrandbits(128)))

    def user(self, session, at, tool_result=False):
        """A user line; a tool result may hold a "usage" object that is not the message's."""
        line = {"parentUuid": self.uid(), "isSidechain": False, "userType": "external",
                "cwd": "/home/user/app", "sessionId": session, "version": "2.0.31",
                "type": "user", "message": {"role": "user", "content": self.text(30)},
                "uuid": self.uid(), "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"}
        if tool_result:
            line["toolUseResult"] = {"stdout": self.text(10), "usage": {"input_tokens": 7, "output_tokens": 7}}
        return _dump(line)

    def response(self, project, session, at, sidechain=False, old_style=False):
        """The lines of one API response, and the request as it must be counted."""
        rng = self.rng
        model = rng.choice(MODELS)
        inp = rng.choice([1, 2, 3, 4, 8, rng.randint(10, 5000)])
        w5 = rng.randint(0, 20000)
        w1 = 0 if old_style or rng.random() < 0.7 else rng.randint(1, 8000)
        read = rng.randint(0, 150000)
        out = rng.randint(40, 3000)
        blocks = rng.choice([1, 2, 2, 3])
        message_id, request_id = self.rid("msg_01"), self.rid("req_011C")
        stamp = at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"
        lines = []
        for b in range(blocks):
            usage = {"input_tokens": inp, "cache_creation_input_tokens": w5 + w1,
                     "cache_read_input_tokens": read,
                     "output_tokens": out if b == blocks - 1 else rng.randint(1, 30),
                     "service_tier": "standard"}
            if not old_style:
                usage["cache_creation"] = {"ephemeral_5m_input_tokens": w5, "ephemeral_1h_input_tokens": w1}
            content = ([{"type": "tool_use", "id": self.rid("toolu_01"), "name": "Bash",
                         "input": {"command": "ls " + self.text(3), "description": self.text(5)}}]
                       if b == blocks - 1 and rng.random() < 0.5
                       else [{"type": "text", "text": self.text(rng.randint(20, 60))}])
            lines.append(_dump({
                "parentUuid": self.uid(), "isSidechain": sidechain, "userType": "external",
                "cwd": "/home/user/app", "sessionId": session, "version": "2.0.31", "gitBranch": "main",
                "message": {"id": message_id, "type": "message", "role": "assistant", "model": model,
                            "content": content, "stop_reason": None, "stop_sequence": None, "usage": usage},
                "requestId": request_id, "type": "assistant", "uuid": self.uid(), "timestamp": stamp}))
        self.truth.add(project, at, model, inp, out, read, w5, w1)
        return lines

    def synthetic(self, session, at):
        stamp = at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return _dump({"parentUuid": self.uid(), "isSidechain": False, "sessionId": session,
                      "version": "2.0.31", "type": "assistant", "uuid": self.uid(), "timestamp": stamp,
                      "message": {"id": self.rid("msg_01"), "type": "message", "role": "assistant",
                                  "model": "<synthetic>", "content": [{"type": "text", "text": "No response requested."}],
                                  "usage": {"input_tokens": 0, "output_tokens": 0,
                                            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}},
                      "requestId": self.rid("req_011C")})


def write_logs(root: Path, *, projects: int = 3, sessions: int = 4, responses: int = 30,
               seed: int = 1, start: datetime | None = None, span_hours: float = 60,
               first_project: int = 0) -> Truth:
    """Write `root/projects/<project>/<session>.jsonl` (and subagent logs); return the truth."""
    rng = random.Random(seed)
    truth = Truth()
    w = _Writer(rng, truth)
    start = start or datetime(2026, 3, 30, 20, 0, tzinfo=timezone.utc)
    step = timedelta(hours=span_hours) / max(1, sessions * responses)  # sessions follow each other
    for p in range(first_project, first_project + projects):
        project = f"-home-user-project{p}"
        folder = root / "projects" / project
        folder.mkdir(parents=True, exist_ok=True)
        earlier: list[str] = []
        for s in range(sessions):
            session = w.uid()
            at = start + timedelta(hours=span_hours) * s / sessions + timedelta(minutes=rng.randint(0, 90))
            lines: list[str] = []
            if s and earlier and rng.random() < 0.6:
                lines += earlier[-rng.randint(1, min(12, len(earlier))):]  # a resumed session
            for r in range(responses):
                at += step * rng.uniform(0.5, 1.5)
                lines.append(w.user(session, at, tool_result=(r % 7 == 0)))
                response = w.response(project, session, at, old_style=(r % 11 == 5))
                lines += response
                earlier += response
                if r % 13 == 4:
                    lines.append(w.synthetic(session, at))
                if r % 17 == 8:  # a subagent: its own log, sidechain lines
                    agent = folder / session / "subagents" / f"agent-{w.uid()[:8]}.jsonl"
                    agent.parent.mkdir(parents=True, exist_ok=True)
                    agent_lines = []
                    for _ in range(rng.randint(1, 3)):
                        agent_lines += w.response(project, session, at, sidechain=True)
                    agent.write_text("\n".join(agent_lines) + "\n")
                    truth.lines += len(agent_lines)
            text = "\n".join(lines) + "\n"
            if s == sessions - 1:  # a session cut off mid-write
                text += _dump({"type": "assistant", "message": {"id": "msg_torn", "usage": {
                    "input_tokens": 5, "output_tokens": 5}}, "requestId": "req_torn"})[:-25]
                truth.torn_lines += 1
            (folder / f"{session}.jsonl").write_text(text)
            truth.lines += text.count("\n") + (0 if text.endswith("\n") else 1)
    return truth
