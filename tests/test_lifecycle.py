"""The lifecycle gaps of issue 12: reversible suspension, editing a key, retiring keys
shown as such, and switching profile without losing a key's own limits."""

from claude_keys import AuthManager, KeyStore, PermissionManager
from tests.helpers.run import cli, create, proc


def verify(secret, *args):
    r = cli("keys", "verify", secret, "--json", *args)
    return r.exit_code, r.json()


def audit_actions():
    return [e["action"] for e in cli("audit", "--format", "json").json()]


def test_disable_and_enable_a_key():
    key = create("--name", "bot")
    r = proc("keys", "disable", key["id"], "--reason", "suspicious traffic")
    assert r.exit_code == 0 and "Disabled" in r.stderr
    code, answer = verify(key["key"])
    assert code == 3 and answer["error"]["message"] == "Invalid API key"  # nothing more for the caller
    shown = cli("keys", "show", key["id"], "--json").json()
    assert shown["status"] == "disabled" and shown["disabled_reason"] == "suspicious traffic"
    assert [k["status"] for k in cli("keys", "list", "--status", "disabled", "--json").json()] == ["disabled"]
    assert cli("keys", "disable", key["id"]).stderr.startswith("Key")  # already: nothing changes
    assert KeyStore().check(key=key["key"]).status == 401
    assert cli("keys", "rotate", key["id"]).exit_code == 1  # a suspended key is not rotated
    r = cli("keys", "enable", key["id"])
    assert r.exit_code == 0 and "Enabled" in r.stderr
    assert verify(key["key"])[0] == 0
    assert audit_actions()[-2:] == ["disable", "enable"]


def test_disabling_the_current_key_suspends_the_old_secret_in_grace():
    old = create()
    new = cli("keys", "rotate", old["id"], "--grace", "1h", "--json").json()
    assert cli("keys", "disable", new["id"]).exit_code == 0
    assert verify(old["key"])[0] == 3 and verify(new["key"])[0] == 3
    assert cli("keys", "enable", old["id"]).exit_code == 0
    assert verify(old["key"])[0] == 0 and verify(new["key"])[0] == 0


def test_revocation_stays_final():
    key = create()
    cli("keys", "revoke", key["id"], "--force")
    for args in (["disable"], ["enable"], ["edit", "--name", "x"], ["edit", "--no-expiry"]):
        r = cli("keys", *args[:1], key["id"], *args[1:])
        assert r.exit_code == 1 and "revoked" in r.stderr, (args, r)
    assert verify(key["key"])[0] == 3


def test_edit_a_keys_name_and_expiry():
    key = create("--name", "old-name", "--expires-in", "1d")
    r = cli("keys", "edit", key["id"], "--name", "webshop-prod", "--json")
    assert r.exit_code == 0 and r.json()["name"] == "webshop-prod"
    r = cli("keys", "edit", key["id"], "--expires-in", "30d", "--json")
    expires = r.json()["expires_at"]
    assert expires > key["expires_at"]
    r = cli("keys", "edit", key["id"], "--no-expiry", "--json")
    assert r.json()["expires_at"] is None
    r = cli("keys", "edit", key["id"], "--expires-in", "0s")
    assert r.exit_code == 0 and verify(key["key"])[0] == 3  # expired now
    assert cli("keys", "edit", key["id"]).exit_code == 2  # nothing to change
    assert cli("keys", "edit", key["id"], "--no-expiry", "--expires-in", "1d").exit_code == 2
    assert audit_actions().count("edit") == 4
    changes = [e["changes"] for e in cli("audit", "--format", "json").json() if e["action"] == "edit"]
    assert changes[0]["name"] == ["old-name", "webshop-prod"]


def test_a_rotated_key_in_its_grace_period_is_retiring():
    key = create()
    new = cli("keys", "rotate", key["id"], "--grace", "2h", "--json").json()
    rows = {k["id"]: k for k in cli("keys", "list", "--json").json()}
    assert rows[key["id"]]["status"] == "retiring" and rows[new["id"]]["status"] == "active"
    assert rows[key["id"]]["expires_at"] == new["old_key_valid_until"]  # the time it stops
    assert [k["id"] for k in cli("keys", "list", "--status", "retiring", "--json").json()] == [key["id"]]
    assert [k["id"] for k in cli("keys", "list", "--status", "active", "--json").json()] == [new["id"]]
    table = cli("keys", "list").stdout
    assert "retiring" in table


def test_switching_profile_keeps_the_keys_own_limits():
    key = create("--profile", "free", "--monthly-budget", "20")
    cli("keys", "permissions", key["id"], "--block-tool", "Grep", "--allow-tool", "Bash")
    r = cli("keys", "permissions", key["id"], "--set-profile", "pro", "--json")
    p = r.json()
    assert p["profile"] == "pro" and p["monthly_budget"] == 20.0 and p["blocked_tools"] == ["Grep"]
    assert p["allowed_tools"] == ["Read", "Grep", "Bash", "Edit", "Write"] and p["rate_limit"] == 100
    assert p["kept"] == ["blocked_tools", "monthly_budget"]
    human = cli("keys", "permissions", key["id"], "--set-profile", "enterprise")
    assert "kept the key's own blocked tools, monthly budget" in human.stderr
    p = cli("keys", "permissions", key["id"], "--set-profile", "free", "--reset", "--json").json()
    assert p["monthly_budget"] is None and p["blocked_tools"] == [] and "kept" not in p


def test_the_seeds_python_flow_keeps_its_rate_limit():
    """Seed 001: generate_key(..., rate_limit=100), then apply_default_profile(key, "enterprise")."""
    auth, perm = AuthManager(), PermissionManager()
    api_key = auth.generate_key("my-project", rate_limit=100, profile="free", use_keyring=False)
    assert perm.apply_default_profile(api_key, "enterprise")["rate_limit"] == 100
    assert perm.get_profile(api_key)["allowed_tools"] == ["*"]


def test_in_flight_requests_are_shown_on_the_key():
    key = create("--max-concurrent", "2", "--rate-limit", "9")
    store = KeyStore()
    decision = store.check(key=key["key"], cost="0.05")
    shown = cli("keys", "show", key["id"], "--json").json()["current"]
    assert shown["in_flight"] == 1 and shown["reserved_usd"] == 0.05 and shown["requests_last_minute"] == 1
    human = cli("keys", "show", key["id"]).stdout
    assert "1 of 2 (reserving $0.05)" in human and "1 of 9" in human
    store.record_usage(key["id"], input_tokens=40, cost="0.04", request_id=decision.request_id)
    shown = cli("keys", "show", key["id"], "--json").json()["current"]
    assert (shown["in_flight"], shown["month_cost_usd"], shown["tokens_today"]) == (0, 0.04, 40)
