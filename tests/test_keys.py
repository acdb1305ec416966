"""The key lifecycle through the CLI: create, list, show (with what it uses now), reveal,
revoke, disable and enable, edit and expiry. (Rotation: test_rotation.py; references:
test_key_references.py; permissions: test_profiles.py.)"""
import time

import pytest

from claude_keys import KeyStore
from tests.helpers.run import cli, create, proc, verdict

CREATE_FIELDS = {"key", "id", "project_id", "name", "profile", "created_at", "expires_at",
                 "stored_in_keyring"}
LIST_FIELDS = {"id", "name", "project_id", "profile", "status", "hint", "created_at",
               "last_used_at", "expires_at", "owner", "metadata"}  # the last two: issue 17


def audit_actions():
    return [e["action"] for e in cli("audit", "--format", "json").json()]


def test_seed_commands_work_as_written(isolated):
    """Seed 001's key commands, exactly as the seed shows them."""
    r = cli("keys", "create", "--project-id", "my-app", "--profile", "enterprise")
    assert r.exit_code == 0, r
    secret = next(w for w in r.stdout.split() if w.startswith("cc_"))
    r = cli("keys", "create", "--project-id", "test", "--profile", "pro", "--rate-limit", "50")
    assert r.exit_code == 0, r
    r = cli("keys", "list")
    assert r.exit_code == 0 and "my-app" in r.stdout and "test" in r.stdout
    r = cli("keys", "permissions", secret)
    assert r.exit_code == 0 and "allowed tools" in r.stdout
    assert cli("keys", "permissions", secret, "--set-profile", "enterprise").exit_code == 0
    r = cli("keys", "permissions", secret, "--max-cost", "5.00", "--json")
    assert r.json()["max_cost_per_task"] == 5.0
    assert cli("keys", "revoke", secret, "--force").exit_code == 0
    assert cli("keys", "list", "--status", "all", "--json").json()[0]["status"] == "revoked"


def test_create_json_shape_and_defaults():
    key = create()
    assert set(key) == CREATE_FIELDS
    assert key["profile"] == "enterprise" and key["project_id"] == "p"
    assert key["created_at"].endswith("Z") and key["expires_at"] is None
    assert key["stored_in_keyring"] is True


def test_create_options_are_applied():
    key = create("--profile", "free", "--name", "ci bot", "--rate-limit", "7", "--max-cost", "0.25",
                 "--monthly-budget", "12.5", "--expires-in", "30d")
    perms = cli("keys", "permissions", key["id"], "--json").json()
    assert perms["rate_limit"] == 7 and perms["max_cost_per_task"] == 0.25
    assert perms["monthly_budget"] == 12.5 and perms["allowed_tools"] == ["Read", "Grep"]
    assert key["name"] == "ci bot" and key["expires_at"] is not None


def test_quiet_prints_only_the_secret():
    r = cli("keys", "create", "--project-id", "p", "-q")
    assert r.exit_code == 0 and r.stdout.startswith("cc_") and len(r.stdout.strip().split()) == 1


def test_list_filters():
    a = create("--project-id", "a", "--profile", "free")
    b = create("--project-id", "b", "--profile", "pro")
    create("--project-id", "b", "--expires-in", "0s")
    cli("keys", "revoke", b["id"], "--force")

    def ids(*args):
        r = cli("keys", "list", "--json", *args)
        assert r.exit_code == 0, r
        rows = r.json()
        assert all(set(row) == LIST_FIELDS for row in rows)
        return {row["id"] for row in rows}

    # By default the live keys (issue 20): not the revoked one, nor the expired one.
    assert ids() == {a["id"]} and ids("--status", "live") == {a["id"]} and len(ids("--status", "all")) == 3
    assert ids("--project-id", "a") == {a["id"]}
    assert ids("--profile", "pro", "--status", "all") == {b["id"]} and ids("--profile", "pro") == set()
    assert ids("--status", "revoked") == {b["id"]}
    assert ids("--status", "active") == {a["id"]}
    assert len(ids("--status", "expired")) == 1


def test_expired_key_shows_expired_without_any_job():
    key = create("--expires-in", "1s")
    assert cli("keys", "show", key["id"], "--json").json()["status"] == "active"
    time.sleep(1.1)
    assert cli("keys", "show", key["id"], "--json").json()["status"] == "expired"


@pytest.mark.parametrize("project", ['it\'s "quoted"', "ünïcødé 🗝️ 项目", "x" * 200, "a;DROP TABLE keys--", " spaced "])
def test_hostile_project_ids_round_trip(project):
    key = create("--project-id", project, "--name", project)
    assert key["project_id"] == project
    listed = cli("keys", "list", "--json", "--project-id", project).json()
    assert [k["project_id"] for k in listed] == [project] and listed[0]["name"] == project


def test_revoke_asks_and_no_answer_revokes_nothing():
    key = create()
    r = cli("keys", "revoke", key["id"], input="")
    assert r.exit_code == 1 and "nothing was changed" in r.stderr
    assert cli("keys", "show", key["id"], "--json").json()["status"] == "active"
    r = cli("keys", "revoke", key["id"], input="n\n")
    assert r.exit_code == 1
    r = cli("keys", "revoke", key["id"], "--reason", "left the team", input="y\n")
    assert r.exit_code == 0, r
    shown = cli("keys", "show", key["id"], "--json").json()
    assert shown["status"] == "revoked" and shown["revoked_reason"] == "left the team"
    assert cli("keys", "revoke", key["id"], "--force").exit_code == 0  # already revoked: no-op


def test_revoke_removes_the_secret_from_the_keyring(memory_keyring):
    key = create()
    assert memory_keyring.get_password("claude-api", key["id"]) == key["key"]
    assert cli("keys", "reveal", key["id"]).stdout.strip() == key["key"]
    cli("keys", "revoke", key["id"], "--force")
    assert memory_keyring.get_password("claude-api", key["id"]) is None
    r = cli("keys", "reveal", key["id"])
    assert r.exit_code == 1 and "is revoked" in r.stderr


@pytest.mark.postgres_only
def test_a_revocation_starts_at_once_whatever_the_admins_clock(pg, monkeypatch):
    """The gate reads the server's clock; a revocation stamped by an admin's clock that
    runs ahead would only start when the server caught up."""
    key = create()
    real_time, real_time_ns = time.time, time.time_ns  # this machine's clock, an hour ahead:
    monkeypatch.setattr(time, "time", lambda: real_time() + 3600)
    monkeypatch.setattr(time, "time_ns", lambda: real_time_ns() + 3600 * 10**9)
    assert cli("keys", "revoke", key["id"], "--yes").exit_code == 0
    assert proc("keys", "verify", key["key"]).exit_code == 3


def test_revocation_stays_final():
    key = create()
    cli("keys", "revoke", key["id"], "--force")
    for args in (["disable"], ["enable"], ["edit", "--name", "x"], ["edit", "--no-expiry"]):
        r = cli("keys", *args[:1], key["id"], *args[1:])
        assert r.exit_code == 1 and "revoked" in r.stderr, (args, r)
    assert verdict(key["key"])[0] == 3


def test_disable_and_enable_a_key():
    key = create("--name", "bot")
    r = proc("keys", "disable", key["id"], "--reason", "suspicious traffic")
    assert r.exit_code == 0 and "Disabled" in r.stderr
    code, answer = verdict(key["key"])
    assert code == 3 and answer["error"]["message"] == "Invalid API key"  # nothing more for the caller
    shown = cli("keys", "show", key["id"], "--json").json()
    assert shown["status"] == "disabled" and shown["disabled_reason"] == "suspicious traffic"
    assert [k["status"] for k in cli("keys", "list", "--status", "disabled", "--json").json()] == ["disabled"]
    assert cli("keys", "disable", key["id"]).stderr.startswith("Key")  # already: nothing changes
    assert KeyStore().check(key=key["key"]).status == 401
    assert cli("keys", "rotate", key["id"]).exit_code == 1  # a suspended key is not rotated
    r = cli("keys", "enable", key["id"])
    assert r.exit_code == 0 and "Enabled" in r.stderr
    assert verdict(key["key"])[0] == 0
    assert audit_actions()[-2:] == ["disable", "enable"]


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
    assert r.exit_code == 0 and verdict(key["key"])[0] == 3  # expired now
    assert cli("keys", "edit", key["id"]).exit_code == 2  # nothing to change
    assert cli("keys", "edit", key["id"], "--no-expiry", "--expires-in", "1d").exit_code == 2
    assert audit_actions().count("edit") == 4
    changes = [e["changes"] for e in cli("audit", "--format", "json").json() if e["action"] == "edit"]
    assert changes[0]["name"] == ["old-name", "webshop-prod"]


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
