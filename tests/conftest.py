"""Test isolation: a temporary store, a test keyring, plain output.

Every test that touches the store runs twice: on a SQLite file (`[sqlite]`) and on a
fresh database of a PostgreSQL server that the session starts itself (`[postgres]`).
Without PostgreSQL those runs skip with the reason; in CI (CI=true) they fail instead.
Tests about SQLite's own files are marked `sqlite_only`; tests that do not touch the
store at all, `one_backend`.

`cli(...)` runs a command in-process through CliRunner; `proc(...)` runs the
installed `claude-api` executable as a real subprocess with the same isolation.
"""
import itertools
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


import pg_server  # noqa: E402
from hypothesis import settings  # noqa: E402

settings.register_profile("claude-api", database=None)  # no .hypothesis folder in the checkout
settings.load_profile("claude-api")

IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
_databases = itertools.count()


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only: about SQLite's own files; runs on SQLite only")
    config.addinivalue_line("markers", "one_backend: does not touch the store; runs once")


def pytest_generate_tests(metafunc):
    if "store_backend" in metafunc.fixturenames:
        marks = {m.name for m in metafunc.definition.iter_markers()}
        if "sqlite_only" in marks:
            metafunc.parametrize("store_backend", ["sqlite"])
        elif "one_backend" not in marks:
            metafunc.parametrize("store_backend", ["sqlite", "postgres"])


@pytest.fixture
def store_backend():
    """A test that does not touch the store gets a SQLite one, and runs once."""
    return "sqlite"


@pytest.fixture(scope="session")
def postgres():
    """The session's PostgreSQL server (started on first use, stopped at the end)."""
    reason = pg_server.missing_reason()
    if reason:
        if IN_CI:
            pytest.fail(f"CI needs PostgreSQL for the [postgres] tests: {reason}")
        pytest.skip(reason)
    server = pg_server.Server()
    yield server
    server.close()


@pytest.fixture
def store_target(store_backend, tmp_path, request):
    """The test's store: a file under tmp_path, or a new database (dropped afterwards)."""
    if store_backend == "sqlite":
        yield tmp_path / "store" / "keys.db"
        return
    server = request.getfixturevalue("postgres")
    name = f"test_{os.getpid()}_{next(_databases)}"
    uri = server.create_database(name)
    yield uri
    server.drop_database(name)


@pytest.fixture(autouse=True)
def isolated(store_target, tmp_path, tmp_path_factory, monkeypatch):
    """Every test: its own store and keyring file, no colour, a fixed width."""
    db = store_target
    monkeypatch.setenv("CLAUDE_API_DB", str(db))
    monkeypatch.setenv("CLAUDE_API_TEST_KEYRING", str(tmp_path / "keyring.json"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring_backends.FileKeyring")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    # `usage import` without FILE reads Claude Code's logs: never the real ones in a test.
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "no-claude-config"))
    monkeypatch.delenv("CLAUDE_API_NO_KEYRING", raising=False)
    monkeypatch.delenv("CLAUDE_API_DEBUG", raising=False)
    # The programs a test starts make their temporary folders in pytest's, which it
    # removes: an import killed on purpose cannot clean up after itself.
    monkeypatch.setenv("TMPDIR", str(tmp_path_factory.mktemp("tmp")))
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


def sql(query: str, params=(), db=None) -> list[tuple]:
    """Rows of a query on the test's store (either backend), as plain tuples; a
    statement that returns none ([]) is committed."""
    from claude_keys import db as store

    conn = store.connect(db)
    try:
        cur = conn.execute(query, params)
        return [] if cur.description is None else [tuple(r) for r in cur.fetchall()]
    finally:
        conn.close()


def dump(db=None) -> str:
    """Every row of every table of the store, as text (to search for what must not be there)."""
    from claude_keys import db as store
    from claude_keys.db import transfer

    conn = store.connect(db)
    try:
        return "\n".join(repr(tuple(r)) for t in transfer.tables(conn)
                         for r in conn.execute(f"SELECT * FROM {t}"))
    finally:
        conn.close()


def assert_consistent(db=None) -> tuple:
    """The store passes its integrity checks (SQLite's own on SQLite), every roll-up
    agrees with the usage rows, and every rate-limit window count agrees with its slots.
    Returns the usage sums."""
    from claude_keys import db as store
    from claude_keys.db import transfer

    conn = store.connect(db)
    try:
        if conn.backend == "sqlite":
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert conn.execute("SELECT count(*) FROM bulk_mode").fetchone() == (0,)
        assert transfer.disagreements(conn) == []
        windows = dict(conn.execute("SELECT lineage, used FROM rate_windows WHERE used > 0").fetchall())
        slots = dict(conn.execute("SELECT lineage, sum(n) FROM rate_slots GROUP BY lineage").fetchall())
        assert windows == slots
        from claude_keys.db.rollups import combine, exact_sums

        sums = exact_sums(["1", "input_tokens", "output_tokens", "cost_nanos"])  # exact past 2**63
        return combine(conn.execute(f"SELECT {sums} FROM usage").fetchone())
    finally:
        conn.close()


def connection_of(api_object):
    """The connection a Python API object's next call on this thread uses."""
    with api_object._connections.connection(create=False) as conn:
        return conn
