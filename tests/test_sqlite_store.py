"""The SQLite store's own files (db/sqlite.py): private (a 0700 folder, 0600 files, the
WAL too, under any umask), in WAL mode, never made through a dangling symlink, readable
by a user who may not write them; a file that is not a store, or a path that cannot
be one, is one clear line."""
import json
import os
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

from claude_keys import db as store
from tests.helpers.run import EXE, cli, create, one_error_line, proc


@pytest.mark.one_backend
def test_default_store_is_created_private_under_umask_000(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CLAUDE_API_DB"}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "xdg"), HOME=str(tmp_path))
    done = subprocess.run(["sh", "-c", f"umask 000 && '{EXE}' keys create --project-id p -q"],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "xdg" / "claude-api"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = list(folder.iterdir())
    assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)


def _modes(top: Path) -> dict:
    return {str(p.relative_to(top)): stat.S_IMODE(p.stat().st_mode) for p in [top, *top.rglob("*")]}


@pytest.mark.one_backend
def test_every_folder_made_above_the_default_store_is_0700_under_umask_022(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CLAUDE_API_DB"}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "home" / "config" / "deeper"), HOME=str(tmp_path / "home"))
    (tmp_path / "home").mkdir(mode=0o755)
    done = subprocess.run(["sh", "-c", f"umask 022 && '{EXE}' keys create --project-id p -q"],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    modes = _modes(tmp_path / "home")
    assert modes.pop(".") == 0o755  # it was there before: left as it was
    folders = {p: m for p, m in modes.items() if (tmp_path / "home" / p).is_dir()}
    assert set(folders) == {"config", "config/deeper", "config/deeper/claude-api"}
    assert set(folders.values()) == {0o700}, folders


@pytest.mark.sqlite_only
def test_every_folder_made_above_a_given_store_is_0700_under_umask_022(tmp_path):
    top = tmp_path / "top"
    done = subprocess.run(["sh", "-c", f"umask 022 && '{EXE}' --db '{top}/a/b/keys.db' keys create "
                           "--project-id p -q"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    folders = {p: m for p, m in _modes(top).items() if (top / p).is_dir()}
    assert set(folders) == {".", "a", "a/b"}
    assert set(folders.values()) == {0o700}, folders


@pytest.mark.sqlite_only
def test_wal_files_stay_private_while_open(isolated):
    create()
    os.umask(0)
    try:
        conn = store.connect()
        conn.execute("SELECT count(*) FROM keys").fetchone()
        for f in isolated.parent.iterdir():
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        conn.close()
    finally:
        os.umask(0o022)


@pytest.mark.sqlite_only
def test_store_uses_wal(isolated):
    create()
    assert sqlite3.connect(isolated).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.sqlite_only
def test_a_file_that_is_not_a_database(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    one_error_line(cli("--db", junk, "keys", "list"), 1, "not a SQLite database")
    one_error_line(proc("--db", junk, "keys", "list"), 1, "not a SQLite database")


@pytest.mark.sqlite_only
def test_unusable_paths(tmp_path):
    (tmp_path / "afile").write_text("x")
    one_error_line(cli("--db", tmp_path / "afile" / "keys.db", "keys", "create", "--project-id", "p"),
                    1, "cannot open")
    one_error_line(cli("--db", tmp_path / "afile" / "keys.db", "keys", "list"), 1, "there is no store")
    (tmp_path / "adir").mkdir()
    one_error_line(cli("--db", tmp_path / "adir", "keys", "list"), 2, "is a directory")


@pytest.mark.sqlite_only
def test_no_store_or_backup_is_created_through_a_dangling_symlink(tmp_path, monkeypatch):
    os.umask(0o022)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "keys.db"
    link.symlink_to(elsewhere / "planted.db")
    monkeypatch.setenv("CLAUDE_API_DB", str(link))
    one_error_line(cli("keys", "create", "--project-id", "p"), 1, "symbolic link")
    assert list(elsewhere.iterdir()) == []
    # A backup or a copy to a dangling link: refused, nothing written where it points.
    real = tmp_path / "real.db"
    monkeypatch.setenv("CLAUDE_API_DB", str(real))
    create()
    backup_link = tmp_path / "backup.db"
    backup_link.symlink_to(elsewhere / "backup.db")
    one_error_line(cli("db", "backup", backup_link), 1, "symbolic link")
    copy_link = tmp_path / "copy.db"
    copy_link.symlink_to(elsewhere / "copy.db")
    one_error_line(cli("db", "copy", real, copy_link), 1, "symbolic link")
    assert list(elsewhere.iterdir()) == []
    # A symlink to an existing store is fine, and a new store is still 0600.
    (tmp_path / "alias.db").symlink_to(real)
    assert len(cli("--db", tmp_path / "alias.db", "keys", "list", "--json").json()) == 1
    assert cli("--db", tmp_path / "fresh.db", "keys", "create", "--project-id", "p").exit_code == 0
    assert (tmp_path / "fresh.db").stat().st_mode & 0o777 == 0o600
    assert cli("db", "backup", tmp_path / "b.db").exit_code == 0
    assert (tmp_path / "b.db").stat().st_mode & 0o777 == 0o600


@pytest.mark.sqlite_only
def test_a_reader_who_may_not_write_can_list_and_report(tmp_path):
    """The store's owner writes; another user may read the file but not write it or its
    folder. Listings and reports work for them; a change is one clear line."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="claude-api-ro-"))  # outside pytest's 0700 folders
    try:
        db = folder / "keys.db"
        r = cli("--db", db, "keys", "create", "--project-id", "p", "--name", "shared", "--json")
        key = r.json()
        assert cli("--db", db, "usage", "record", "--key", key["id"], "--cost", "2").exit_code == 0
        assert sorted(p.name for p in folder.iterdir()) == ["keys.db"]  # no WAL or shared memory left
        os.chmod(db, 0o644)
        os.chmod(folder, 0o755)
        results = _as_another_user([
            ["--db", str(db), "keys", "list", "--json"],
            ["--db", str(db), "keys", "show", "shared", "--json"],
            ["--db", str(db), "usage", "summary", "--period", "all", "--json"],
            ["--db", str(db), "audit", "--json"],
            ["--db", str(db), "keys", "create", "--project-id", "q"],
        ])
        (code, out, err), *_ = results
        assert code == 0 and json.loads(out)[0]["id"] == key["id"], results[0]
        assert results[1][0] == 0 and json.loads(results[1][1])["name"] == "shared", results[1]
        assert results[2][0] == 0 and json.loads(results[2][1])["cost_usd"] == 2, results[2]
        assert results[3][0] == 0, results[3]
        code, out, err = results[4]
        assert code == 1 and err.startswith("Error: ") and len(err.splitlines()) == 1, results[4]
        assert sorted(p.name for p in folder.iterdir()) == ["keys.db"]
    finally:
        import shutil

        shutil.rmtree(folder)


def _as_another_user(commands):
    """Run CLI commands in a child process that may read the store but not write it:
    as root, a child that became `nobody`; otherwise the files lose their write bits."""
    if os.getuid() != 0:
        pytest.skip("needs root to become another user (as the store's owner, chmod does not bind)")
    # What the commands import, imported now: `nobody` may not read this Python's folder.
    from click.testing import CliRunner

    import claude_keys.audit  # noqa: F401
    import claude_keys.cli.audit  # noqa: F401
    import claude_keys.cli.keys  # noqa: F401
    import claude_keys.cli.usage  # noqa: F401
    import claude_keys.pricing  # noqa: F401
    import claude_keys.render  # noqa: F401
    import claude_keys.reports  # noqa: F401
    import claude_keys.vault  # noqa: F401
    from claude_keys.cli import cli as root

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            out = []
            for args in commands:
                result = CliRunner().invoke(root, args, catch_exceptions=True)
                out.append((result.exit_code, result.stdout, result.stderr + (
                    repr(result.exception) if result.exception and not isinstance(result.exception, SystemExit) else "")))
            os.write(write, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 65536):
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    return json.loads(data)


@pytest.mark.sqlite_only
def test_threads_of_one_process_take_turns_to_write(isolated):
    """Writers of one process wait on a lock of the process (woken as soon as the writer
    before commits, not sleeping in SQLite's busy handler), within the wait bound; then
    one clear StoreError, and the store is as it was."""
    import threading
    import time

    from claude_keys import KeyStore, StoreError

    secret = create("--rate-limit", "1000")["key"]
    store = KeyStore(timeout=1)
    held, release = threading.Event(), threading.Event()

    def writer():
        with store._connections.connection(create=False) as c, c.write():
            held.set()
            release.wait(5)

    # another thread of this process holds a write transaction
    holder = threading.Thread(target=writer)
    holder.start()
    assert held.wait(5)
    started = time.monotonic()
    decisions = []
    waiting = threading.Thread(target=lambda: decisions.append(KeyStore(timeout=1).check(key=secret)))
    waiting.start()
    time.sleep(0.2)
    release.set()  # its turn comes as soon as the holder commits
    waiting.join(5)
    holder.join(5)
    assert decisions[0].allowed and time.monotonic() - started < 1.0
    holder = threading.Thread(target=writer)
    release.clear(), held.clear()
    holder.start()
    assert held.wait(5)
    try:
        started = time.monotonic()
        with pytest.raises(StoreError, match="busy past its wait bound"):
            store.record_usage(decisions[0].key_id, model="claude-sonnet-4-5", input_tokens=1)
        assert 0.9 < time.monotonic() - started < 2.0
    finally:
        release.set()
        holder.join(5)
    assert sqlite3.connect(isolated).execute("SELECT count(*) FROM usage").fetchone() == (0,)
