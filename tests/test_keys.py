"""The key lifecycle through the CLI: create, list, show, permissions, revoke, rotate, reveal."""
import time

import pytest

from tests.helpers.run import cli, create
from tests.helpers.store import dump

CREATE_FIELDS = {"key", "id", "project_id", "name", "profile", "created_at", "expires_at",
                 "stored_in_keyring"}
LIST_FIELDS = {"id", "name", "project_id", "profile", "status", "hint", "created_at",
               "last_used_at", "expires_at"}


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
    assert cli("keys", "list", "--json").json()[0]["status"] == "revoked"


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

    assert len(ids()) == 3 and len(ids("--status", "all")) == 3
    assert ids("--project-id", "a") == {a["id"]}
    assert ids("--profile", "pro") == {b["id"]}
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


def test_key_reference_by_secret_id_and_prefix():
    key = create()
    for ref in (key["key"], key["id"], key["id"][:4], key["id"][:8]):
        r = cli("keys", "show", ref, "--json")
        assert r.exit_code == 0 and r.json()["id"] == key["id"], ref


def test_bad_key_references_fail_without_guessing_or_echoing_secrets():
    key = create()
    tampered = key["key"][:-1] + ("A" if key["key"][-1] != "A" else "B")
    for ref, expected in [("", "empty"), ("ffffffffffff", "no key"), ("zzzz", "no key"),
                          (key["id"][:2], "at least 4"), (tampered, "checksum")]:
        r = cli("keys", "show", ref)
        assert r.exit_code == 1, (ref, r)
        assert expected in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert key["key"] not in r.stderr and (tampered not in r.stderr)


def test_ambiguous_prefix_is_an_error(monkeypatch):
    import claude_keys.keys as keys_lib

    ids = iter(["abcd00000001", "abcd00000002"])
    monkeypatch.setattr(keys_lib, "_new_id", lambda conn: next(ids))
    create()
    create()
    r = cli("keys", "show", "abcd")
    assert r.exit_code == 1 and "more than one key" in r.stderr
    assert cli("keys", "show", "abcd00000002").exit_code == 0


def test_permissions_overrides_and_reprofiling():
    key = create("--profile", "free")
    kid = key["id"]

    def perms(*args):
        r = cli("keys", "permissions", kid, "--json", *args)
        assert r.exit_code == 0, r
        return r.json()

    p = perms("--allow-tool", "Bash", "--block-tool", "Grep", "--rate-limit", "5", "--timeout", "2m")
    assert p["allowed_tools"] == ["Read", "Grep", "Bash"] and p["blocked_tools"] == ["Grep"]
    assert p["rate_limit"] == 5 and p["timeout"] == 120
    p = perms("--disallow-tool", "Read", "--unblock-tool", "Grep")
    assert p["allowed_tools"] == ["Grep", "Bash"] and p["blocked_tools"] == []
    p = perms("--rate-limit", "unlimited", "--tokens-per-day", "1000", "--monthly-budget", "3")
    assert p["rate_limit"] is None and p["tokens_per_day"] == 1000 and p["monthly_budget"] == 3.0
    p = perms("--rate-limit", "default")
    assert p["rate_limit"] == 10
    p = perms("--set-profile", "pro", "--keep-overrides")
    assert p["profile"] == "pro" and p["tokens_per_day"] == 1000 and p["allowed_tools"] == ["Grep", "Bash"]
    # Switching profile takes the preset's allow-lists and keeps the key's own limits and blocks.
    p = perms("--set-profile", "pro")
    assert p["allowed_tools"] == ["Read", "Grep", "Bash", "Edit", "Write"]
    assert p["allowed_agents"] == ["code-reviewer", "security-auditor"] and p["rate_limit"] == 100
    assert (p["tokens_per_day"], p["monthly_budget"], p["timeout"]) == (1000, 3.0, 120)
    assert p["kept"] == ["tokens_per_day", "monthly_budget", "timeout"]
    p = perms("--set-profile", "pro", "--reset")
    assert (p["tokens_per_day"], p["monthly_budget"], p["timeout"]) == (None, None, 300) and "kept" not in p
    p = perms("--allow-agent", "planner", "--allow-skill", "pdf")
    assert p["allowed_agents"] == ["code-reviewer", "security-auditor", "planner"]
    assert p["allowed_skills"] == ["pdf"]
    p = perms("--disallow-agent", "code-reviewer")
    assert p["allowed_agents"] == ["security-auditor", "planner"]
    p = perms("--reset")
    assert p == perms()  # idempotent
    assert p["allowed_skills"] == [] and p["allowed_agents"] == ["code-reviewer", "security-auditor"]


def test_pro_keys_follow_the_standard_agents_list():
    key = create("--profile", "pro")
    r = cli("profiles", "standard-agents", "--add", "planner", "--remove", "code-reviewer", "--json")
    assert r.exit_code == 0 and [a["agent"] for a in r.json()] == ["security-auditor", "planner"]
    perms = cli("keys", "permissions", key["id"], "--json").json()
    assert perms["allowed_agents"] == ["security-auditor", "planner"]
    assert cli("profiles", "show", "pro", "--json").json()["allowed_agents"] == ["security-auditor", "planner"]


def test_cannot_take_one_tool_out_of_all():
    key = create()
    r = cli("keys", "permissions", key["id"], "--disallow-tool", "Bash")
    assert r.exit_code == 2 and "--block-tool Bash" in r.stderr
    p = cli("keys", "permissions", key["id"], "--block-tool", "Bash", "--json").json()
    assert p["allowed_tools"] == ["*"] and p["blocked_tools"] == ["Bash"]


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


def test_rotate_keeps_settings_and_links_lineage(memory_keyring):
    key = create("--profile", "free", "--name", "bot", "--expires-in", "30d", "--rate-limit", "3")
    cli("keys", "permissions", key["id"], "--block-tool", "Grep")
    r = cli("keys", "rotate", key["id"], "--grace", "1h", "--json")
    assert r.exit_code == 0, r
    new = r.json()
    assert new["key"] != key["key"] and new["rotated_from"] == key["id"]
    assert (new["project_id"], new["name"], new["profile"], new["expires_at"]) == (
        key["project_id"], key["name"], key["profile"], key["expires_at"])
    assert cli("keys", "permissions", new["id"], "--json").json() == {
        **cli("keys", "permissions", key["id"], "--json").json(), "id": new["id"]}
    old = cli("keys", "show", key["id"], "--json").json()
    assert old["status"] == "retiring" and old["rotated_to"] == new["id"] and old["revoked_at"] is None
    assert old["expires_at"] == new["old_key_valid_until"]  # when its grace ends
    assert cli("keys", "show", new["id"], "--json").json()["rotated_from"] == key["id"]
    assert memory_keyring.get_password("claude-api", key["id"]) is None
    assert memory_keyring.get_password("claude-api", new["id"]) == new["key"]
    r = cli("keys", "rotate", key["id"])
    assert r.exit_code == 1 and "successor" in r.stderr


def test_rotate_without_grace_ends_the_old_key_now():
    key = create()
    new = cli("keys", "rotate", key["id"], "-q")
    assert new.exit_code == 0 and new.stdout.startswith("cc_")
    assert cli("keys", "show", key["id"], "--json").json()["status"] == "revoked"
    assert cli("keys", "rotate", key["id"]).exit_code == 1


def test_rotate_grace_never_outlives_expiry():
    key = create("--expires-in", "1h")
    new = cli("keys", "rotate", key["id"], "--grace", "2d", "--json").json()
    assert new["old_key_valid_until"] == key["expires_at"]


def test_the_secret_is_never_stored_or_listed(isolated, store_backend):
    keys = [create(), create("--profile", "free"), create("--no-keyring")]
    outputs = []
    for fmt in ("table", "json", "csv", "tsv", "github", "grid"):
        outputs.append(cli("keys", "list", "--format", fmt).stdout)
        for k in keys:
            outputs.append(cli("keys", "show", k["id"], "--format", fmt).stdout)
            outputs.append(cli("keys", "permissions", k["id"], "--format", fmt).stdout)
    outputs.append(cli("db", "check").stdout)
    blob = b"".join(p.read_bytes() for p in isolated.parent.iterdir()) if store_backend == "sqlite" else b""
    for k in keys:
        assert k["key"].encode() not in blob
        assert all(k["key"] not in out for out in outputs)
        assert all(k["key"][3:20] not in out for out in outputs)
    stored = dump()
    assert all(k["key"] not in stored for k in keys)
