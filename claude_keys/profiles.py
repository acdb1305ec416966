"""Permission presets and how a key's effective permissions are resolved.

A key's permissions are its profile's preset plus its own overrides. List overrides
replace the preset's list; numeric overrides replace the preset's value, with -1
meaning "no limit". "@standard" in an agent list stands for the operator's named
list of standard agents, kept in the store and expanded when read.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property, lru_cache

from .errors import InvalidInput
from .values import in_usd, shown

ALL = "*"
STANDARD = "@standard"
UNLIMITED = -1
NANOS = 1_000_000_000

PRESETS: dict[str, dict] = {
    "free": {
        "allowed_tools": ["Read", "Grep"],
        "blocked_tools": [],
        "allowed_agents": [],
        "allowed_skills": [],
        "rate_limit": 10,
        "tokens_per_day": None,
        "max_cost_nanos": NANOS // 10,
        "monthly_budget_nanos": None,
        "total_budget_nanos": None,
        "max_concurrent": None,
        "timeout": 60,
        "hold": None,
        "daily_budget_nanos": None,
        "weekly_budget_nanos": None,
        "input_tokens_per_minute": None,
        "output_tokens_per_minute": None,
        "allowed_models": [ALL],
        "blocked_models": [],
    },
    "pro": {
        "allowed_tools": ["Read", "Grep", "Bash", "Edit", "Write"],
        "blocked_tools": [],
        "allowed_agents": [STANDARD],
        "allowed_skills": [],
        "rate_limit": 100,
        "tokens_per_day": None,
        "max_cost_nanos": NANOS,
        "monthly_budget_nanos": None,
        "total_budget_nanos": None,
        "max_concurrent": None,
        "timeout": 300,
        "hold": None,
        "daily_budget_nanos": None,
        "weekly_budget_nanos": None,
        "input_tokens_per_minute": None,
        "output_tokens_per_minute": None,
        "allowed_models": [ALL],
        "blocked_models": [],
    },
    "enterprise": {
        "allowed_tools": [ALL],
        "blocked_tools": [],
        "allowed_agents": [ALL],
        "allowed_skills": [ALL],
        "rate_limit": None,
        "tokens_per_day": None,
        "max_cost_nanos": None,
        "monthly_budget_nanos": None,
        "total_budget_nanos": None,
        "max_concurrent": None,
        "timeout": None,
        "hold": None,
        "daily_budget_nanos": None,
        "weekly_budget_nanos": None,
        "input_tokens_per_minute": None,
        "output_tokens_per_minute": None,
        "allowed_models": [ALL],
        "blocked_models": [],
    },
}
NAMES = tuple(PRESETS)
LIST_FIELDS = ("allowed_tools", "blocked_tools", "allowed_agents", "allowed_skills")
LIMIT_FIELDS = ("rate_limit", "tokens_per_day", "max_cost_nanos", "monthly_budget_nanos", "timeout",
                "total_budget_nanos", "max_concurrent", "hold", "daily_budget_nanos", "weekly_budget_nanos",
                "input_tokens_per_minute", "output_tokens_per_minute")
# Model lists (models.py): shell patterns; every preset allows every model. Kept apart
# from LIST_FIELDS: the first allowed pattern replaces "*" (a restriction), where a tool
# added to "*" changes nothing.
MODEL_FIELDS = ("allowed_models", "blocked_models")
# Not a limit: the percentages of each budget at which `claude-api alerts` speaks, as
# text "75,90" (NULL: DEFAULT_ALERTS). Kept, like the limits, when the profile changes.
ALERT_FIELD = "alert_at"
DEFAULT_ALERTS = (50, 80, 95)
OVERRIDE_FIELDS = LIST_FIELDS + LIMIT_FIELDS + MODEL_FIELDS + (ALERT_FIELD,)
# Budgets by period (periods.py), shortest first.
BUDGET_FIELDS = {"day": "daily_budget_nanos", "week": "weekly_budget_nanos", "month": "monthly_budget_nanos",
                 "total": "total_budget_nanos"}
DEFAULT_STANDARD_AGENTS = ["code-reviewer", "security-auditor"]


STANDARD_AGENTS = "SELECT value FROM settings WHERE name = 'standard_agents'"


def standard_agents(conn) -> list[str]:
    """The operator's "standard agents" list, kept in the store's settings."""
    return standard_agents_of(conn.execute(STANDARD_AGENTS).fetchone())


def standard_agents_of(row) -> list[str]:
    """The standard agents from their settings row (None: the default list)."""
    import json

    return json.loads(row[0]) if row else list(DEFAULT_STANDARD_AGENTS)


def check_profile(name: str) -> str:
    """A profile name in any case (`Pro`, as the seeds write it) -> its canonical name."""
    if not isinstance(name, str):
        raise InvalidInput(f"the profile must be one of {', '.join(NAMES)}, not {type(name).__name__}")
    canonical = name.strip().lower()
    if canonical not in PRESETS:
        raise InvalidInput(f"unknown profile {shown(name)}: choose one of {', '.join(NAMES)}")
    return canonical


@dataclass(frozen=True)
class Permissions:
    """Effective permissions. Lists may hold "*" (all); limits are None for none."""

    profile: str
    allowed_tools: tuple[str, ...]
    blocked_tools: tuple[str, ...]
    allowed_agents: tuple[str, ...]
    allowed_skills: tuple[str, ...]
    rate_limit: int | None
    tokens_per_day: int | None
    max_cost_nanos: int | None
    monthly_budget_nanos: int | None
    timeout: int | None
    total_budget_nanos: int | None  # over the key's whole lineage; never resets
    max_concurrent: int | None  # requests in flight at once
    hold: int | None  # seconds an unsettled request's reservation counts (None: the default, 24 h)
    daily_budget_nanos: int | None  # calendar day in the store's budget time zone
    weekly_budget_nanos: int | None  # calendar week (from Monday) in the same zone
    input_tokens_per_minute: int | None  # recorded (and declared, in flight) in the last 60 s
    output_tokens_per_minute: int | None  # recorded in the last 60 s
    allowed_models: tuple[str, ...]  # lowercased shell patterns; ("*",): every model
    blocked_models: tuple[str, ...]
    alert_at: tuple[int, ...]  # percentages of each budget that `claude-api alerts` reports

    def budgets(self) -> dict:
        """period name ("day", "week", "month", "total") -> its budget, for those set."""
        return dict(self._budgets)

    @cached_property
    def _budgets(self) -> dict:
        # (made once: the request path asks twice a request; budgets() hands out copies)
        return {name: getattr(self, f) for name, f in BUDGET_FIELDS.items() if getattr(self, f) is not None}

    @cached_property
    def model_lists(self):
        """The key's model lists as a models.Lists, or None when it allows every model
        (the request path then spends nothing on the model, not even an import)."""
        if self.allowed_models == (ALL,) and not self.blocked_models:
            return None
        from . import models

        return models.lists(self.allowed_models, self.blocked_models)

    @property
    def has_budget(self) -> bool:
        """Whether a request's cost must be reserved (a model without a price cannot be)."""
        return any(getattr(self, f) is not None for f in BUDGET_FIELDS.values())

    @cached_property
    def counts_usage(self) -> bool:
        """Whether a request must read usage or hold its place: any budget, a daily
        token limit or a concurrency limit (cached: the request path asks every time)."""
        return (self.tracks_requests or self.tokens_per_day is not None
                or self.input_tokens_per_minute is not None or self.output_tokens_per_minute is not None)

    @property
    def tracks_requests(self) -> bool:
        """Whether requests must be kept in flight until settled: to count them against a
        concurrency limit, or to reserve their cost against a budget."""
        return (self.max_concurrent is not None or self.monthly_budget_nanos is not None
                or self.total_budget_nanos is not None or self.daily_budget_nanos is not None
                or self.weekly_budget_nanos is not None)

    def allows_tool(self, tool: str) -> bool:
        if tool in self.blocked_tools or ALL in self.blocked_tools:
            return False
        return ALL in self.allowed_tools or tool in self.allowed_tools

    def allows_agent(self, agent: str, standard=None) -> bool:
        """`standard`: a callable giving the standard agents, asked only if needed."""
        if ALL in self.allowed_agents or agent in self.allowed_agents:
            return True
        return STANDARD in self.allowed_agents and standard is not None and agent in standard()

    def allows_skill(self, skill: str) -> bool:
        return ALL in self.allowed_skills or skill in self.allowed_skills

    def as_json(self, key_id: str) -> dict:
        return {
            "id": key_id,
            "profile": self.profile,
            "allowed_tools": list(self.allowed_tools),
            "blocked_tools": list(self.blocked_tools),
            "allowed_agents": list(self.allowed_agents),
            "allowed_skills": list(self.allowed_skills),
            "rate_limit": self.rate_limit,
            "tokens_per_day": self.tokens_per_day,
            "max_cost_per_task": in_usd(self.max_cost_nanos),
            "monthly_budget": in_usd(self.monthly_budget_nanos),
            "total_budget": in_usd(self.total_budget_nanos),
            "max_concurrent": self.max_concurrent,
            "timeout": self.timeout,
            "hold": self.hold,
            "daily_budget": in_usd(self.daily_budget_nanos),
            "weekly_budget": in_usd(self.weekly_budget_nanos),
            "input_tokens_per_minute": self.input_tokens_per_minute,
            "output_tokens_per_minute": self.output_tokens_per_minute,
            "allowed_models": list(self.allowed_models),
            "blocked_models": list(self.blocked_models),
            "alert_at": list(self.alert_at),
        }


def preset_list(profile: str, field: str) -> list[str]:
    return list(PRESETS[profile][field])


def resolve(row, standard_agents=None) -> Permissions:
    """Effective permissions of a key row (a mapping with the override columns).

    `standard_agents` (a list, or a callable returning it) expands "@standard" in the
    agent list; without it the marker stays for `allows_agent` to expand on demand.
    """
    perms = resolve_overrides(row["profile"], *(row[f] for f in OVERRIDE_FIELDS))
    if standard_agents is not None and STANDARD in perms.allowed_agents:
        extra = standard_agents() if callable(standard_agents) else standard_agents
        perms = replace(perms, allowed_agents=tuple(expand(perms.allowed_agents, extra)))
    return perms


@lru_cache(maxsize=4096)
def resolve_overrides(profile: str, *overrides) -> Permissions:
    """Permissions from a profile and the override columns (in OVERRIDE_FIELDS order),
    "@standard" unexpanded. Cached: the request path resolves the same few keys over
    and over."""
    preset = PRESETS.get(profile, PRESETS["free"])  # an unknown name gets the least
    values = {}
    for field, raw in zip(OVERRIDE_FIELDS, overrides):
        if field == ALERT_FIELD:
            values[field] = parse_alerts(raw) if raw is not None else DEFAULT_ALERTS
        elif field in LIST_FIELDS or field in MODEL_FIELDS:
            if raw is not None:
                import json  # only keys with list overrides need it

                values[field] = tuple(json.loads(raw))
            else:
                values[field] = tuple(preset[field])
        else:
            value = preset[field] if raw is None else raw
            values[field] = None if value == UNLIMITED else value
    return Permissions(profile=profile, **values)


def parse_alerts(text) -> tuple[int, ...]:
    """"75,90" (or "75, 90%") -> (75, 90): whole percentages from 1 to 1000, each once,
    ascending. An empty text is no alerts. InvalidInput otherwise."""
    if not isinstance(text, str):
        raise InvalidInput("alert thresholds must be text such as 75,90")
    found = set()
    for part in text.split(","):
        part = part.strip().removesuffix("%").strip()
        if not part:
            continue
        if not (part.isascii() and part.isdigit() and len(part) <= 4) or not 1 <= int(part) <= 1000:
            raise InvalidInput(f"alert thresholds are whole percentages from 1 to 1000, "
                               f"separated by commas (such as 75,90), not {text.strip()[:40]!r}")
        found.add(int(part))
    return tuple(sorted(found))


def alerts_text(thresholds) -> str:
    return ",".join(str(t) for t in thresholds)


def expand(items, standard):
    out = []
    for item in items:
        for name in standard if item == STANDARD else [item]:
            if name not in out:
                out.append(name)
    return out


def describe(profile: str, standard_agents: list[str]) -> dict:
    """A preset as `profiles show` prints it (agents expanded, money in USD)."""
    row = {"profile": profile, **dict.fromkeys(OVERRIDE_FIELDS)}
    perms = resolve(row, standard_agents).as_json(key_id="")
    del perms["id"]
    return {"name": perms.pop("profile"), **perms}
