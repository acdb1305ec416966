"""`keys verify` and the gate (gate.py): every outcome's JSON and exit code, authentication
failures that all look alike, tools, agents, skills and the cost cap, the decision
order, the key read from stdin, real processes. (Rate limits, budgets, concurrency
limits and project limits have files of their own.)"""
import json
import time

import pytest

from claude_keys import gate
from claude_keys import db as store
from tests.helpers.run import cli, create, error, proc, verify


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
