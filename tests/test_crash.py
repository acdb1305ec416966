"""Crash safety: processes killed with SIGKILL at random points leave a store that
passes `db check`, with roll-ups that agree with the rows, and no process of theirs
behind; re-running an import ends with exactly the file's records; a PostgreSQL server
stopped at once while workers write loses nothing acknowledged and counts nothing
twice."""
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.helpers import pg_server
from tests.helpers.processes import alive, command_line, descendants, dies_with_this_process
from tests.helpers.run import EXE, create, one_error_line, proc
from tests.helpers.store import assert_consistent, sql
from tests.helpers.workers import RESTART_WORKER


def write_records(path, key_id, n):
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"key": key_id, "at": f"2026-0{1 + i % 9}-{1 + i % 28:02d}T{i % 24:02d}:00:00Z",
                                "model": "claude-sonnet-4-5", "input_tokens": i % 1000, "output_tokens": 7,
                                "request_id": f"r{i:07d}"}) + "\n")


def killed_after(args, delay, env=None):
    """Start a process, SIGKILL it after `delay` seconds (if still running). (It dies
    with the test run too: the write bursts never end by themselves.)"""
    child = subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, preexec_fn=dies_with_this_process())
    try:
        child.wait(timeout=delay)
        return False  # it finished first
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGKILL)
        child.wait()
        return True


def test_a_killed_import_leaves_no_process_behind(isolated, tmp_path):
    """A big import parses in worker processes (with multiprocessing's resource tracker
    beside them); killed with SIGKILL, it takes every one of them with it."""
    key = create()
    path = tmp_path / "usage.jsonl"
    write_records(path, key["id"], 120_000)  # ~18 MB: parsed by workers from 8 MB on
    child = subprocess.Popen([EXE, "usage", "import", str(path)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    seen = {}  # pid -> command line, of everything the import started
    try:
        deadline = time.monotonic() + 60
        while child.poll() is None and time.monotonic() < deadline:
            # (read again each time: until it execs, a new child shows its parent's command line)
            seen.update((pid, command_line(pid) or seen.get(pid, "")) for pid in descendants(child.pid))
            workers = [pid for pid, line in seen.items() if "spawn_main" in line and alive(pid)]
            if len(workers) >= min(os.cpu_count() or 1, 2) and any("resource_tracker" in line for line in seen.values()):
                break
            time.sleep(0.01)
        time.sleep(0.3)  # the workers at work, each on its part of the file
        assert child.poll() is None, f"the import ended before its workers were seen: {seen}"
        child.kill()
        child.wait()
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in seen) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert {pid: line for pid, line in seen.items() if alive(pid)} == {}
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert proc("db", "check").exit_code == 0


def test_an_import_killed_at_random_points(isolated, tmp_path):
    key = create()
    n = 80_000  # ~20 MB: big enough for worker processes and several merge batches
    path = tmp_path / "usage.jsonl"
    write_records(path, key["id"], n)
    rng = random.Random(4)
    kills = 0
    for _ in range(4):
        kills += killed_after([EXE, "usage", "import", str(path)], rng.uniform(0.3, 2.5))
        assert proc("db", "check").exit_code == 0
        count = assert_consistent(isolated)[0]
        assert 0 <= count <= n
    assert kills >= 2, "the import finished before most kills: make the file bigger"
    done = proc("usage", "import", str(path), "--json")
    assert done.exit_code == 0, (done, _sessions(isolated))
    tokens_in = sum(i % 1000 for i in range(n))
    # Exactly the file: Sonnet at $3 / $15 per million tokens is 3,000 / 15,000 nano-dollars a token.
    assert assert_consistent(isolated) == (n, tokens_in, 7 * n, tokens_in * 3000 + 7 * n * 15000)
    assert json.loads(proc("usage", "summary", "--period", "all", "--json").stdout)["requests"] == n


def _sessions(store) -> list:
    """On PostgreSQL, what every session of the server was doing (to tell what a wait
    that ran out met); on SQLite, nothing."""
    if not str(store).startswith("postgresql:"):
        return []
    import psycopg

    with psycopg.connect(str(store), autocommit=True) as admin:
        return admin.execute("SELECT datname, pid, state, wait_event_type, wait_event, backend_type, "
                             "now() - query_start, left(query, 120) FROM pg_stat_activity "
                             "WHERE pid <> pg_backend_pid()").fetchall()


BURST = textwrap.dedent("""
    import sys
    from claude_keys import AuthManager, KeyStore
    store, auth = KeyStore(), AuthManager()
    secret = sys.argv[1]
    i = 0
    while True:
        decision = store.check(key=secret)
        if decision.allowed:
            store.record_usage(decision.key_id, input_tokens=3, cost="0.001", request_id=f"b{sys.argv[2]}-{i}")
        if i % 50 == 0:
            auth.generate_key("burst", use_keyring=False)
        i += 1
""")


def test_bursts_of_writes_killed_at_random_points(isolated):
    key = create("--rate-limit", "100000")
    rng = random.Random(9)
    for round_ in range(5):
        assert killed_after([sys.executable, "-c", BURST, key["key"], str(round_)], rng.uniform(0.2, 1.2),
                            env={"CLAUDE_API_NO_KEYRING": "1"})
        assert proc("db", "check").exit_code == 0
        assert_consistent(isolated)
    assert proc("keys", "verify", key["key"]).exit_code == 0


@pytest.mark.one_backend
def test_a_server_restart_loses_nothing_and_counts_nothing_twice(tmp_path):
    reason = pg_server.missing_reason()
    if reason:
        pytest.fail(reason) if os.environ.get("CI") else pytest.skip(reason)
    server = pg_server.Server(durable=True)  # its own server, which this test crashes
    try:
        uri = server.create_database("restart")
        done = proc("--db", uri, "keys", "create", "--project-id", "p", "--no-keyring", "--json")
        key = json.loads(done.stdout)
        workers = [subprocess.Popen([sys.executable, "-c", RESTART_WORKER, uri, key["key"], f"w{i}", "6"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for i in range(4)]
        for w in workers:  # each at work (on a loaded machine starting takes a while)
            assert w.stderr.readline().strip() == "ready"
        time.sleep(0.5)
        server.stop("immediate")
        outage = proc("--db", uri, "keys", "list")
        time.sleep(1.5)
        server.start()
        results = []
        for w in workers:
            out, err = w.communicate(timeout=90)
            assert w.returncode == 0, err
            results.append(json.loads(out))
        one_error_line(outage, 1, "cannot connect to the store")
        acknowledged = [r for result in results for r in result["acknowledged"]]
        stored = {r for (r,) in sql("SELECT request_id FROM usage", db=uri)}
        assert stored == set(acknowledged) and len(acknowledged) == len(set(acknowledged))
        assert sum(r["errors"] for r in results) > 0  # the outage was felt...
        assert all(len(m) < 120 for r in results for m in r["messages"])
        assert_consistent(uri)  # ...and nothing was lost or counted twice
        assert len(acknowledged) > 20
    finally:
        server.close()
