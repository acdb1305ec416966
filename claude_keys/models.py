"""Model lists: which models a key (or a project) may call, as shell patterns.

A list is lowercased shell patterns (fnmatch: `*`, `?`, `[...]`), matched without
regard to case. One model has many spellings: a dated id and its alias
(`claude-sonnet-4-5-20250929`, `claude-sonnet-4-5`), Bedrock's
(`us.anthropic.claude-sonnet-4-5-20250929-v1:0`) and Vertex's
(`claude-sonnet-4-5@20250929`). pricing.normalize maps each to the alias, so a
pattern matches a model when it (or its own normalized form) matches the model as
given or its alias: `claude-sonnet-4-5` allows every spelling of it, and
`anthropic.claude-sonnet-*` still matches the Bedrock id as written. (A pattern with
wildcards is matched as written, never normalized: `*-20251001` must not become `*`.)

The allowed list ["*"] (every preset's) is every model; a block wins over an allow.
A key's lists and its project's both apply: a model must pass each. A dated id in a
list stands for its model (`claude-sonnet-4-5-20250929` allows every snapshot of
Claude Sonnet 4.5, as the alias does).
"""
from __future__ import annotations

from fnmatch import fnmatchcase
from functools import lru_cache

from .errors import InvalidInput
from .pricing import normalize
from .values import check_text, parse_count

ALL = "*"
MAX_PATTERN = 128


def check_pattern(pattern) -> str:
    """A pattern as the operator gives it -> as stored (trimmed, lowercased)."""
    pattern = check_text(pattern, "a model pattern", max_len=MAX_PATTERN).strip().lower()
    if not pattern:
        raise InvalidInput("a model pattern must not be empty (--clear-models empties the lists)")
    return pattern


class Lists:
    """An allowed and a blocked list, ready to match (each pattern with its normalized
    form, so `claude-sonnet-4-5-20250929` allows `claude-sonnet-4-5` and vice versa)."""

    __slots__ = ("allowed", "blocked")

    def __init__(self, allowed: tuple, blocked: tuple):
        self.allowed = None if ALL in allowed else _spellings(allowed)  # None: every model
        self.blocked = _spellings(blocked)

    def allows(self, model: str) -> bool:
        names = (model.strip().lower(), normalize(model))
        if any(fnmatchcase(n, p) for p in self.blocked for n in names):
            return False
        return self.allowed is None or any(fnmatchcase(n, p) for p in self.allowed for n in names)


def _spellings(patterns: tuple) -> tuple:
    """The patterns, and each plain model id's alias. A pattern with wildcards stays as
    written: normalizing would widen it (`*-20251001` would become `*`)."""
    out = []
    for p in patterns:
        for q in (p,) if any(c in p for c in "*?[") else (p, normalize(p)):
            if q not in out:
                out.append(q)
    return tuple(out)


@lru_cache(maxsize=1024)
def lists(allowed: tuple, blocked: tuple) -> Lists | None:
    """The Lists of an allowed and a blocked list, or None when they allow every model."""
    if ALL in allowed and not blocked:
        return None
    return Lists(allowed, blocked)


def refusal(model: str, key_lists: Lists | None, project_lists: Lists | None) -> str | None:
    """The 403 message for a model the key's (then the project's) lists refuse, or None."""
    if key_lists is not None and not key_lists.allows(model):
        return f"Model '{model}' is not allowed for this API key"
    if project_lists is not None and not project_lists.allows(model):
        return f"Model '{model}' is not allowed for this project"
    return None


def add(items: list, pattern: str, *, allowed: bool) -> None:
    """Add a pattern to an allowed (or blocked) list. To an allowed list of every model
    ("*"), the first pattern is a restriction, so it replaces "*"; "*" itself makes
    the list every model again (a blocked "*": no model)."""
    pattern = check_pattern(pattern)
    if pattern == ALL:
        items[:] = [ALL]
    elif ALL in items:
        if allowed:
            items[:] = [pattern]
    elif pattern not in items:
        items.append(pattern)


def check_request(model, max_tokens, input_tokens) -> tuple:
    """A check's model, max_tokens and input_tokens: each None or checked (max_tokens
    only with a model: its price makes the worst case)."""
    if model is not None:
        model = check_text(model, "model", max_len=256)
    if max_tokens is not None:
        max_tokens = parse_count(max_tokens, "max_tokens")
        if model is None:
            raise InvalidInput("max_tokens needs the model: its price makes the request's worst case")
    if input_tokens is not None:
        input_tokens = parse_count(input_tokens, "input_tokens")
    return model, max_tokens, input_tokens
