"""A throwaway PostgreSQL server for the tests: its own data folder and Unix socket in a
temporary folder, fsync off, started and stopped by the test session.

initdb refuses to run as root, so as root the server runs as the `postgres` user.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

USER = "postgres"  # the database superuser the tests connect as


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
    for tests that crash the server; otherwise commits are acknowledged sooner."""

    def __init__(self, durable: bool = False):
        self.durable = durable
        self.bin = binaries()
        # In the system's own temporary folder, not TMPDIR (tests point that into pytest's
        # folders, which the `postgres` user may not enter, and a socket path must stay
        # short); removed when the server stops.
        system_tmp = "/tmp" if os.path.isdir("/tmp") else None
        self.folder = Path(tempfile.mkdtemp(prefix="claude-api-pg-", dir=system_tmp))
        self.data = self.folder / "data"
        self.socket = self.folder  # the socket lives beside the data
        self.log = self.folder / "log"
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.folder, USER)
            os.chmod(self.folder, 0o755)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", USER, "--no-sync",
                  "-E", "UTF8", "--locale", "C")
        self.start()

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin / tool), *args]
        if self.as_root:
            command = ["runuser", "-u", USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.folder)
        if check and done.returncode:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed: {done.stderr}{done.stdout}\n{log[-2000:]}")
        return done

    def start(self) -> None:
        options = (f"-k {self.socket} -c listen_addresses='' -c fsync=off -c full_page_writes=off "
                   f"-c synchronous_commit={'on' if self.durable else 'off'} -c max_connections=300 "
                   "-c shared_buffers=64MB")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self, down_for: float = 0.0) -> None:
        self.stop("immediate")
        time.sleep(down_for)
        self.start()

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

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
