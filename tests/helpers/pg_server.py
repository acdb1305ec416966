"""A throwaway PostgreSQL server for the tests (and bench/): its own data folder and Unix
socket in a temporary folder, fsync off, removed when it is closed.

The server is `postgres` itself (not `pg_ctl start`, which leaves a daemon), a child of
this process with Linux's parent-death signal (SIGKILL): it dies with the process that
started it, however that dies (kill -9 included), and its own children (backends,
checkpointer, ...) exit when it does. A killed test run leaves no server behind. (The
signal is tied to the thread that starts the server: start it from the main thread, or
one that lives as long.)

initdb and postgres refuse to run as root, so as root they run as the `postgres` user.
"""
from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.helpers.processes import dies_with_this_process

USER = "postgres"  # the database superuser the tests connect as
STOP_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}

# All that makes a database more than the empty one CREATE DATABASE gives: its schemas
# (owner, privileges, comment), anything in them, and what belongs to the database
# itself. A recycled database must show the same as a new one.
FINGERPRINT = """
SELECT (SELECT array_agg(ARRAY[nspname, nspowner::regrole::text, coalesce(nspacl::text, ''),
                               coalesce(obj_description(oid, 'pg_namespace'), '')] ORDER BY nspname)
          FROM pg_namespace WHERE nspname !~ '^pg_(toast_)?temp_'),
       (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname !~ '^pg_(toast_)?temp_'),
       (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')),
       (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname !~ '^pg_(toast_)?temp_'),
       (SELECT count(*) FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')),
       (SELECT count(*) FROM pg_extension), (SELECT count(*) FROM pg_event_trigger),
       (SELECT count(*) FROM pg_largeobject_metadata), (SELECT count(*) FROM pg_publication),
       (SELECT count(*) FROM pg_default_acl),
       (SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
         WHERE d.datname = current_database()),
       (SELECT ARRAY[datconnlimit::text, datallowconn::text, coalesce(datacl::text, ''), datistemplate::text]
          FROM pg_database WHERE datname = current_database())
"""


def binaries() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian's layout), or one on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def missing_reason() -> str | None:
    if binaries() is None:
        return "PostgreSQL is not installed (no initdb): apt-get install postgresql"
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam(USER)
        except KeyError:
            return f"running as root, and there is no {USER!r} user to run PostgreSQL as"
    return None


class Server:
    """`durable`: acknowledge a commit only once its WAL is written (PostgreSQL's default),
    for tests that crash the server; otherwise commits are acknowledged sooner.
    `parent`: the folder to make the server's folder in (default: the system's /tmp)."""

    def __init__(self, durable: bool = False, parent: str | Path | None = None):
        self.durable = durable
        self.bin = binaries()
        self.process: subprocess.Popen | None = None
        # Not in TMPDIR (tests point that into pytest's folders, which the `postgres` user
        # may not enter), and short: a socket's path has at most 107 bytes.
        if parent is None:
            parent = "/tmp" if os.path.isdir("/tmp") else None
        self.folder = Path(tempfile.mkdtemp(prefix="claude-api-pg-", dir=parent))
        self.data = self.folder / "data"
        self.socket = self.folder  # the socket lives beside the data
        self.log = self.folder / "log"
        self.as_root = os.geteuid() == 0
        self._spares: list[str] = []  # emptied databases, kept to be renamed (fresh_database)
        self._pristine = None  # FINGERPRINT of a new database, and its public schema
        try:
            if self.as_root:
                shutil.chown(self.folder, USER)
                os.chmod(self.folder, 0o755)
            self._initdb()
            self.start()
        except BaseException:
            self.close()
            raise

    def _child(self, *args: str, **popen) -> subprocess.Popen:
        return subprocess.Popen([str(a) for a in args], cwd=self.folder,
                                preexec_fn=dies_with_this_process(USER if self.as_root else None), **popen)

    def _initdb(self) -> None:
        child = self._child(self.bin / "initdb", "-D", self.data, "-A", "trust", "-U", USER, "--no-sync",
                            "-E", "UTF8", "--locale", "C", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
        out, _ = child.communicate()
        if child.returncode:
            raise RuntimeError(f"initdb failed: {out}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        if self.running():
            return
        settings = {"listen_addresses": "", "fsync": "off", "full_page_writes": "off",
                    "synchronous_commit": "on" if self.durable else "off", "max_connections": "300",
                    "shared_buffers": "64MB"}
        options = [x for name, value in settings.items() for x in ("-c", f"{name}={value}")]
        with open(self.log, "ab") as log:
            self.process = self._child(self.bin / "postgres", "-D", self.data, "-k", self.socket, *options,
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop("immediate")
                log = self.log.read_text(errors="replace") if self.log.exists() else ""
                raise RuntimeError(f"postgres did not start: {log[-2000:]}")
            time.sleep(0.1)  # as `pg_ctl start -w` polls (tests of reconnecting after a restart count on it)

    def _ready(self) -> bool:
        """postmaster.pid names this server, and says it is ready (as pg_ctl -w reads it)."""
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[0].strip() == str(self.process.pid) and lines[7].strip() == "ready"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (smart, fast or immediate, as pg_ctl -m) and wait for it and
        its children to exit. Stopping a stopped server does nothing."""
        if not self.running():
            return
        self.process.send_signal(STOP_SIGNALS[mode])
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self, down_for: float = 0.0) -> None:
        self.stop("immediate")
        time.sleep(down_for)
        self.start()

    @property
    def pid(self) -> int | None:
        """The postmaster's process id, while it runs."""
        return self.process.pid if self.running() else None

    def uri(self, database: str = "postgres", **extra: str) -> str:
        params = "&".join(f"{k}={v}" for k, v in {"host": str(self.socket), "user": USER, **extra}.items())
        return f"postgresql:///{database}?{params}"

    def admin(self):
        import psycopg

        return psycopg.connect(self.uri(), autocommit=True)

    def create_database(self, name: str) -> str:
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.uri(name)

    def fresh_database(self, name: str) -> str:
        """An empty database called `name`, as new; its URI. A database recycled by
        recycle_database is renamed: a few ms, where CREATE DATABASE copies a template and
        checkpoints (0.1-0.4 s on a small machine; the tests make hundreds)."""
        import psycopg

        while self._spares:
            spare = self._spares.pop()
            try:
                with self.admin() as conn:
                    conn.execute(f'ALTER DATABASE "{spare}" RENAME TO "{name}"')
                return self.uri(name)
            except psycopg.Error:  # someone is still connected to it
                self.drop_database(spare)
        uri = self.create_database(name)
        if self._pristine is None:
            with psycopg.connect(uri, autocommit=True) as conn:
                public = conn.execute("SELECT nspowner::regrole::text, coalesce(nspacl::text, ''), "
                                      "obj_description(oid, 'pg_namespace') FROM pg_namespace "
                                      "WHERE nspname = 'public'").fetchone()
                self._pristine = conn.execute(FINGERPRINT).fetchone(), public
        return uri

    def recycle_database(self, name: str) -> None:
        """Done with database `name`: end its sessions, and empty it back to what a new one
        is, to be handed out again by fresh_database; or drop it, if it does not look new
        afterwards (FINGERPRINT)."""
        import psycopg
        from psycopg import sql

        clean = False
        if self._pristine is not None:
            fingerprint, (owner, acl, comment) = self._pristine
            try:
                with self.admin() as admin:
                    admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
                with psycopg.connect(self.uri(name), autocommit=True) as conn:
                    conn.execute("SET lock_timeout = '5s'")
                    conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
                    conn.execute(sql.SQL("CREATE SCHEMA public AUTHORIZATION {}").format(sql.Identifier(owner)))
                    public = next((item.split("=")[1].split("/")[0] for item in acl.strip("{}").split(",")
                                   if item.startswith("=")), "")  # PUBLIC's privileges: U, UC
                    for letter, privilege in (("U", "USAGE"), ("C", "CREATE")):
                        if letter in public:
                            conn.execute(f"GRANT {privilege} ON SCHEMA public TO PUBLIC")
                    if comment is not None:
                        conn.execute(sql.SQL("COMMENT ON SCHEMA public IS {}").format(sql.Literal(comment)))
                    clean = conn.execute(FINGERPRINT).fetchone() == fingerprint
            except psycopg.Error:
                clean = False
        if clean:
            self._spares.append(name)
        else:
            self.drop_database(name)

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
