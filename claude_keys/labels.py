"""A key's owner and metadata: who answers for it, and KEY=VALUE labels (team=search,
cost-center=4711) that `keys list` filters by and reports group by (`--by owner`,
`--by meta.team`).

Pure rules, no store: the text gate for both (values.check_text, and a tighter shape
for metadata keys, which name report levels and JSON fields), the JSON metadata is
stored as, and applying a change. Both belong to a key's lineage (claude_keys/keys.py):
every key of it holds the same, so a rotation keeps them and a report attributes an old
secret's usage like its successor's.
"""
from __future__ import annotations

from .errors import InvalidInput
from .values import LazyPattern, check_text, json_value, shown

MAX_OWNER = 256  # characters: a person, a team, a service account or an e-mail address
MAX_VALUE = 256  # characters of one metadata value
MAX_ENTRIES = 32  # metadata entries of one key
# Identifier-like: a key is written on command lines (`--by meta.cost-center`) and read
# as a JSON field; never an option's dash or a dot first.
META_KEY = LazyPattern(r"(?a)[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
LEVEL_PREFIX = "meta."  # `--by meta.KEY`
# The group, in human tables, of usage without a key or whose key has no such label
# (null in JSON, empty in CSV).
NONE_SHOWN = "(none)"


def check_owner(value) -> str | None:
    """An owner as given; '' clears it (None)."""
    return check_text(value, "the owner", max_len=MAX_OWNER, allow_empty=True) or None


def check_key(key) -> str:
    if not isinstance(key, str):
        raise InvalidInput(f"a metadata key must be text, not {type(key).__name__}")
    if not META_KEY.fullmatch(key):
        shown = repr(key) if len(key) <= 40 and key.isprintable() and key.isascii() else "given"
        raise InvalidInput(f"the metadata key {shown} is not usable: 1 to 64 of the characters "
                           "A-Z a-z 0-9 _ . - (not starting with . or -)")
    return key


def check_value(key: str, value) -> str:
    return check_text(value, f"the value of metadata key {key}", max_len=MAX_VALUE)


def parse_assignment(text) -> tuple[str, str | None]:
    """`KEY=VALUE` -> (KEY, VALUE); `KEY=` -> (KEY, None): remove KEY (in a filter: keys
    without it). The value is everything after the first '='."""
    text = check_text(text, "a metadata entry", max_len=MAX_VALUE + 65)
    key, sep, value = text.partition("=")
    if not sep:
        raise InvalidInput(f"{shown(text)} is not KEY=VALUE (KEY= removes KEY)")
    check_key(key)
    return key, (check_value(key, value) if value else None)


def check_metadata(mapping) -> dict:
    """Metadata from the Python API: a dict of text keys to text values (None or ''
    leaves a key out)."""
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise InvalidInput(f"metadata must be a dict of text to text, not {type(mapping).__name__}")
    return apply({}, list(mapping.items()))


def apply(current: dict, changes) -> dict:
    """`current` with each (key, value) set, or removed where the value is None or '',
    in order; at most MAX_ENTRIES entries after."""
    out = dict(current)
    for key, value in changes:
        check_key(key)
        if value is None or value == "":
            out.pop(key, None)
        else:
            out[key] = check_value(key, value)
    if len(out) > MAX_ENTRIES:
        raise InvalidInput(f"a key holds at most {MAX_ENTRIES} metadata entries, and this would make "
                           f"{len(out)}: remove some with --meta KEY=")
    return dict(sorted(out.items()))


def encode(metadata: dict) -> str | None:
    """As stored: one JSON object, keys sorted; None when empty."""
    import json  # (reports, which decode labels, stay off the json package: values.json_value)

    return json.dumps(metadata, sort_keys=True, ensure_ascii=False, separators=(",", ":")) if metadata else None


def decode(stored) -> dict:
    """The stored column back as a dict (empty for none)."""
    if not stored:
        return {}
    found = json_value(stored)
    return found if isinstance(found, dict) else {}


def has_entries(metadata: dict, wanted) -> bool:
    """A key's metadata against `keys list --meta K=V ...`: every (K, V) matches; a V of
    None matches keys without K."""
    return all(metadata.get(k) == v for k, v in wanted)


def text(metadata: dict) -> str:
    """One line for a table cell: `env=prod, team=search`."""
    return ", ".join(f"{k}={v}" for k, v in metadata.items())


def is_level(level: str) -> bool:
    """A report level that groups by a key's label: `owner` or `meta.KEY`."""
    return level == "owner" or level.startswith(LEVEL_PREFIX)


def check_level(level: str) -> str:
    if level.startswith(LEVEL_PREFIX):
        check_key(level[len(LEVEL_PREFIX):])
    return level


def value_of(level: str, owner: str | None, metadata: dict) -> str | None:
    """A key's value for a report level (None: the "(none)" group)."""
    if level == "owner":
        return owner
    return metadata.get(level[len(LEVEL_PREFIX):])
