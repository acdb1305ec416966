"""Test isolation: a temporary root per run, a temporary store per test, a test keyring,
plain output.

Every test that touches the store runs twice: on a SQLite file (`[sqlite]`) and on a
database of its own on a PostgreSQL server that the session starts itself (`[postgres]`;
databases are emptied back to new and handed to a later test, which is much faster than
making one).
Without PostgreSQL those runs skip with the reason; in CI (CI=true) they fail instead.
A test's store exists already, set up as a user's first command leaves it (copied, or
recycled, rather than set up again each time); a test about making a store, or about a
store that is missing, is marked `new_store` and starts with none.
Tests about SQLite's own files are marked `sqlite_only`, tests about PostgreSQL's own
behaviour `postgres_only`; tests that do not touch the store at all, `one_backend`.

Each run has a root folder of its own (pytest's temporary folders, the PostgreSQL
server's), so runs at the same time on one machine never touch each other's; it is
removed when the run ends, and a later run removes those of runs that were killed.

The helpers tests share are in tests/helpers/ (`from tests.helpers.run import cli`).
"""
import faulthandler
import itertools
import os
import shutil
import signal
import sys
import tempfile
import traceback
from pathlib import Path

import keyring
import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

from tests.helpers import pg_server
from tests.helpers.ci import missing
from tests.helpers.keyring_backends import MemoryKeyring

CHECKOUT = Path(__file__).resolve().parent.parent  # on the PYTHONPATH of the programs tests start
RUN_ROOT_PREFIX = "claude-api-tests-"

settings.register_profile("claude-api", database=None)  # nothing kept between runs
settings.load_profile("claude-api")

_databases = itertools.count()

# A test that hangs must not hang the run: CI bounds the whole suite, and one stuck test
# would use up that bound and say nothing. At TEST_LIMIT_S a test fails with every
# thread's stack; if it is stuck where a signal cannot reach it, faulthandler prints the
# stacks a minute later and ends the worker (xdist names the test and starts another).
# The slowest test takes ~100 s on a loaded 2-core machine.
TEST_LIMIT_S = float(os.environ.get("CLAUDE_API_TEST_LIMIT_S", 300))


class TookTooLong(Exception):
    pass


def _too_long(signum, frame):
    stacks = "\n".join(f"--- thread {ident}:\n{''.join(traceback.format_stack(f))}"
                       for ident, f in sys._current_frames().items())
    said = f"the test ran past {TEST_LIMIT_S} s; its threads:\n{stacks}"
    # Said on the run's own stderr as well: a test whose threads stay stuck hangs again
    # in its teardown, and the worker is then ended before pytest reports the failure
    # (and faulthandler's later dump goes to the captured stderr, never seen).
    capture = _config.pluginmanager.getplugin("capturemanager") if _config else None
    capturing = capture is not None and capture.is_globally_capturing()
    if capturing:
        capture.suspend_global_capture(in_=True)
    try:
        sys.stderr.write(f"\n{os.environ.get('PYTEST_CURRENT_TEST', 'a test')}: {said}\n")
        sys.stderr.flush()
    finally:
        if capturing:
            capture.resume_global_capture()
    raise TookTooLong(said)


_config = None  # the run's pytest config (pytest_configure)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    previous = signal.signal(signal.SIGALRM, _too_long)
    signal.setitimer(signal.ITIMER_REAL, TEST_LIMIT_S)
    faulthandler.dump_traceback_later(TEST_LIMIT_S + 60, exit=True, file=sys.__stderr__)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        faulthandler.cancel_dump_traceback_later()


def _remove_roots_of_killed_runs(parent: str) -> None:
    """Roots whose run is gone (its process no longer exists) and that are ours."""
    for root in Path(parent).glob(RUN_ROOT_PREFIX + "*"):
        try:
            if root.stat().st_uid != os.getuid():
                continue
            pid = int((root / "pid").read_text())
        except (OSError, ValueError):
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(root, ignore_errors=True)
        except PermissionError:
            pass


@pytest.hookimpl(tryfirst=True)  # before pytest's own tmp_path plugin reads --basetemp
def pytest_configure(config):
    global _config
    _config = config
    config.addinivalue_line("markers", "sqlite_only: about SQLite's own files; runs on SQLite only")
    config.addinivalue_line("markers", "postgres_only: about PostgreSQL's own behaviour; runs on PostgreSQL only")
    config.addinivalue_line("markers", "one_backend: does not touch the store; runs once")
    config.addinivalue_line("markers", "new_store: starts with no store (the store is set up already otherwise)")
    # The run's own root: pytest rotates its default /tmp/pytest-of-USER/pytest-N folders,
    # removing older runs' folders while they may still be running.
    parent = tempfile.gettempdir()
    _remove_roots_of_killed_runs(parent)
    root = Path(tempfile.mkdtemp(prefix=RUN_ROOT_PREFIX, dir=parent))
    (root / "pid").write_text(str(os.getpid()))
    os.chmod(root, 0o711)  # the `postgres` user (when tests run as root) reaches its server's folder
    config.claude_api_root = root
    # Hypothesis keeps caches of its own (constants, unicode data) even with no database
    # (the profile above): in the run's root too, not a .hypothesis folder in the checkout.
    set_hypothesis_home_dir(root / "hypothesis")
    if not config.option.basetemp:
        config.option.basetemp = str(root / "pytest")


def pytest_unconfigure(config):
    root = getattr(config, "claude_api_root", None)
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)


# The terminal widths a test taking `columns` runs at, per backend: the width decides
# how a screen is laid out, the backend only what data it shows, so PostgreSQL's is
# read at the tighter width alone (each screen is a program on a pseudo-terminal).
SCREENS = {"sqlite": [80, 120], "postgres": [80]}


def pytest_generate_tests(metafunc):
    if "store_backend" in metafunc.fixturenames:
        marks = {m.name for m in metafunc.definition.iter_markers()}
        if "sqlite_only" in marks:
            backends = ["sqlite"]
        elif "postgres_only" in marks:
            backends = ["postgres"]
        elif "one_backend" not in marks:
            backends = ["sqlite", "postgres"]
        else:
            return
        if "columns" in metafunc.fixturenames:
            metafunc.parametrize("store_backend,columns", [(b, c) for b in backends for c in SCREENS[b]])
        else:
            metafunc.parametrize("store_backend", backends)


@pytest.fixture
def store_backend():
    """A test that does not touch the store gets a SQLite one, and runs once."""
    return "sqlite"


@pytest.fixture(scope="session")
def postgres(request):
    """The session's PostgreSQL server (started on first use, stopped at the end)."""
    reason = pg_server.missing_reason()
    if reason:
        missing(f"PostgreSQL for the [postgres] tests: {reason}")
    root = request.config.claude_api_root
    # Its socket's path must stay short, and the `postgres` user must reach it.
    server = pg_server.Server(parent=root if str(root).startswith("/tmp/") else None)
    yield server
    server.close()


_set_up_file = None  # this process's SQLite store, set up once, copied for each test


def _set_up_sqlite(target: Path, root: Path) -> None:
    """A copy of a store set up once: as if a first command had made it (a 0700 folder,
    a 0600 file), without running the schema steps again for each test."""
    global _set_up_file
    from claude_keys.db.sqlite import make_private_folders

    if _set_up_file is None:
        from claude_keys import db

        made = root / f"set-up-{os.getpid()}" / "keys.db"
        db.connect(str(made)).close()  # (the last connection closed: no WAL file beside it)
        _set_up_file = made
    make_private_folders(str(target.parent))
    shutil.copyfile(_set_up_file, target)
    os.chmod(target, 0o600)


@pytest.fixture
def store_target(store_backend, tmp_path, request):
    """The test's store: a file under tmp_path, or a database of its own (recycled
    afterwards). It exists, set up as a first command leaves it, unless the test is
    marked `new_store` (about making a store, or a store that is missing)."""
    new = any(request.node.get_closest_marker(m) for m in ("new_store", "one_backend"))  # (one_backend: none needed)
    if store_backend == "sqlite":
        target = tmp_path / "store" / "keys.db"
        if not new:
            _set_up_sqlite(target, request.config.claude_api_root)
        yield target
        return
    server = request.getfixturevalue("postgres")
    name = f"test_{os.getpid()}_{next(_databases)}"
    uri = server.fresh_database(name) if new else server.set_up_database(name)
    yield uri
    server.recycle_database(name)  # back to as new or as just set up, for a later test


@pytest.fixture(autouse=True)
def isolated(store_target, tmp_path, tmp_path_factory, monkeypatch, request):
    """Every test: its own store and keyring file, no colour, a fixed width."""
    db = store_target
    monkeypatch.setenv("CLAUDE_API_DB", str(db))
    monkeypatch.setenv("CLAUDE_API_TEST_KEYRING", str(tmp_path / "keyring.json"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "tests.helpers.keyring_backends.FileKeyring")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(CHECKOUT), os.environ.get("PYTHONPATH")])))
    # The programs tests start (a couple of thousand) keep their compiled modules in the
    # run's root: where bytecode is not written (PYTHONDONTWRITEBYTECODE, a read-only
    # checkout), each one compiled claude_keys from source again, ~30 ms apiece.
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    monkeypatch.setenv("PYTHONPYCACHEPREFIX", str(request.config.claude_api_root / "pycache"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    # Reports default to the system's time zone: the suite's is UTC wherever it runs.
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.delenv("CLAUDE_API_TZ", raising=False)
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
def pg(isolated, store_backend):
    """The test's store, a PostgreSQL database (its URI), for tests marked postgres_only."""
    assert store_backend == "postgres", "a test using `pg` is marked postgres_only"
    return isolated


@pytest.fixture
def memory_keyring():
    return keyring.get_keyring()
