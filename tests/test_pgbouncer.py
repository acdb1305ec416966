"""Behind PgBouncer in transaction pooling: nothing claude-api does outlives a
transaction (no session advisory locks, temporary tables that drop at commit, no
session SETs, and no prepared statements once a pooler is seen), so the rate limit and
budgets stay exact and imports work. A real PgBouncer (Debian's package), started by
the test in front of the session's PostgreSQL server: as configured by default
(refusing the `options` startup parameter), and told to ignore `options` (so the
pooler is only seen when a prepared statement goes missing)."""
import os
import shutil
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from claude_keys import KeyStore
from tests.helpers.ci import IN_CI
from tests.helpers.run import create, proc
from tests.helpers.store import assert_consistent, sql

pytestmark = pytest.mark.one_backend

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


class Bouncer:
    """PgBouncer on a Unix socket of its own (port 6432), in front of `server`; it dies
    with the test process, however that dies (the parent-death signal)."""

    def __init__(self, server, ignore_options: bool = False, parent: Path | None = None):
        # In the run's root (removed by the next run when this one is killed), where its
        # socket's path stays short, as the server's does.
        self.folder = Path(tempfile.mkdtemp(prefix="claude-api-pgb-", dir=parent or "/tmp"))
        (self.folder / "users.txt").write_text('"postgres" ""\n')
        (self.folder / "pgbouncer.ini").write_text(f"""[databases]
* = host={server.socket} port=5432
[pgbouncer]
listen_addr =
listen_port = 6432
unix_socket_dir = {self.folder}
auth_type = trust
auth_file = {self.folder}/users.txt
pool_mode = transaction
default_pool_size = 4
max_client_conn = 400
logfile = {self.folder}/log
{"ignore_startup_parameters = options" if ignore_options else ""}
""")
        user = None
        if os.geteuid() == 0:  # PgBouncer will not run as root
            import pwd

            user = pwd.getpwnam("postgres")
            shutil.chown(self.folder, user.pw_uid, user.pw_gid)
            for f in self.folder.iterdir():
                shutil.chown(f, user.pw_uid, user.pw_gid)

        import ctypes

        prctl = ctypes.CDLL(None).prctl  # (loaded here: after setuid, root's files are out of reach)

        def start_as_child():
            if user is not None:
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)
            prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG, after setuid (which clears it)

        try:
            self.process = subprocess.Popen([PGBOUNCER, str(self.folder / "pgbouncer.ini")],
                                            preexec_fn=start_as_child, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while not (self.folder / ".s.PGSQL.6432").exists():
                if time.monotonic() > deadline or self.process.poll() is not None:
                    log = (self.folder / "log").read_text() if (self.folder / "log").exists() else ""
                    raise RuntimeError(f"pgbouncer did not start: {log[-2000:]}")
                time.sleep(0.05)
        except BaseException:
            if getattr(self, "process", None) is not None:
                self.process.kill()
            shutil.rmtree(self.folder, ignore_errors=True)
            raise

    def uri(self, database: str) -> str:
        return f"postgresql:///{database}?host={self.folder}&port=6432&user=postgres"

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module", params=["refusing options", "ignoring options"])
def bouncer(postgres, request):
    if not os.path.exists(PGBOUNCER):
        if IN_CI:
            pytest.fail("CI needs pgbouncer for these tests: apt-get install pgbouncer")
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)")
    root = request.config.claude_api_root
    found = Bouncer(postgres, ignore_options=request.param == "ignoring options",
                    parent=root if str(root).startswith("/tmp/") else None)
    yield found
    found.close()


@pytest.fixture
def behind(bouncer, postgres, monkeypatch):
    """A new database, reached only through PgBouncer."""
    name = f"pgb_{os.getpid()}_{time.monotonic_ns()}"
    postgres.create_database(name)
    uri = bouncer.uri(name)
    monkeypatch.setenv("CLAUDE_API_DB", uri)
    yield uri
    postgres.drop_database(name)


def test_the_rate_limit_stays_exact(behind):
    key = create("--rate-limit", "13")
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: proc("keys", "verify", key["key"]).exit_code, range(30)))
    assert codes.count(0) == 13 and codes.count(5) == 17
    store = KeyStore(pool_size=6)
    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(lambda _: store.check(key=key["key"]).status, range(24)))
    assert statuses.count(429) == 24  # the window is full: the service's pool sees it too
    assert sql("SELECT used FROM rate_windows") == [(13,)]


def test_budgets_stay_exact(behind, monkeypatch):
    from claude_keys.db.postgres import RawConnection

    monkeypatch.setattr(RawConnection, "unprepared", set())
    key = create("--monthly-budget", "1", "--max-concurrent", "100")
    store = KeyStore(pool_size=6)
    with ThreadPoolExecutor(16) as pool:  # (each statement runs often enough to be prepared)
        decisions = list(pool.map(lambda _: store.check(key=key["key"], cost="0.40"), range(64)))
    allowed = [d for d in decisions if d.allowed]
    assert len(allowed) == 2 and all(d.status == 429 for d in decisions if not d.allowed)
    assert RawConnection.unprepared  # the pooler was seen: by its refusal, or a missing statement
    for d in allowed:
        assert store.record_usage(key["id"], cost="0.40", request_id=d.request_id).recorded
    assert not store.check(key=key["key"], cost="0.40").allowed
    assert proc("keys", "show", key["id"], "--json").json()["current"]["month_cost_usd"] == 0.8
    assert_consistent()


def test_the_async_store_stays_exact(behind, monkeypatch):
    """AsyncKeyStore's own pool on the event loop (db/postgres_async.py) behind the pooler:
    statements prepared only where no pooler is seen, the budget and rate exact."""
    import asyncio

    from claude_keys import AsyncKeyStore
    from claude_keys.db.postgres import RawConnection

    monkeypatch.setattr(RawConnection, "unprepared", set())
    key = create("--monthly-budget", "1", "--max-concurrent", "100", "--rate-limit", "40")

    async def scenario():
        async with AsyncKeyStore(pool_size=6, async_pool=True) as store:
            decisions = await asyncio.gather(*[store.check(key=key["key"], cost="0.10") for _ in range(64)])
            allowed = [d for d in decisions if d.allowed]
            for d in allowed[:3]:
                assert (await store.record_usage(key["id"], cost="0.10", request_id=d.request_id)).recorded
            for d in allowed[3:]:
                assert await store.release(d.request_id)
            return decisions, store._way.direct

    decisions, direct = asyncio.run(scenario())
    assert direct  # (the calls after the first ran on the loop's pool)
    assert sum(d.allowed for d in decisions) == 10  # $1 at $0.10 reserved each
    assert all(d.status == 429 for d in decisions if not d.allowed)
    assert RawConnection.unprepared  # the pooler was seen
    assert sql("SELECT count(*) FROM in_flight") == [(0,)] and sql("SELECT count(*) FROM usage") == [(3,)]
    assert_consistent()


def test_imports_and_admin_writes_work(behind, tmp_path):
    key = create()
    records = tmp_path / "usage.jsonl"
    records.write_text("".join(
        f'{{"key": "{key["id"]}", "at": "2026-11-0{1 + i % 9}T10:00:00Z", "model": "claude-haiku-4-5", '
        f'"input_tokens": {100 + i}, "output_tokens": 10, "request_id": "r{i}"}}\n' for i in range(300)))
    for _ in range(2):  # the second time every request is already stored
        assert proc("usage", "import", records).exit_code == 0
    assert sql("SELECT count(*), sum(input_tokens) FROM usage") == [(300, sum(100 + i for i in range(300)))]
    assert proc("keys", "rotate", key["id"], "--no-keyring", "-y").exit_code == 0
    assert proc("keys", "revoke", key["id"], "--yes").exit_code == 0
    assert_consistent()
