"""Test isolation: a temporary store, a test keyring, plain output.

`cli(...)` runs a command in-process through CliRunner; `proc(...)` runs the
installed `claude-api` executable as a real subprocess with the same isolation.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keyring
import pytest
from click.testing import CliRunner

from claude_keys.cli import cli as root

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))
from keyring_backends import MemoryKeyring  # noqa: E402

EXE = shutil.which("claude-api", path=os.path.dirname(sys.executable)) or shutil.which("claude-api")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test: its own store and keyring file, no colour, a fixed width."""
    db = tmp_path / "store" / "keys.db"
    monkeypatch.setenv("CLAUDE_API_DB", str(db))
    monkeypatch.setenv("CLAUDE_API_TEST_KEYRING", str(tmp_path / "keyring.json"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring_backends.FileKeyring")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("CLAUDE_API_NO_KEYRING", raising=False)
    monkeypatch.delenv("CLAUDE_API_DEBUG", raising=False)
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield db


@pytest.fixture
def memory_keyring():
    return keyring.get_keyring()


class Result:
    def __init__(self, code, stdout, stderr):
        self.exit_code, self.stdout, self.stderr = code, stdout, stderr

    def json(self):
        return json.loads(self.stdout)

    def __repr__(self):
        return f"<exit {self.exit_code}\nstdout: {self.stdout}\nstderr: {self.stderr}>"


def cli(*args, input=None, env=None) -> Result:
    result = CliRunner().invoke(root, [str(a) for a in args], input=input, env=env,
                                catch_exceptions=False)
    return Result(result.exit_code, result.stdout, result.stderr)


def proc(*args, input=None, env=None, timeout=60) -> Result:
    assert EXE, "the claude-api executable is not installed next to this Python"
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run([EXE, *map(str, args)], input=input, capture_output=True, text=True,
                          env=full_env, timeout=timeout)
    return Result(done.returncode, done.stdout, done.stderr)


def create(*args, **kwargs) -> dict:
    """Create a key (project 'p' unless given) and return its --json answer."""
    if "--project-id" not in args:
        args = ("--project-id", "p", *args)
    result = cli("keys", "create", *args, "--json", **kwargs)
    assert result.exit_code == 0, result
    return result.json()


USAGE_SUMS = "count(*), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), coalesce(sum(cost_nanos), 0)"
ROLLUP_SUMS = ("coalesce(sum(requests), 0), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), "
               "coalesce(sum(cost_nanos), 0)")


def assert_consistent(db) -> tuple:
    """The store passes SQLite's integrity check, every roll-up agrees with the usage
    rows, and every rate-limit window count agrees with its slots. Returns the usage sums."""
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        raw = conn.execute(f"SELECT {USAGE_SUMS} FROM usage").fetchone()
        for table in ("usage_daily", "usage_hourly", "usage_project_daily"):
            assert conn.execute(f"SELECT {ROLLUP_SUMS} FROM {table}").fetchone() == raw, table
        windows = dict(conn.execute("SELECT lineage, used FROM rate_windows WHERE used > 0"))
        slots = dict(conn.execute("SELECT lineage, sum(n) FROM rate_slots GROUP BY lineage"))
        assert windows == slots
        assert conn.execute("SELECT count(*) FROM bulk_mode").fetchone() == (0,)
        return raw
    finally:
        conn.close()
