"""Shell completion: the committed scripts are what click generates, and KEY arguments
and profile names complete from live data."""
from pathlib import Path

import pytest

from tests.helpers.run import cli, create, proc

COMPLETIONS = Path(__file__).parent.parent / "completions"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
@pytest.mark.one_backend
def test_committed_scripts_are_fresh(shell):
    r = proc(env={"_CLAUDE_API_COMPLETE": f"{shell}_source"})
    assert r.exit_code == 0 and r.stdout
    committed = (COMPLETIONS / f"claude-api.{shell}").read_text()
    assert r.stdout == committed, (
        f"completions/claude-api.{shell} is stale: regenerate it with "
        f"_CLAUDE_API_COMPLETE={shell}_source claude-api > completions/claude-api.{shell}"
    )


@pytest.mark.one_backend
@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_command_prints_the_committed_script(shell):
    """A pip-installed user has no completions/ folder: `claude-api completion SHELL`."""
    r = proc("completion", shell)
    assert r.exit_code == 0 and r.stdout == (COMPLETIONS / f"claude-api.{shell}").read_text()
    assert proc("completion", "tcsh").exit_code == 2


def complete(line: str) -> list[str]:
    words = line.split(" ")
    r = proc(env={"_CLAUDE_API_COMPLETE": "bash_complete", "COMP_WORDS": line,
                  "COMP_CWORD": str(len(words) - 1)})
    assert r.exit_code == 0, r
    return [entry.split(",", 1)[1] for entry in r.stdout.splitlines()]


def test_key_references_complete_from_the_store():
    a, b = create(), create()
    assert set(complete("claude-api keys show ")) == {a["id"], b["id"]}
    assert complete(f"claude-api keys revoke {a['id'][:5]}") == [a["id"]]


def test_profiles_and_commands_complete():
    assert complete("claude-api keys create --profile ") == ["free", "pro", "enterprise"]
    assert {"create", "list", "show", "permissions", "revoke", "rotate", "reveal"} <= set(
        complete("claude-api keys "))
    assert "json" in complete("claude-api keys list --format ")


def test_completion_offers_only_live_keys_where_only_they_make_sense():
    live, revoked, expired = create(), create(), create("--expires-in", "0s")
    cli("keys", "revoke", revoked["id"], "--force")
    for command in ("rotate", "revoke", "reveal"):
        assert set(complete(f"claude-api keys {command} ")) == {live["id"]}, command
    assert set(complete("claude-api keys show ")) == {live["id"], revoked["id"], expired["id"]}
