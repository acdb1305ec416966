"""`keys verify` and the gate: every outcome's JSON and exit code, decision order,
exact rate limits under concurrency, budgets from recorded usage."""
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from claude_keys import gate
from claude_keys import db as store
from tests.helpers.run import cli, create, proc
from tests.helpers.store import sql


def verify(key, *args, code=None):
    r = cli("keys", "verify", key, "--json", *args)
    answer = r.json()
    if code is not None:
        assert r.exit_code == code, r
    assert answer["allowed"] == (r.exit_code == 0)
    return answer


def error(answer):
    return answer["error"]["type"], answer["error"]["message"]


def test_success_answer_shape():
    key = create("--profile", "free")
    answer = verify(key["key"], "--tool", "Read", code=0)
    assert answer["status"] == 200 and answer["key_id"] == key["id"] and answer["project_id"] == "p"
    assert answer["profile"] == "free" and answer["timeout"] == 60
    assert answer["headers"]["X-RateLimit-Limit"] == "10" and answer["headers"]["X-RateLimit-Remaining"] == "9"
    assert abs(int(answer["headers"]["X-RateLimit-Reset"]) - (time.time() + 60)) < 3


def test_authentication_failures_all_say_invalid_api_key(isolated):
    live, revoked, expired = create(), create(), create("--expires-in", "1s")
    cli("keys", "revoke", revoked["id"], "--force")
    time.sleep(1.1)
    tampered = live["key"][:10] + ("x" if live["key"][10] != "x" else "y") + live["key"][11:]
    r = cli("keys", "verify", "--json")
    assert r.exit_code == 3 and r.json() == {"allowed": False, "status": 401, "headers": {}, "error": {
        "type": "authentication_error", "message": "Missing Authorization header"}}
    for key in (revoked["key"], expired["key"], tampered, live["key"][:-3], "cc_" + "A" * 38,
                "not-a-key", "x" * 10_000, "ctrl\x01char"):
        answer = verify(key, code=3)
        assert answer["status"] == 401 and error(answer) == ("authentication_error", "Invalid API key")
    # The operator sees the real reason.
    assert cli("keys", "show", revoked["id"], "--json").json()["status"] == "revoked"
    assert cli("keys", "show", expired["id"], "--json").json()["status"] == "expired"


def test_a_tampered_key_is_rejected_before_any_lookup(isolated):
    key = create()
    conn = store.connect()
    statements = []
    for name in ("execute", "row", "rows"):  # every way the library reaches the database
        method = getattr(conn, name)
        setattr(conn, name, lambda *a, method=method: statements.append(a) or method(*a))
    tampered = key["key"][:-1] + ("0" if key["key"][-1] != "0" else "1")
    assert gate.decide(conn, tampered).status == 401
    assert statements == []
    assert gate.decide(conn, key["key"]).status == 200 and statements


@pytest.mark.parametrize("args, message", [
    (["--tool", "Bash"], "Tool 'Bash' is not allowed for this API key"),
    (["--agent", "planner"], "Agent 'planner' is not allowed for this API key"),
    (["--skill", "pdf"], "Skill 'pdf' is not allowed for this API key"),
    (["--cost", "0.11"], "Cost $0.11 is over the maximum of $0.10 per task for this API key"),
])
def test_permission_errors(args, message):
    key = create("--profile", "free")
    answer = verify(key["key"], *args, code=4)
    assert answer["status"] == 403 and error(answer) == ("permission_error", message)
    assert answer["headers"]["X-RateLimit-Remaining"] == "10"  # a refusal takes no slot


def test_a_block_always_wins():
    key = create()
    assert verify(key["key"], "--tool", "Bash", code=0)
    cli("keys", "permissions", key["id"], "--block-tool", "Bash", "--allow-tool", "Bash")
    assert error(verify(key["key"], "--tool", "Bash", code=4))[1] == "Tool 'Bash' is not allowed for this API key"
    assert verify(key["key"], "--tool", "Read", "--agent", "any", "--skill", "any", "--cost", "999", code=0)


def test_pro_agents_come_from_the_standard_list():
    key = create("--profile", "pro")
    verify(key["key"], "--agent", "code-reviewer", code=0)
    verify(key["key"], "--agent", "planner", code=4)
    cli("profiles", "standard-agents", "--add", "planner")
    verify(key["key"], "--agent", "planner", code=0)


def test_decision_order_permission_before_rate_limit():
    key = create("--profile", "free", "--rate-limit", "1")
    verify(key["key"], code=0)
    assert error(verify(key["key"], code=5))[0] == "rate_limit_error"
    assert error(verify(key["key"], "--tool", "Bash", code=4))[0] == "permission_error"


def test_rate_limit_counts_down_and_says_when_it_resets():
    key = create("--rate-limit", "3")
    remaining = [verify(key["key"], code=0)["headers"]["X-RateLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    answer = verify(key["key"], code=5)
    assert answer["status"] == 429 and answer["headers"]["X-RateLimit-Remaining"] == "0"
    kind, message = error(answer)
    assert kind == "rate_limit_error" and message.startswith("Rate limit exceeded. Reset in ")
    seconds = int(message.split("Reset in ")[1].split()[0])
    assert 55 <= seconds <= 60


def test_dry_run_takes_no_slot_and_leaves_last_used(isolated):
    key = create("--rate-limit", "2")
    for _ in range(5):
        assert verify(key["key"], "--dry-run", code=0)["headers"]["X-RateLimit-Remaining"] == "2"
    assert cli("keys", "show", key["id"], "--json").json()["last_used_at"] is None
    verify(key["key"], code=0)
    assert cli("keys", "show", key["id"], "--json").json()["last_used_at"] is not None
    verify(key["key"], code=0)
    assert verify(key["key"], "--dry-run", code=5)["status"] == 429


def _slots(db, lineage, *ages_s):
    """Requests made `ages_s` seconds ago, as the gate would have stored them."""
    conn = store.connect(db)
    now = time.time_ns() // 1_000_000
    with conn.transaction():
        for age in ages_s:
            conn.execute("INSERT INTO rate_slots VALUES (?, ?, 1) ON CONFLICT (lineage, at_ms) "
                         "DO UPDATE SET n = rate_slots.n + 1", (lineage, now - int(age * 1000)))
        conn.execute("INSERT INTO rate_windows VALUES (?, (SELECT sum(n) FROM rate_slots WHERE "
                     "lineage = ?)) ON CONFLICT (lineage) DO UPDATE SET used = excluded.used",
                     (lineage, lineage))
    conn.close()


def test_sliding_window_has_no_burst_at_the_edge(isolated):
    """Ten requests 59 s ago still count; ten from 61 s ago do not (and are pruned)."""
    key = create("--rate-limit", "10")
    _slots(isolated, key["id"], *[59] * 10)
    answer = verify(key["key"], code=5)
    assert int(error(answer)[1].split("Reset in ")[1].split()[0]) <= 2
    key2 = create("--rate-limit", "10")
    _slots(isolated, key2["id"], *[61] * 10)
    verify(key2["key"], code=0)
    assert sql("SELECT sum(n) FROM rate_slots WHERE lineage = ?", (key2["id"],)) == [(1,)]
    assert sql("SELECT used FROM rate_windows WHERE lineage = ?", (key2["id"],)) == [(1,)]


def test_unlimited_keys_have_no_rate_headers():
    key = create()
    answer = verify(key["key"], code=0)
    assert answer["headers"] == {} and answer["timeout"] is None


def test_key_from_stdin_keeps_it_out_of_argv():
    key = create("--profile", "free")
    r = proc("keys", "verify", "-", "--json", "--tool", "Read", input=key["key"] + "\n")
    assert r.exit_code == 0 and json.loads(r.stdout)["key_id"] == key["id"]
    r = proc("keys", "verify", "-", input="")
    assert r.exit_code == 3 and "Missing Authorization header" in r.stderr


def test_exit_codes_and_bodies_through_real_processes():
    key = create("--profile", "free", "--rate-limit", "1")
    for args, code in [([key["key"]], 0), ([key["key"]], 5), ([key["key"], "--tool", "Bash"], 4),
                       (["cc_nope"], 3), ([], 3)]:
        r = proc("keys", "verify", *args, "--json")
        assert r.exit_code == code, (args, r)
        assert json.loads(r.stdout)["status"] == {0: 200, 3: 401, 4: 403, 5: 429}[code]


def test_many_processes_get_exactly_the_limit():
    """80 verifications from 8 parallel streams of real processes, limit 25: exactly 25."""
    limit = 25
    key = create("--rate-limit", str(limit))

    def attempt(_):
        return proc("keys", "verify", "-", input=key["key"]).exit_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(attempt, range(80)))
    assert codes.count(0) == limit and codes.count(5) == 80 - limit, codes


def record(key, *args):
    r = cli("usage", "record", "--key", key, *args, "--json")
    assert r.exit_code == 0, r
    return r.json()


def test_monthly_budget_is_enforced_from_recorded_usage():
    key = create("--monthly-budget", "1.00")
    record(key["id"], "--cost", "0.79")
    assert verify(key["key"], code=0)["warnings"] == []
    record(key["id"], "--cost", "0.01")
    warning = verify(key["key"], code=0)["warnings"]
    assert len(warning) == 1 and "80% of the monthly budget" in warning[0]
    kind, message = error(verify(key["key"], "--cost", "0.25", code=5))
    assert kind == "rate_limit_error" and "Monthly budget exceeded" in message and "would cost $0.25" in message
    record(key["id"], "--cost", "0.20")
    kind, message = error(verify(key["key"], code=5))
    assert "$1.00 of $1.00 spent" in message and "Resets at " in message
    cli("keys", "permissions", key["id"], "--monthly-budget", "5")
    verify(key["key"], code=0)  # the budget changed; spend is recomputed, nothing stale


def test_last_months_spend_does_not_count():
    key = create("--monthly-budget", "1")
    record(key["id"], "--cost", "50", "--at", "2020-01-15T12:00:00Z")
    verify(key["key"], code=0)


def test_tokens_per_day_are_enforced():
    key = create()
    cli("keys", "permissions", key["id"], "--tokens-per-day", "1000")
    record(key["id"], "--input-tokens", "500", "--output-tokens", "300", "--cost", "0")
    assert "80% of the daily token limit" in verify(key["key"], code=0)["warnings"][0]
    record(key["id"], "--cache-read-tokens", "200", "--cost", "0")
    kind, message = error(verify(key["key"], code=5))
    assert "Daily token limit exceeded: 1,000 of 1,000" in message
    record(key["id"], "--input-tokens", "99999", "--at", "2020-01-01", "--cost", "0")


def test_rotation_does_not_reset_budget_or_rate():
    key = create("--monthly-budget", "1", "--rate-limit", "2")
    record(key["id"], "--cost", "1")
    new = cli("keys", "rotate", key["id"], "--grace", "1h", "--json").json()
    assert error(verify(new["key"], code=5))[1].startswith("Monthly budget exceeded")
    cli("keys", "permissions", new["id"], "--monthly-budget", "unlimited")
    cli("keys", "permissions", key["id"], "--monthly-budget", "unlimited")
    verify(key["key"], code=0)
    verify(new["key"], code=0)
    verify(key["key"], code=5)


def test_usage_dated_more_than_a_day_ahead_is_bad_input_and_spends_nothing():
    key = create("--monthly-budget", "10")
    r = cli("usage", "record", "--key", key["id"], "--cost", "50", "--at", "2099-03-05T00:00:00Z")
    assert r.exit_code == 2 and "more than a day in the future" in r.stderr
    verify(key["key"], code=0)


def test_a_rate_limit_of_zero_says_so():
    key = create("--rate-limit", "0")
    assert error(verify(key["key"], code=5))[1] == "Rate limit exceeded. This API key allows no requests."
