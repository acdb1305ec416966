"""Projects (projects.py, `projects list/show/set`): limits all a project's keys share (one
rate window, one budget), each refusal saying it is the project's, and the Python API."""
import pytest

from claude_keys import AuthManager, InvalidInput, KeyStore, PermissionManager
from tests.helpers.run import cli, create, verdict
from tests.helpers.store import NANOS, sql
from tests.helpers.workers import spawn_pool


def test_project_limits_each_refuse_and_say_so():
    key = create("--project-id", "p")
    assert cli("projects", "set", "p", "--tokens-per-day", "100").exit_code == 0
    cli("usage", "record", "--key", key["id"], "--input-tokens", "100", "--cost", "0")
    code, answer = verdict(key["key"])
    assert code == 5 and answer["error"]["message"].startswith("Project daily token limit exceeded: 100 of 100")
    assert cli("projects", "set", "p", "--tokens-per-day", "unlimited", "--total-budget", "0.5").exit_code == 0
    cli("usage", "record", "--key", key["id"], "--input-tokens", "1", "--cost", "0.5")
    code, answer = verdict(key["key"])
    assert code == 5 and answer["error"]["message"].startswith("Project total budget exceeded: $0.50 of $0.50")
    assert cli("projects", "set", "p", "--total-budget", "unlimited", "--max-concurrent", "0").exit_code == 0
    code, answer = verdict(key["key"])
    assert code == 5 and "Project concurrency limit reached: 0 of 0 requests" in answer["error"]["message"]
    changes = [e for e in cli("audit", "--format", "json").json() if e["action"] == "project"]
    assert len(changes) == 3  # every change of a project's limits is audited
    assert cli("projects", "show", "nope").exit_code == 1
    assert cli("projects", "set", "p").exit_code == 2
    assert cli("projects", "set", "p", "--rate-limit", "-3").exit_code == 2
    rows = cli("projects", "list", "--json").json()
    assert [r["project_id"] for r in rows] == ["p"] and set(rows[0]) == {
        "project_id", "keys", "active_keys", "month_cost_usd", "total_cost_usd", "in_flight",
        "monthly_budget", "total_budget", "rate_limit", "tokens_per_day", "max_concurrent", "hold",
        "retiring_keys", "daily_budget", "weekly_budget", "alert_at", "input_tokens_per_minute",
        "output_tokens_per_minute", "allowed_models", "blocked_models"}


def test_the_python_api_reads_and_sets_project_limits():
    perm = PermissionManager()
    AuthManager().generate_key("api-project", use_keyring=False)
    row = perm.set_project("api-project", {"monthly_budget": 10, "rate_limit": 60, "max_concurrent": None})
    assert (row["monthly_budget"], row["rate_limit"], row["max_concurrent"], row["keys"]) == (10.0, 60, None, 1)
    assert perm.get_project("api-project") == row
    with pytest.raises(InvalidInput):
        perm.set_project("api-project", {"monthly_budgett": 1})


def _verify_many(args):
    db, secrets, rounds = args
    keys = KeyStore(db)
    return sum(keys.check(key=secrets[i % len(secrets)]).allowed for i in range(rounds))


def test_a_project_rate_limit_is_one_window_for_all_its_keys(isolated):
    secrets = [create("--project-id", "shop")["key"] for _ in range(3)]
    other = create("--project-id", "elsewhere")["key"]
    r = cli("projects", "set", "shop", "--rate-limit", "20", "--json")
    assert r.exit_code == 0 and r.json()["rate_limit"] == 20
    with spawn_pool(6) as pool:
        allowed = pool.map(_verify_many, [(str(isolated), secrets, 10)] * 6)
    assert sum(allowed) == 20
    code, answer = verdict(secrets[0])
    assert code == 5 and answer["error"]["message"].startswith("Project rate limit exceeded. Reset in")
    assert verdict(other)[0] == 0  # another project is not affected


def _spend_in_project(args):
    db, secrets, rounds = args
    keys = KeyStore(db)
    admitted = 0
    for i in range(rounds):
        decision = keys.check(key=secrets[i % len(secrets)], cost="0.25")
        if decision.allowed:
            keys.record_usage(decision.key_id, cost="0.25", request_id=decision.request_id)
            admitted += 1
    return admitted


def test_a_project_budget_is_shared_by_its_keys_in_many_processes(isolated):
    secrets = [create("--project-id", "shop")["key"] for _ in range(3)]
    assert cli("projects", "set", "shop", "--monthly-budget", "2", "--max-concurrent", "unlimited").exit_code == 0
    with spawn_pool(8) as pool:
        admitted = pool.map(_spend_in_project, [(str(isolated), secrets, 4)] * 8)
    assert sum(admitted) == 8
    assert sql("SELECT sum(cost_nanos) FROM usage") == [(2 * NANOS,)]
    code, answer = verdict(secrets[1], "--cost", "0.01")
    assert code == 5 and answer["error"]["message"].startswith(
        "Project monthly budget exceeded: $2.00 of $2.00 spent this month")
    shown = cli("projects", "show", "shop", "--json").json()
    assert (shown["keys"], shown["active_keys"], shown["month_cost_usd"], shown["monthly_budget"]) == (3, 3, 2.0, 2.0)


def test_retiring_keys_are_counted_apart_from_active_ones():
    """Issue 20: `projects list` counted a rotated key in its grace as active."""
    old = create("--project-id", "r")
    create("--project-id", "r")
    assert cli("keys", "rotate", old["id"], "--grace", "1h", "-q").exit_code == 0
    row = cli("projects", "show", "r", "--json").json()
    assert (row["keys"], row["active_keys"], row["retiring_keys"]) == (3, 2, 1)
    assert [(r["active_keys"], r["retiring_keys"]) for r in cli("projects", "list", "--json").json()] == [(2, 1)]
    header, line = cli("projects", "list", "--format", "plain").stdout.splitlines()[:2]
    assert header.split()[:4] == ["project", "keys", "active", "retiring"] and line.split()[:4] == ["r", "3", "2", "1"]
    csv = cli("projects", "list", "--format", "csv").stdout.splitlines()
    assert ",hold,retiring_keys,daily_budget,weekly_budget,alert_at," in csv[0]  # added last: columns keep their places
    assert csv[1].split(",")[12] == "1"
