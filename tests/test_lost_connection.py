"""A connection to a PostgreSQL store lost in the middle of a command (the server ends
the session, or stops): one line naming the store (no password) and what to do, no
traceback, no second line from a clean-up (a staging cursor, a COPY psycopg gives
up), and a rerun finishes the import exactly."""
import subprocess
import time

import pytest

from tests.helpers.claude_logs import write_logs
from tests.helpers.run import EXE, cli, one_error_line, report
from tests.helpers.store import assert_consistent, sql

pytestmark = pytest.mark.postgres_only


def _database(pg) -> str:
    return pg.split("///")[1].partition("?")[0]


def _totals():
    t = report("summary", "--period", "all")
    return t["requests"], t["input_tokens"], t["output_tokens"], round(t["cost_usd"] * 1e9)


def _truth_totals(truth):
    return truth.requests, truth.input_tokens, truth.output_tokens, truth.cost_nanos


def test_a_connection_lost_while_a_batch_is_sent_is_one_line_and_a_rerun_finishes(pg, postgres, tmp_path, monkeypatch):
    from claude_keys.db import postgres as backend, staging

    truth = write_logs(tmp_path / "claude", projects=2, sessions=3, responses=60, seed=5)
    monkeypatch.setattr(staging, "BATCH", 100)  # several batches
    sent = {"batches": 0}
    copy_in = backend.Connection.copy_in

    def copy_in_then_lose(self, table, columns, rows):
        if table != "incoming":
            return copy_in(self, table, columns, rows)
        sent["batches"] += 1
        if sent["batches"] < 3:
            return copy_in(self, table, columns, rows)

        def rows_then_lost():  # the server ends the session while the staged rows stream
            for n, row in enumerate(rows):
                if n == 50:
                    with postgres.admin() as admin:
                        admin.execute("SELECT pg_terminate_backend(%s)", (self.raw.info.backend_pid,))
                    time.sleep(0.2)
                yield row
        return copy_in(self, table, columns, rows_then_lost())

    monkeypatch.setattr(backend.Connection, "copy_in", copy_in_then_lose)
    r = cli("usage", "import", tmp_path / "claude")
    line = one_error_line(r, 1, "the connection to the store", "was lost during the import",
                          "200 of", "run the same import again")
    assert _database(pg) in line
    assert sql("SELECT count(*) FROM usage") == [(200,)]  # the two whole batches, nothing of the third
    assert_consistent()
    monkeypatch.setattr(backend.Connection, "copy_in", copy_in)
    again = cli("usage", "import", tmp_path / "claude", "--json")
    assert again.exit_code == 0, again
    assert _totals() == _truth_totals(truth)
    assert_consistent()


def test_a_real_import_whose_session_is_ended_says_so_once(pg, postgres, tmp_path):
    truth = write_logs(tmp_path / "claude", projects=2, sessions=4, responses=200, seed=8)
    importing = subprocess.Popen([EXE, "usage", "import", str(tmp_path / "claude")],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ended = 0
    with postgres.admin() as admin:
        deadline = time.monotonic() + 60
        while importing.poll() is None and not ended and time.monotonic() < deadline:
            # Once the import has asked where each log was read to (it is reading them now).
            ended = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                                  "datname = %s AND query LIKE %s", (_database(pg), "%import_files%")).fetchone()[0]
            time.sleep(0.02)
    out, err = importing.communicate(timeout=60)
    assert ended, "the import ended before its session could be"
    lines = err.strip().splitlines()
    assert importing.returncode == 1 and len(lines) == 1 and "Traceback" not in err, err
    assert "the connection to the store" in lines[0] and "run the same import again" in lines[0], err
    assert _database(pg) in lines[0]
    assert cli("usage", "import", tmp_path / "claude").exit_code == 0
    assert _totals() == _truth_totals(truth)
    assert_consistent()
