"""Claude Code logs written as a session goes on (the status line and the live view
read them while they grow), and the JSON Claude Code gives a status line command.

Lines are haiku-4-5 requests of 10,000 input and 2,000 output tokens: $0.01 + $0.01 =
$0.02 each, so every figure the tests read is a whole number of cents.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tests.helpers.cc_lines import append, line

MODEL = "claude-haiku-4-5-20251001"
CENTS_PER_REQUEST = 2
TOKENS_PER_REQUEST = 12_000


def stamp(minutes_ago: float, now: datetime | None = None) -> str:
    moment = (now or datetime.now(timezone.utc)) - timedelta(minutes=minutes_ago)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def transcript(config: Path, session: str = "0b5c5e0e-1111-4222-8333-944445555666",
               project: str = "-home-user-app") -> Path:
    """Where Claude Code keeps a session's transcript under the config folder `config`."""
    path = config / "projects" / project / f"{session}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def add_requests(path: Path, first: int, count: int, minutes_ago: list[float] | None = None,
                 session: str | None = None) -> list[str]:
    """Append `count` requests (numbered from `first`) to a log; their request ids."""
    session = session or path.stem
    ago = minutes_ago or [2.0] * count
    now = datetime.now(timezone.utc)  # one moment: the requests are exactly `ago` apart (rates are exact)
    lines = [line(f"msg_{n}", f"req_{n}", inp=10_000, out=2_000, model=MODEL, ts=stamp(ago[i], now),
                  session=session) for i, n in enumerate(range(first, first + count))]
    append(path, *lines)
    return [f"cc:msg_{n}:req_{n}" for n in range(first, first + count)]


def payload(path: Path | str | None, session: str | None = None, display: str = "Haiku 4.5") -> str:
    """What Claude Code pipes into a status line command (the fields it always sends)."""
    stem = Path(path).stem if path else "none"
    return json.dumps({
        "hook_event_name": "Status", "session_id": session or stem,
        "transcript_path": str(path) if path else None, "cwd": "/home/user/app",
        "model": {"id": MODEL, "display_name": display},
        "workspace": {"current_dir": "/home/user/app", "project_dir": "/home/user/app"},
        "version": "2.0.31", "output_style": {"name": "default"},
        "cost": {"total_cost_usd": 0.5, "total_duration_ms": 60000},
    })


def midday_zone() -> str:
    """A zone where it is about noon now, so "today" holds the last minutes whatever
    time the tests run at (CLAUDE_API_TZ)."""
    offset = 12 - datetime.now(timezone.utc).hour
    offset = max(-12, min(14, offset))
    if offset == 0:
        return "UTC"
    return f"Etc/GMT-{offset}" if offset > 0 else f"Etc/GMT+{-offset}"
