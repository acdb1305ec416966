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


# What claude-api set up in a database, beyond what FINGERPRINT counts: every table,
# column, index, constraint, function, trigger and view of the public schema (with
# owners and privileges), and which schema steps it ran. A database recycled as set up
# must show the same as one set up just now.
SET_UP = """
SELECT md5(concat_ws('|',
  (SELECT string_agg(c.relname || ':' || c.relkind::text || ':' || c.relowner::regrole::text || ':'
                     || coalesce(c.relacl::text, ''), ',' ORDER BY c.relname) FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace),
  (SELECT string_agg(c.relname || '.' || a.attname || ':' || format_type(a.atttypid, a.atttypmod) || ':'
                     || a.attnotnull::text || ':' || coalesce(pg_get_expr(d.adbin, d.adrelid), ''),
                     ',' ORDER BY c.relname, a.attnum)
     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped),
  (SELECT string_agg(pg_get_indexdef(i.indexrelid), ',' ORDER BY pg_get_indexdef(i.indexrelid))
     FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = 'public'::regnamespace),
  (SELECT string_agg(conname || pg_get_constraintdef(oid), ',' ORDER BY conname || pg_get_constraintdef(oid))
     FROM pg_constraint WHERE connamespace = 'public'::regnamespace),
  (SELECT string_agg(md5(pg_get_functiondef(oid)), ',' ORDER BY md5(pg_get_functiondef(oid)))
     FROM pg_proc WHERE pronamespace = 'public'::regnamespace),
  (SELECT string_agg(tgenabled::text || pg_get_triggerdef(oid), ',' ORDER BY pg_get_triggerdef(oid))
     FROM pg_trigger WHERE NOT tgisinternal),
  (SELECT string_agg(viewname || definition, ',' ORDER BY viewname) FROM pg_views WHERE schemaname = 'public'),
  (SELECT string_agg(name, ',' ORDER BY name) FROM claude_api_migrations),
  (SELECT string_agg(version::text, ',') FROM claude_api_schema)))
"""
KEPT = ("claude_api_migrations", "claude_api_schema")  # the schema's own record: SET_UP compares it
TRUNCATED_FROM = 256 * 1024  # bytes: a table this big is truncated (DELETE costs by the row)

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
        self._set_up_spares: list[str] = []  # set-up databases emptied of data (set_up_database)
        self._set_up = None  # (FINGERPRINT, SET_UP, {table: rows}) of a database just set up
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

    def _renamed_spare(self, spares: list[str], name: str) -> bool:
        """Whether a database from `spares` is now called `name` (one that someone is
        still connected to cannot be renamed: it is dropped, and the next one tried)."""
        import psycopg

        while spares:
            spare = spares.pop()
            try:
                with self.admin() as conn:
                    conn.execute(f'ALTER DATABASE "{spare}" RENAME TO "{name}"')
                return True
            except psycopg.Error:
                self.drop_database(spare)
        return False

    def fresh_database(self, name: str) -> str:
        """An empty database called `name`, as new; its URI. A database recycled by
        recycle_database is renamed: a few ms, where CREATE DATABASE copies a template and
        checkpoints (0.1-0.4 s on a small machine; the tests make hundreds)."""
        import psycopg

        if self._renamed_spare(self._spares, name):
            return self.uri(name)
        uri = self.create_database(name)
        if self._pristine is None:
            with psycopg.connect(uri, autocommit=True) as conn:
                public = conn.execute("SELECT nspowner::regrole::text, coalesce(nspacl::text, ''), "
                                      "obj_description(oid, 'pg_namespace') FROM pg_namespace "
                                      "WHERE nspname = 'public'").fetchone()
                self._pristine = conn.execute(FINGERPRINT).fetchone(), public
        return uri

    def set_up_database(self, name: str) -> str:
        """A database called `name` that claude-api has set up (its current schema, and no
        keys, usage or settings of anyone's), as after a user's first command; its URI.
        One recycled as set up is renamed: the schema steps cost ~0.2 s each time."""
        import psycopg

        if self._renamed_spare(self._set_up_spares, name):
            return self.uri(name)
        uri = self.fresh_database(name)
        from claude_keys import db

        db.connect(uri).close()
        if self._set_up is None:
            with psycopg.connect(uri, autocommit=True) as conn:
                tables = [table for (table,) in conn.execute(
                    "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'")
                    if table not in KEPT]
                # The rows the schema steps wrote (settings' defaults), to put back.
                written = {table: rows for table in tables
                           if (rows := conn.execute(f'SELECT * FROM "{table}"').fetchall())}
                self._set_up = conn.execute(FINGERPRINT).fetchone(), conn.execute(SET_UP).fetchone()[0], written
        return uri

    def _reset_set_up(self, conn) -> bool:
        """Empty a set-up database back to just set up, when its schema is still what
        claude-api set up: every table emptied (triggers off, so roll-ups are not kept and
        foreign keys not checked), the rows the schema steps wrote put back, sequences
        restarted. False, untouched, when it is not."""
        fingerprint, digest, content = self._set_up
        if conn.execute("SELECT to_regclass('public.claude_api_migrations') IS NULL "
                        "OR to_regclass('public.claude_api_schema') IS NULL").fetchone()[0]:
            return False  # not set up
        if conn.execute(SET_UP).fetchone()[0] != digest:
            return False
        found = conn.execute("SELECT relname, relkind, pg_relation_size(oid) FROM pg_class "
                             "WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'S')").fetchall()
        tables = {name: size for name, kind, size in found if kind == "r" and name not in KEPT}
        big = [name for name, size in tables.items() if size >= TRUNCATED_FROM]
        script = ["SET LOCAL session_replication_role = replica"]
        script += ["TRUNCATE " + ", ".join(f'"{name}"' for name in big) + " CASCADE"] if big else []
        script += [f'DELETE FROM "{name}"' for name in tables if name not in big]
        script += [f'ALTER SEQUENCE "{name}" RESTART' for name, kind, _ in found if kind == "S"]
        with conn.transaction():
            conn.execute("; ".join(script))  # (one round trip)
            for table, rows in content.items():
                marks = ", ".join(["%s"] * len(rows[0]))
                conn.cursor().executemany(f'INSERT INTO "{table}" VALUES ({marks})', rows)
        return conn.execute(FINGERPRINT).fetchone() == fingerprint

    def recycle_database(self, name: str) -> None:
        """Done with database `name`: end its sessions, and empty it back to what a new one
        is, to be handed out again by fresh_database (or, when claude-api has set it up and
        its schema is unchanged, back to just set up, for set_up_database); or drop it, if
        it does not look new afterwards (FINGERPRINT)."""
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
                    if self._set_up is not None and self._reset_set_up(conn):
                        self._set_up_spares.append(name)
                        return
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
