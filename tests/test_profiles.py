"""Profiles and a key's effective permissions (profiles.py): the presets as the README's
table says, names in any case, shown without a store; the standard agents pro keys
follow; `keys permissions` overrides, blocks, and switching profile, which keeps a
key's own limits."""
import os

import pytest

from claude_keys import AuthManager, InvalidInput, PermissionManager
from tests.helpers.run import cli, create, one_error_line
from tests.helpers.store import store_is_absent


def test_profiles_match_the_contract_table():
    rows = {p["name"]: p for p in cli("profiles", "list", "--json").json()}
    assert rows["free"]["allowed_tools"] == ["Read", "Grep"] and rows["free"]["allowed_agents"] == []
    assert (rows["free"]["rate_limit"], rows["free"]["max_cost_per_task"], rows["free"]["timeout"]) == (10, 0.1, 60)
    assert rows["pro"]["allowed_tools"] == ["Read", "Grep", "Bash", "Edit", "Write"]
    assert rows["pro"]["allowed_agents"] == ["code-reviewer", "security-auditor"]
    assert (rows["pro"]["rate_limit"], rows["pro"]["max_cost_per_task"], rows["pro"]["timeout"]) == (100, 1.0, 300)
    assert rows["enterprise"]["allowed_tools"] == ["*"] and rows["enterprise"]["allowed_skills"] == ["*"]
    assert rows["enterprise"]["rate_limit"] is None and rows["enterprise"]["timeout"] is None


def test_profile_names_in_any_case():
    key = create("--profile", "Pro")
    assert key["profile"] == "pro"
    assert [k["id"] for k in cli("keys", "list", "--profile", "PRO", "--json").json()] == [key["id"]]
    r = cli("keys", "permissions", key["id"], "--set-profile", "Enterprise", "--json")
    assert r.exit_code == 0 and r.json()["profile"] == "enterprise", r
    assert cli("profiles", "show", "Free", "--json").json()["name"] == "free"
    one_error_line(cli("keys", "create", "--project-id", "p", "--profile", "gold"), 2, "gold")
    # The Python API, everywhere a profile is taken.
    secret = AuthManager().generate_key("p", profile="Free", rate_limit=None, use_keyring=False)
    perm = PermissionManager()
    assert perm.get_profile(secret)["profile"] == "free"
    assert perm.apply_default_profile(secret, "PRO")["profile"] == "pro"
    assert perm.set_profile(secret, {"profile": "Enterprise "})["profile"] == "enterprise"
    with pytest.raises(InvalidInput):
        perm.apply_default_profile(secret, "platinum")


@pytest.mark.new_store
def test_profiles_need_no_store(store_backend, tmp_path, monkeypatch):
    """The presets are the product's: shown without a store (and without making one),
    with the default standard agents and a note saying so."""
    if store_backend == "sqlite":
        monkeypatch.setenv("CLAUDE_API_DB", str(tmp_path / "typo" / "keys.db"))
    r = cli("profiles", "list", "--json")
    assert r.exit_code == 0 and "showing the default standard agents" in r.stderr
    assert r.json()[1]["allowed_agents"] == ["code-reviewer", "security-auditor"]
    assert store_is_absent(store_backend, os.environ["CLAUDE_API_DB"])


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
