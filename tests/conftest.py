"""Test isolation: a temporary store, a test keyring, plain output.

Every test that touches the store runs twice: on a SQLite file (`[sqlite]`) and on a
fresh database of a PostgreSQL server that the session starts itself (`[postgres]`).
Without PostgreSQL those runs skip with the reason; in CI (CI=true) they fail instead.
Tests about SQLite's own files are marked `sqlite_only`; tests that do not touch the
store at all, `one_backend`.

The helpers tests share are in tests/helpers/ (`from tests.helpers.run import cli`).
"""
import itertools
import os
from pathlib import Path

import keyring
import pytest
from hypothesis import settings

from tests.helpers import pg_server
from tests.helpers.ci import missing
from tests.helpers.keyring_backends import MemoryKeyring

CHECKOUT = Path(__file__).resolve().parent.parent  # on the PYTHONPATH of the programs tests start

settings.register_profile("claude-api", database=None)  # no .hypothesis folder in the checkout
settings.load_profile("claude-api")

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
        missing(f"PostgreSQL for the [postgres] tests: {reason}")
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
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "tests.helpers.keyring_backends.FileKeyring")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(CHECKOUT), os.environ.get("PYTHONPATH")])))
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
