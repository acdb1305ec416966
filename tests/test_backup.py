"""`db backup`: a usable, private copy, consistent even while other processes write,
of a SQLite or a PostgreSQL store; never over an existing file, into a missing folder,
or of a store that does not exist."""
import os
import stat
import subprocess
import sys
import time

import pytest

from tests.helpers.run import cli, create, one_error_line, proc
from tests.helpers.store import assert_consistent
from tests.helpers.workers import RESTART_WORKER


def test_db_backup_is_a_usable_copy(tmp_path):
    keys = [create() for _ in range(3)]
    copy = tmp_path / "backup.db"
    assert cli("db", "backup", copy).exit_code == 0
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    listed = cli("--db", copy, "keys", "list", "--json").json()
    assert {k["id"] for k in listed} == {k["id"] for k in keys}
    one_error_line(cli("db", "backup", copy), 1, "already exists")


WRITER = """
import sys, time
from claude_keys import KeyStore
store = KeyStore()
end = time.time() + float(sys.argv[3])
i = 0
while time.time() < end:
    decision = store.check(key=sys.argv[1])
    store.record_usage(decision.key_id, input_tokens=i % 97, output_tokens=1, cost="0.0001",
                       request_id=f"{sys.argv[2]}-{i}")
    i += 1
"""


def _backups_while_writing(folder, n: int, *, pause: float) -> list:
    """`n` backups taken `pause` seconds apart, once the writers have had half a second."""
    copies = []
    time.sleep(0.5)
    for i in range(n):
        copy = folder / f"backup-{i}.db"
        assert proc("db", "backup", copy).exit_code == 0
        copies.append(copy)
        time.sleep(pause)
    return copies


def test_backups_taken_while_others_write_are_consistent(isolated, tmp_path):
    import sys

    from tests.helpers.store import assert_consistent

    key = create("--rate-limit", "1000000")
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, key["key"], f"w{i}", "4"], env=os.environ)
               for i in range(3)]
    try:
        copies = _backups_while_writing(tmp_path, 5, pause=0.4)
    finally:
        for w in writers:
            assert w.wait(timeout=30) == 0
    counts = [assert_consistent(c)[0] for c in copies]
    assert counts == sorted(counts) and counts[-1] > 0  # each a consistent snapshot, later ones later
    assert proc("--db", copies[-1], "db", "check").exit_code == 0
    assert assert_consistent(isolated)[0] >= counts[-1]


def test_a_backup_into_a_missing_folder_is_refused(tmp_path):
    create()
    r = cli("db", "backup", tmp_path / "no" / "such" / "backup.db")
    assert r.exit_code == 1 and "does not exist" in r.stderr and not (tmp_path / "no").exists()


@pytest.mark.new_store
@pytest.mark.sqlite_only
def test_db_backup_of_no_store_creates_neither(tmp_path, monkeypatch):
    monkeypatch.setenv("CLAUDE_API_DB", str(tmp_path / "typo.db"))
    one_error_line(cli("db", "backup", tmp_path / "copy.db"), 1, "typo.db")
    one_error_line(cli("db", "copy", tmp_path / "typo.db", tmp_path / "copy.db"), 1, "typo.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.postgres_only
def test_db_backup_of_a_postgres_store_is_a_consistent_sqlite_file(pg, tmp_path):
    key = create("--rate-limit", "1000000")
    writer = subprocess.Popen([sys.executable, "-c", RESTART_WORKER, pg, key["key"], "b", "3"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    copies = _backups_while_writing(tmp_path, 3, pause=0.5)
    writer.communicate(timeout=60)
    counts = [assert_consistent(c)[0] for c in copies]
    assert counts == sorted(counts) and counts[-1] > 0
    assert oct(copies[0].stat().st_mode & 0o777) == "0o600"
