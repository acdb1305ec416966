"""Numbers are ASCII: every count, amount, duration and time, on the command line, from
the Python API and in imported records, refuses other scripts' digits, signs, points and
spaces (which Python's int(), float(), Decimal() and datetime.fromisoformat() accept):
exit 2 with one line / InvalidInput, and nothing written.

The command-line half walks the Click command tree, so a new numeric option is covered
as soon as it uses one of the numeric parameter types."""
import inspect
import json
import re

import click
import pytest

from claude_keys import AuthManager, InvalidInput, KeyStore, PermissionManager
from claude_keys.cli import options
from tests.helpers.commands import base_args, commands
from tests.helpers.run import cli, create
from tests.helpers.store import dump

# Spellings that read as numbers to Python but are not ASCII.
AMOUNTS = ["١٠٠", "１２", "𝟗", "٣", "\u22121", "1\uff0e5", "\u30005", "5\u00a0", "${}".format("١")]
COUNTS = ["١٠", "１２", "𝟗", "\u30005", "5\u00a0", "\uff0b5"]
DURATIONS = ["𝟗d", "١٠d", "１２h", "9\uff44", "\u30009d"]
SECONDS = ["１２", "𝟗m", "٣٠"]
TIMES = ["٢٠٢٦-01-01", "２０２６-01-01", "𝟕d", "2026-01-01T１２:00:00Z", "2026\u221201\u221201",
         "2026-01-01T12:00:00\u221205:00"]

KINDS = ((options.Cost, AMOUNTS), (options.Money, AMOUNTS), (options.Count, COUNTS),
         (options.Duration, DURATIONS), (options.Seconds, SECONDS), (options.Hold, SECONDS),
         (options.Time, TIMES))
# click's own numeric and time types: int()/float()/strptime() on the text, so a new
# option of one of these must be listed with spellings above (none is used today).
CLICK_NUMBERS = (click.types.IntParamType, click.types.FloatParamType, click.DateTime)


def spellings(param):
    kind = getattr(param.type, "inner", param.type)  # Limit(Count()), ProjectLimit(Money())
    for cls, texts in KINDS:
        if isinstance(kind, cls):
            return texts
    if isinstance(kind, CLICK_NUMBERS):
        return COUNTS
    return None


NUMERIC_OPTIONS = [(path, command, param) for path, command in commands()
                   for param in command.params if spellings(param) is not None]


@pytest.mark.one_backend
def test_the_walk_finds_every_kind_of_number():
    found = {(" ".join(path), param.opts[0]) for path, _, param in NUMERIC_OPTIONS}
    for expected in [("keys create", "--rate-limit"), ("keys create", "--monthly-budget"),
                     ("keys create", "--expires-in"), ("keys permissions", "--timeout"),
                     ("keys permissions", "--max-cost"), ("keys rotate", "--grace"),
                     ("keys edit", "--expires-in"), ("keys verify", "--cost"),
                     ("projects set", "--total-budget"), ("usage record", "--input-tokens"),
                     ("usage record", "--cost"), ("usage record", "--at"),
                     ("usage summary", "--since"), ("usage export", "--until"),
                     ("usage delete", "--since"), ("audit", "--until"),
                     ("keys permissions", "--hold"), ("projects set", "--hold")]:
        assert expected in found
    assert len(found) >= 40


def _invocation(path, command, param, value, key_id, file):
    args = base_args(path, command, key_id, file)
    if path == ("usage", "delete"):  # a range needs a key or project and both ends
        args += ["--key", key_id] + [a for o in ("--since", "--until") if o not in param.opts
                                      for a in (o, "1d" if o == "--since" else "0s")]
    return args + [param.opts[0], value]


def test_every_numeric_option_refuses_non_ascii_digits(tmp_path):
    key = create("--name", "k")  # (one store for every option: making one is most of the time)
    file = tmp_path / "records.jsonl"
    file.write_text("")
    before = dump()
    for path, command, param in NUMERIC_OPTIONS:
        for value in spellings(param):
            r = cli(*_invocation(path, command, param, value, key["id"], file))
            lines = [line for line in r.stderr.splitlines() if line.strip()]
            shown = (" ".join(path), param.opts[0], value, r)
            assert r.exit_code == 2, shown
            assert "Traceback" not in r.stderr and lines[-1].startswith("Error: "), shown
            assert "ASCII digits" in lines[-1] and repr(value) in lines[-1], shown
    assert dump() == before


@pytest.mark.parametrize("value", ["12", " 12 ", "12\n"])
def test_ascii_numbers_with_ascii_spaces_still_pass(value):
    key = create("--rate-limit", value, "--monthly-budget", value, "--expires-in", value.replace("12", "12d"))
    shown = cli("keys", "permissions", key["id"], "--json").json()
    assert shown["rate_limit"] == 12 and shown["monthly_budget"] == 12


# -- the Python API --------------------------------------------------------------------

def _secret_and_id():
    key = create("--name", "k")
    return key["key"], key["id"]


API_CALLS = {
    # (object, method): {parameter: spellings}
    ("KeyStore", "check"): {"cost": AMOUNTS, "max_tokens": COUNTS, "input_tokens": COUNTS},
    ("KeyStore", "record_usage"): {"input_tokens": COUNTS, "output_tokens": COUNTS,
                                   "cache_read_tokens": COUNTS, "cache_write_tokens": COUNTS,
                                   "cache_write_1h_tokens": COUNTS, "cost": AMOUNTS, "at": TIMES},
    ("AuthManager", "generate_key"): {"rate_limit": COUNTS, "max_cost": AMOUNTS,
                                      "monthly_budget": AMOUNTS, "total_budget": AMOUNTS,
                                      "max_concurrent": COUNTS, "expires_in": DURATIONS},
    ("PermissionManager", "set_profile"): {"max_cost_per_task": AMOUNTS, "monthly_budget": AMOUNTS,
                                           "total_budget": AMOUNTS, "rate_limit": COUNTS,
                                           "tokens_per_day": COUNTS, "max_concurrent": COUNTS,
                                           "timeout": COUNTS, "hold": COUNTS, "input_tokens_per_minute": COUNTS,
                                           "output_tokens_per_minute": COUNTS},
    ("PermissionManager", "set_project"): {"monthly_budget": AMOUNTS, "total_budget": AMOUNTS,
                                           "rate_limit": COUNTS, "tokens_per_day": COUNTS,
                                           "max_concurrent": COUNTS, "hold": COUNTS, "input_tokens_per_minute": COUNTS,
                                           "output_tokens_per_minute": COUNTS},
}
CLASSES = {"KeyStore": KeyStore, "AuthManager": AuthManager, "PermissionManager": PermissionManager}
NUMERIC_NAME = re.compile(r"tokens|cost|budget|limit|concurrent|timeout|expires|grace|seconds|^at$")


@pytest.mark.one_backend
def test_every_numeric_api_parameter_is_listed():
    """A new numeric keyword of the service's calls must join API_CALLS (generate_key's
    options and the settings dicts are listed by hand: they are not in the signature)."""
    for cls in CLASSES.values():
        for name, method in inspect.getmembers(cls, inspect.isfunction):
            if name.startswith("_"):
                continue
            for param in inspect.signature(method).parameters:
                if NUMERIC_NAME.search(param):
                    assert param in API_CALLS.get((cls.__name__, name), {}), (cls.__name__, name, param)


def test_the_python_api_refuses_non_ascii_digits():
    secret, key_id = _secret_and_id()
    before = dump()
    for (cls_name, method), params in API_CALLS.items():
        with CLASSES[cls_name]() as api:
            for name, texts in params.items():
                for value in texts:
                    if method == "check":
                        call = lambda: api.check(key=secret, **{name: value})  # noqa: E731
                    elif method == "record_usage":
                        call = lambda: api.record_usage(key_id, **{"cost": "0.01", name: value})  # noqa: E731
                    elif method == "generate_key":
                        call = lambda: api.generate_key("p", use_keyring=False, **{name: value})  # noqa: E731
                    elif method == "set_profile":
                        call = lambda: api.set_profile(key_id, {name: value})  # noqa: E731
                    else:
                        call = lambda: api.set_project("p", {name: value})  # noqa: E731
                    with pytest.raises(InvalidInput, match="ASCII digits"):
                        call()
    assert dump() == before


@pytest.mark.one_backend
@pytest.mark.parametrize("value", ["１２", "٣٠"])
def test_a_wait_bound_is_ascii_too(value):
    with pytest.raises(InvalidInput):
        KeyStore(timeout=value)


# -- imported records ------------------------------------------------------------------

RECORD = {"at": "2026-01-01T00:00:00Z", "model": "m", "input_tokens": 10, "output_tokens": 1, "cache_read_tokens": 0,
          "cost_usd": "0.01", "request_id": "r1"}


@pytest.mark.parametrize("field,value", [("input_tokens", "١٠"), ("output_tokens", "１２"),
                                         ("cache_read_tokens", "𝟗"), ("cost_usd", "٣"),
                                         ("cost_usd", "\u22121"), ("at", "٢٠٢٦-01-01T00:00:00Z"),
                                         ("at", "٢٠٢٦-01-01")])
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_an_imported_record_with_non_ascii_digits_is_refused(field, value, fmt, tmp_path):
    key = create("--name", "k")
    good = {**RECORD, "key": key["id"], "request_id": "r0"}
    bad = {**RECORD, "key": key["id"], field: value}
    if fmt == "jsonl":
        path = tmp_path / "records.jsonl"
        path.write_text(json.dumps(good) + "\n" + json.dumps(bad, ensure_ascii=False) + "\n", encoding="utf-8")
    else:
        path = tmp_path / "records.csv"
        fields = list(bad)
        path.write_text(",".join(fields) + "\n" + ",".join(str(good[f]) for f in fields) + "\n"
                        + ",".join(str(bad[f]) for f in fields) + "\n", encoding="utf-8")
    before = dump()
    r = cli("usage", "import", path, "--format", fmt)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    bad_line = 2 if fmt == "jsonl" else 3  # (the csv's header is line 1)
    assert r.exit_code == 2 and len(lines) == 1 and f":{bad_line}:" in lines[0], r
    assert "Traceback" not in r.stderr
    assert dump() == before  # the good line before it is not imported either
