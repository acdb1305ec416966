"""Hot paths import only what they use: rich, tabulate, keyring and sqlite-utils each
cost 30-150 ms, so the verification and JSON paths must not load them; and a SQLite
store never loads psycopg."""
import json
import subprocess
import sys

import pytest

from tests.helpers.run import create, proc

HEAVY = ("rich", "tabulate", "keyring", "sqlite_utils")
PROBE = """
import sys
from claude_keys.cli import cli

try:
    cli.main(sys.argv[1:], prog_name="claude-api")
except SystemExit:
    pass
heavy = [m for m in {heavy!r} if m in sys.modules]
sys.stderr.write("HEAVY=" + ",".join(heavy) + "\\n")
"""


def loaded_heavy_modules(*args, stdin=None) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
                          capture_output=True, text=True, input=stdin)
    line = [l for l in done.stderr.splitlines() if l.startswith("HEAVY=")][-1]
    return [m for m in line[len("HEAVY="):].split(",") if m]


@pytest.mark.parametrize("args", [["keys", "list", "--json"], ["keys", "show", "{id}", "--json"],
                                  ["keys", "permissions", "{id}", "--json"]])
def test_json_paths_stay_light(args):
    key = create()
    args = [a.format(id=key["id"]) for a in args]
    assert loaded_heavy_modules(*args) == []


def test_import_claude_keys_is_light():
    code = "import json, sys, claude_keys; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    modules = json.loads(done.stdout)
    assert not [m for m in modules if m.split(".")[0] in HEAVY + ("click",)]


@pytest.mark.parametrize("extra", [["--dry-run"], ["--tool", "Read"], [],
                                   ["--model", "claude-sonnet-4-5", "--max-tokens", "100", "--input-tokens", "10"]])
def test_keys_verify_stays_light(extra):
    key = create("--profile", "pro")
    assert loaded_heavy_modules("keys", "verify", key["key"], "--json", *extra) == []
    assert loaded_heavy_modules("keys", "verify", "-", stdin=key["key"]) == []


def test_usage_record_stays_light():
    key = create()
    assert loaded_heavy_modules("usage", "record", "--key", key["id"], "--input-tokens", "5",
                                "--model", "claude-sonnet-4-5", "--json") == []


@pytest.mark.parametrize("args", [["usage", "summary", "--json"], ["usage", "by-project", "--json"],
                                  ["usage", "summary", "--by", "day", "--json"]])
def test_usage_reports_stay_light(args):
    create()
    assert loaded_heavy_modules(*args) == []


@pytest.mark.one_backend
def test_the_sqlite_path_never_imports_psycopg(tmp_path):
    db = tmp_path / "keys.db"
    assert proc("--db", db, "keys", "create", "--project-id", "p", "--no-keyring").exit_code == 0
    code = ("import sys; from claude_keys.cli import cli\n"
            "try: cli.main(sys.argv[1:])\nexcept SystemExit: pass\n"
            "print('psycopg' in sys.modules)")
    for args in (["keys", "list", "--json"], ["keys", "verify", "cc_x"], ["usage", "summary", "--json"]):
        done = subprocess.run([sys.executable, "-c", code, "--db", str(db), *args],
                              capture_output=True, text=True)
        assert done.stdout.strip().splitlines()[-1] == "False", (args, done.stderr)


@pytest.mark.one_backend
def test_patterns_compile_at_their_first_use_not_at_import():
    """The package's regular expressions are compiled when first used (values.LazyPattern):
    compiled at import they cost the status line ~3 ms for calls it never makes."""
    import re

    from claude_keys.values import LazyPattern

    code = ("import re, claude_keys.values, claude_keys.pricing, claude_keys.labels, claude_keys.keys, "
            "claude_keys.db.rollups, claude_keys.importers.lines\n"
            "from claude_keys.values import LazyPattern\n"
            "mods = [m for n, m in list(sys.modules.items()) if n.startswith('claude_keys')]\n"
            "found = [v for m in mods for v in vars(m).values() if isinstance(v, (LazyPattern, re.Pattern))]\n"
            "print(len(found), sum(isinstance(v, re.Pattern) or 'fullmatch' in vars(v) for v in found))")
    done = subprocess.run([sys.executable, "-c", "import sys\n" + code], capture_output=True, text=True)
    patterns, compiled = map(int, done.stdout.split())
    assert patterns >= 10 and compiled == 0, done
    money = LazyPattern(r"(?a)\$?(\d+)")  # (flags inline: `re` itself is loaded at the first use too)
    assert money.fullmatch("$12").group(1) == "12" and money.fullmatch("١٢") is None
    assert money.sub("N", "a $3 b") == "a N b" and money.pattern == r"(?a)\$?(\d+)"
    assert money.flags & re.ASCII
