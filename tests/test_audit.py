"""The audit trail: every change recorded with time, user and before/after; never a secret."""
import os
import pwd

from tests.helpers.run import cli, create, proc
from tests.helpers.store import dump

ME = pwd.getpwuid(os.getuid()).pw_name


def audit(*args):
    r = cli("audit", "--json", *args)
    assert r.exit_code == 0, r
    return r.json()


def test_every_kind_of_change_is_recorded():
    key = create("--profile", "free")
    cli("keys", "permissions", key["id"], "--allow-tool", "Bash", "--rate-limit", "5")
    new = cli("keys", "rotate", key["id"], "--grace", "1h", "--json").json()
    cli("keys", "revoke", new["id"], "--force", "--reason", "left")
    cli("profiles", "standard-agents", "--add", "planner")
    cli("keys", "import", "--project-id", "legacy", input="legacy-token-0123456789\n")
    entries = audit()
    # Revoking the current key of a lineage also stops the old secret in its grace period.
    assert [e["action"] for e in entries] == ["create", "permissions", "rotate", "create", "revoke", "revoke",
                                              "standard-agents", "import"]
    assert [e["key_id"] for e in entries[4:6]] == [key["id"], new["id"]]
    assert all(e["actor"] == ME and e["at"].endswith("Z") for e in entries)
    permissions = entries[1]["changes"]
    assert permissions["rate_limit"] == [None, 5]
    assert permissions["allowed_tools"] == [None, ["Read", "Grep", "Bash"]]  # a list, not its JSON
    assert entries[2]["changes"]["rotated_to"] == [None, new["id"]]
    assert entries[4]["changes"]["revoked_reason"] == [f"rotated to {new['id']}", f"rotated to {new['id']}; left"]
    assert entries[5]["changes"]["revoked_reason"] == [None, "left"]
    assert entries[6]["changes"]["standard_agents"][1][-1] == "planner"
    assert entries[0]["changes"]["created_at"][1].endswith("Z")  # times read as times


def test_filters():
    create()
    b = create()
    cli("keys", "revoke", b["id"], "--force")
    assert [e["action"] for e in audit("--key", b["id"])] == ["create", "revoke"]
    assert audit("--since", "2999-01-01") == []
    assert len(audit("--until", "2999-01-01")) == 3
    assert cli("audit", "--key", "ffffffffffff").exit_code == 1
    assert cli("audit", "--since", "yesterday").exit_code == 2


def test_the_trail_never_holds_a_secret(isolated):
    keys = [create(), create("--no-keyring")]
    cli("keys", "rotate", keys[0]["id"], "-y")
    out = "".join(cli("audit", "--format", f).stdout for f in ("json", "table", "csv"))
    stored = dump()
    for key in keys:
        assert key["key"] not in out and key["key"] not in stored
    assert "digest" not in out


def test_changes_read_as_the_cli_names_them():
    """Not storage names and units (max_cost_nanos: 5000000000, in_keyring: 0, JSON in
    strings): the names `keys permissions --json` uses, dollars, lists, yes/no."""
    key = create("--no-keyring", "--max-cost", "5")
    cli("keys", "permissions", key["id"], "--max-cost", "unlimited", "--monthly-budget", "12.5",
        "--block-tool", "Bash")
    created, changed = audit()
    assert created["changes"]["max_cost_per_task"] == [None, 5.0]
    assert created["changes"]["stored_in_keyring"] == [None, False]
    assert not any(k.endswith("_nanos") or k == "in_keyring" for e in (created, changed) for k in e["changes"])
    assert changed["changes"]["max_cost_per_task"] == [5.0, "unlimited"]
    assert changed["changes"]["monthly_budget"] == [None, 12.5]
    assert changed["changes"]["blocked_tools"] == [None, ["Bash"]]
    table = cli("audit", "--format", "plain").stdout
    assert "max_cost_per_task: - -> $5.00" in table and "monthly_budget: - -> $12.50" in table
    assert "stored_in_keyring: - -> no" in table and "blocked_tools: - -> Bash" in table
    assert "nanos" not in table and "[" not in table


def test_the_actor_is_the_process_user_not_the_environment():
    r = proc("keys", "create", "--project-id", "p", "--json", env={"USER": "mallory", "LOGNAME": "mallory"})
    assert r.exit_code == 0, r
    assert [e["actor"] for e in audit()] == [ME]


def test_a_filter_that_matches_nothing_says_so():
    key = create()
    r = cli("audit", "--key", key["key"], "--since", "2020-01-01", "--until", "2020-01-02")
    assert r.exit_code == 0 and f"no change matches --key {key['id']} --since 2020-01-01" in r.stdout + r.stderr, r
    assert key["key"] not in r.stdout + r.stderr
