"""`keys rotate` and lineages: a new secret that keeps the key's settings, an old secret
that retires after a grace period (never past its expiry) and meanwhile follows its
lineage: its permissions, its limits, its revocation or suspension."""
from tests.helpers.run import cli, create, verdict


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
    new = cli("keys", "rotate", key["id"], "-q", "-y")  # no grace: asks first (issue 20)
    assert new.exit_code == 0 and new.stdout.startswith("cc_")
    assert cli("keys", "show", key["id"], "--json").json()["status"] == "revoked"
    assert cli("keys", "rotate", key["id"]).exit_code == 1


def test_rotate_grace_never_outlives_expiry():
    key = create("--expires-in", "1h")
    new = cli("keys", "rotate", key["id"], "--grace", "2d", "--json").json()
    assert new["old_key_valid_until"] == key["expires_at"]


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


def test_disabling_the_current_key_suspends_the_old_secret_in_grace():
    old = create()
    new = cli("keys", "rotate", old["id"], "--grace", "1h", "--json").json()
    assert cli("keys", "disable", new["id"], "-y").exit_code == 0  # (it asks: the old secret too)
    assert verdict(old["key"])[0] == 3 and verdict(new["key"])[0] == 3
    assert cli("keys", "enable", old["id"]).exit_code == 0
    assert verdict(old["key"])[0] == 0 and verdict(new["key"])[0] == 0


def test_during_a_grace_period_the_old_secret_follows_the_lineage():
    old = create("--profile", "pro")
    new = cli("keys", "rotate", old["id"], "--grace", "1h", "--json").json()
    r = cli("keys", "permissions", new["id"], "--block-tool", "Bash", "--rate-limit", "2", "--monthly-budget", "0")
    assert r.exit_code == 0
    code, answer = verdict(old["key"], "--tool", "Bash")
    assert code == 4 and answer["error"]["message"] == "Tool 'Bash' is not allowed for this API key"
    code, answer = verdict(old["key"])
    assert code == 5 and answer["error"]["message"].startswith("Monthly budget exceeded: $0.00 of $0.00")
    cli("keys", "permissions", new["id"], "--monthly-budget", "unlimited")
    assert [verdict(s)[0] for s in (old["key"], new["key"], old["key"])] == [0, 0, 5]  # one window of 2
    assert cli("keys", "permissions", old["id"], "--json").json()["rate_limit"] == 2


def test_revoking_the_current_key_stops_the_old_secret_too():
    old = create()
    new = cli("keys", "rotate", old["id"], "--grace", "1h", "--json").json()
    r = cli("keys", "revoke", new["id"], "--force")
    assert r.exit_code == 0 and old["id"] in r.stderr and "grace" in r.stderr
    assert verdict(old["key"])[0] == 3 and verdict(new["key"])[0] == 3


def test_revoking_an_old_secret_in_grace_just_ends_its_grace():
    old = create()
    new = cli("keys", "rotate", old["id"], "--grace", "1h", "--json").json()
    r = cli("keys", "revoke", old["id"], "--force")
    assert r.exit_code == 0 and "Ended the grace period" in r.stderr
    assert verdict(old["key"])[0] == 3 and verdict(new["key"])[0] == 0
    assert [k["status"] for k in cli("keys", "list", "--status", "all", "--json").json()] == ["revoked", "active"]
