"""An operator's first hour, round two (issue 20): the messages a newcomer meets and
the conventions brought from gh, aws and ccusage. One test per message or convention,
each through the CLI (CliRunner) or the installed `claude-api`, on both backends where
the store is touched."""
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.claude_logs import write_logs
from tests.helpers.run import EXE, cli, create, one_error_line, proc

CHECKOUT = Path(__file__).resolve().parent.parent


# -- usage import --key after a plain import ------------------------------------------

def test_import_with_a_key_after_a_plain_import_says_how_to_attribute(tmp_path):
    logs = tmp_path / "claude"
    write_logs(logs, projects=2, sessions=1, responses=4, span_hours=2)
    assert cli("usage", "import", logs).exit_code == 0
    laptop = create("--project-id", "laptop", "--name", "laptop")
    again = proc("usage", "import", logs, "--key", "laptop")
    assert again.exit_code == 0, again
    warning = next(line for line in again.stderr.splitlines() if line.startswith("Warning:"))
    stored = sum(r["requests"] for r in cli("usage", "by-key", "--period", "all", "--json").json())
    assert f"{stored} requests of these logs are already stored without a key" in warning, warning
    assert f"--key {laptop['id']} applies only to requests not stored yet" in warning, warning
    # The commands it gives do what it says: delete, then import again with --key --full.
    commands = re.findall(r"(claude-api usage delete [^;]*);", warning)
    assert len(commands) == 2, warning
    for command in commands:
        done = proc(*shlex.split(command)[1:], "-y")
        assert done.exit_code == 0, done
    final = warning.rpartition("then ")[2]
    assert proc(*shlex.split(final)[1:]).exit_code == 0
    rows = cli("usage", "by-key", "--period", "all", "--json").json()
    assert [(r["key_id"], r["requests"]) for r in rows] == [(laptop["id"], stored)], rows
    # Nothing left without a key: no warning the next time.
    assert "Warning" not in proc("usage", "import", logs, "--key", "laptop").stderr


def test_import_with_a_key_of_new_logs_says_nothing_more(tmp_path):
    logs = tmp_path / "claude"
    write_logs(logs, projects=1, sessions=1, responses=3, span_hours=1)
    create("--project-id", "laptop", "--name", "laptop")
    done = proc("usage", "import", logs, "--key", "laptop")
    assert done.exit_code == 0 and "Warning" not in done.stderr, done


# -- keys verify --json when the store cannot answer ----------------------------------

@pytest.mark.one_backend
@pytest.mark.parametrize("store", ["missing.db", "postgresql://nobody@127.0.0.1:1/nothing"])
def test_verify_json_prints_the_503_body_whatever_the_outcome(tmp_path, store):
    target = str(tmp_path / store) if store.endswith(".db") else store
    done = proc("--db", target, "keys", "verify", "cc_" + "a" * 40, "--json", env={"CLAUDE_API_TIMEOUT": "3"})
    body = json.loads(done.stdout)
    assert body["allowed"] is False and body["status"] == 503 and body["error"]["type"] == "api_error", done
    line = one_error_line(done, 1)
    if store.startswith("postgresql"):  # libpq's two sentences, punctuated
        assert "Connection refused. Is the server running" in line, line


# -- help -----------------------------------------------------------------------------

@pytest.mark.one_backend
def test_first_commands_end_their_help_with_examples_and_groups_never_cut_a_summary():
    for command in (("keys", "create"), ("keys", "verify"), ("keys", "permissions"), ("usage", "import"),
                    ("usage", "summary"), ("audit",)):
        text = cli(*command, "--help").stdout
        examples = text.rpartition("Examples:")[2]
        assert 2 <= examples.count(f"claude-api {' '.join(command)}") <= 4, text
    for group in ((), ("keys",), ("usage",), ("projects",), ("db",)):
        text = proc(*group, "--help", env={"COLUMNS": "80"}).stdout
        assert not re.search(r"\w\.\.\.$", text, re.M), text  # Click's cut: "…the standard..."


@pytest.mark.one_backend
def test_help_environment_lists_every_variable_the_code_reads_and_so_does_the_readme():
    read = set()
    for path in (CHECKOUT / "claude_keys").rglob("*.py"):
        read |= set(re.findall(r"(?<![_A-Z])CLAUDE_API_[A-Z0-9_]+", path.read_text()))  # (not click's _…_COMPLETE)
    assert {"CLAUDE_API_DB", "CLAUDE_API_TIMEOUT", "CLAUDE_API_NO_KEYRING", "CLAUDE_API_PRICES",
            "CLAUDE_API_DEBUG"} <= read
    listed = proc("help", "environment")
    assert listed.exit_code == 0, listed
    readme = (CHECKOUT / "README.md").read_text().partition("## Environment")[2].partition("\n## ")[0]
    for name in read | {"CLAUDE_CONFIG_DIR", "NO_COLOR"}:
        assert re.search(rf"^  {name} ", listed.stdout, re.M), (name, listed.stdout)
        assert f"`{name}`" in readme, name
    assert "Usage: claude-api keys list" in proc("help", "keys", "list").stdout
    one_error_line(proc("help", "nosuch"), 2, "nosuch", "help environment")


# -- keys list and audit: live keys, --limit, filters ---------------------------------

def test_keys_list_shows_live_keys_unless_status_all():
    active, revoked, expired = create(), create(), create("--expires-in", "0s")
    disabled = create()
    assert cli("keys", "revoke", revoked["id"], "-y").exit_code == 0
    assert cli("keys", "disable", disabled["id"]).exit_code == 0
    ids = [k["id"] for k in cli("keys", "list", "--json").json()]
    assert ids == [active["id"], disabled["id"]]
    every = {k["id"]: k["status"] for k in cli("keys", "list", "--status", "all", "--json").json()}
    assert every == {active["id"]: "active", revoked["id"]: "revoked", expired["id"]: "expired",
                     disabled["id"]: "disabled"}
    r = cli("keys", "list", "--project-id", "nosuch")
    assert r.stdout == "" and "no key matches --project-id nosuch" in r.stderr and "--status all" in r.stderr


def test_limit_keeps_the_latest_and_says_how_many_more():
    made = [create("--name", f"k{i}")["id"] for i in range(5)]
    r = cli("keys", "list", "--limit", "2", "--json")
    assert [k["id"] for k in r.json()] == made[-2:]
    assert r.stderr.strip() == "(showing the latest 2 of 5 keys; --limit 0 shows all)"
    assert len(cli("keys", "list", "--limit", "0", "--json").json()) == 5
    assert cli("keys", "list", "--json").stderr == ""  # under the default 50: nothing said
    r = cli("audit", "--limit", "3", "--json")
    assert [e["key_id"] for e in r.json()] == made[-3:] and "of 5 changes" in r.stderr
    one_error_line(cli("keys", "list", "--limit", "-1"), 2, "--limit")


def test_audit_filters_by_action_project_and_time():
    a = create("--project-id", "webshop")
    b = create("--project-id", "mobile")
    assert cli("keys", "revoke", a["id"], "-y").exit_code == 0
    assert cli("keys", "revoke", b["id"], "-y").exit_code == 0
    assert cli("projects", "set", "webshop", "--monthly-budget", "5").exit_code == 0
    assert cli("projects", "set", "mobile", "--monthly-budget", "5").exit_code == 0
    revokes = cli("audit", "--action", "revoke", "--json").json()
    assert [(e["action"], e["key_id"]) for e in revokes] == [("revoke", a["id"]), ("revoke", b["id"])]
    webshop = cli("audit", "--project-id", "webshop", "--json").json()
    assert [(e["action"], e["key_id"], e["project_id"]) for e in webshop] == [
        ("create", a["id"], None), ("revoke", a["id"], None), ("project", None, "webshop")]
    assert cli("audit", "--project-id", "webshop", "--action", "revoke", "--since", "1h", "--json").json() == [
        revokes[0]]
    assert cli("audit", "--since", "2099-01-01", "--json").json() == []
    r = cli("audit", "--action", "rotate", "--project-id", "webshop")
    assert r.exit_code == 0 and "no change matches --action rotate --project-id webshop" in r.stderr


def test_human_tables_show_times_relative_and_data_formats_exact():
    key = create("--expires-in", "5d")
    assert cli("keys", "verify", key["key"]).exit_code == 0
    table = cli("keys", "list", "--format", "plain").stdout
    assert "just now" in table and re.search(r"in (4|5) days", table), table
    listed = cli("keys", "list", "--json").json()[0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", listed["expires_at"])
    csv = cli("keys", "list", "--format", "csv").stdout
    assert listed["expires_at"] in csv and "days" not in csv
    assert "just now" in cli("audit", "--format", "plain").stdout


@pytest.mark.one_backend
def test_relative_time_reads_like_a_person():
    from claude_keys.render import relative_time

    now = 1_767_225_600  # 2026-01-01T00:00:00Z
    assert relative_time("2026-01-01T00:00:30Z", now) == "in a moment"
    assert relative_time("2025-12-31T23:55:00Z", now) == "5 min ago"
    assert relative_time("2025-12-31T21:00:00Z", now) == "3 h ago"
    assert relative_time("2026-01-06T00:00:00Z", now) == "in 5 days"
    assert relative_time("2026-01-02T00:00:00Z", now) == "in 24 h"
    assert relative_time("2026-01-03T00:00:00Z", now) == "in 2 days"
    assert relative_time("2025-06-01T00:00:00Z", now) == "2025-06-01"
    assert relative_time("not a time", now) == "not a time"


def test_tabulate_formats_right_align_numbers_as_the_terminal_does():
    key = create()
    for cost, tokens in (("1234.5", "7"), ("0.5", "1234567")):
        assert cli("usage", "record", "--key", key["id"], "--cost", cost, "--input-tokens", tokens).exit_code == 0
    for fmt in ("github", "plain", "simple", "table"):
        lines = cli("usage", "by-day" if False else "summary", "--by", "model", "--period", "all",
                    "--format", fmt).stdout.splitlines()
        header = next(line for line in lines if "cost" in line)
        row = next(line for line in lines if "$1,235.00" in line)
        edge = header.index("cost") + len("cost")
        assert row.index("$1,235.00") + len("$1,235.00") == edge, (fmt, lines)
        right = header.index("input") + len("input")
        assert row.index("1,234,574") + len("1,234,574") == right, (fmt, lines)


# -- questions: what a command will do, and -y ----------------------------------------

def asked_on_a_terminal(args, answer: bytes, *asked) -> str:
    """Run on a pseudo-terminal, answer the question with `answer`; the screen, after
    checking the question names each of `asked`."""
    from tests.test_terminal import on_terminal

    screen = on_terminal(*args, columns=200, typed=[answer])
    said = " ".join(screen.split())
    assert "[y/N]:" in said, screen
    for text in asked:
        assert text in said, screen
    return said


# Off a terminal these questions are not asked: the contract's command lines (`keys
# rotate`, `keys disable`, `projects set`) have no -y, and scripts keep working.

def test_rotate_without_grace_asks_first_on_a_terminal_unless_yes():
    key = create()
    said = asked_on_a_terminal(("keys", "rotate", key["id"]), b"n\n", key["id"], "at once")
    assert "nothing was changed" in said
    assert cli("keys", "show", key["id"], "--json").json()["status"] == "active"
    asked_on_a_terminal(("keys", "rotate", key["id"]), b"y\n", key["id"])
    assert cli("keys", "show", key["id"], "--json").json()["status"] == "revoked"
    new = next(k for k in cli("keys", "list", "--json").json() if k["status"] == "active")
    newer = cli("keys", "rotate", new["id"], "--json")  # a script: no question
    assert newer.exit_code == 0 and newer.stderr == "" and newer.json()["rotated_from"] == new["id"], newer
    graced = cli("keys", "rotate", newer.json()["id"], "--grace", "1h", "--json")
    assert graced.exit_code == 0 and graced.stderr == "", graced


def test_disable_asks_on_a_terminal_when_it_would_suspend_other_working_secrets():
    key = create()
    assert cli("keys", "disable", key["id"]).exit_code == 0  # one key: no question
    assert cli("keys", "enable", key["id"]).exit_code == 0
    new = cli("keys", "rotate", key["id"], "--grace", "1h", "--json").json()
    asked_on_a_terminal(("keys", "disable", new["id"]), b"n\n", new["id"],
                        f"1 other working secret of its lineage ({key['id']})")
    assert {k["status"] for k in cli("keys", "list", "--json").json()} == {"active", "retiring"}
    assert cli("keys", "disable", new["id"]).exit_code == 0  # a script: as the contract says
    assert {k["status"] for k in cli("keys", "list", "--json").json()} == {"disabled"}


def test_projects_set_asks_on_a_terminal_before_a_budget_below_the_spend():
    key = create("--project-id", "webshop")
    assert cli("usage", "record", "--key", key["id"], "--cost", "7.30").exit_code == 0
    asked_on_a_terminal(("projects", "set", "webshop", "--monthly-budget", "5"), b"n\n",
                        "monthly budget to $5.00, below this month's spend ($7.30) of project webshop")
    assert cli("projects", "show", "webshop", "--json").json()["monthly_budget"] is None
    # every budget period is asked about, each against its own period's spend
    asked_on_a_terminal(("projects", "set", "webshop", "--daily-budget", "2", "--weekly-budget", "3"), b"n\n",
                        "daily budget to $2.00, below today's spend ($7.30) and the weekly budget to $3.00, "
                        "below this week's spend ($7.30) of project webshop")
    assert cli("projects", "show", "webshop", "--json").json()["daily_budget"] is None
    done = cli("projects", "set", "webshop", "--monthly-budget", "5", "--total-budget", "1", "--json")  # a script
    assert done.exit_code == 0 and done.json()["monthly_budget"] == 5.0 and done.json()["total_budget"] == 1.0


@pytest.mark.postgres_only
def test_db_copy_onto_a_server_says_what_it_will_do(tmp_path, postgres):
    from tests.test_terminal import on_terminal

    create()
    local = tmp_path / "local.db"
    done = proc("db", "copy", os.environ["CLAUDE_API_DB"], local)  # off a terminal: only what it did
    assert done.exit_code == 0 and len(done.stderr.splitlines()) == 1 and done.stderr.startswith("Copied"), done
    name = f"copy_target_{os.getpid()}"
    uri = postgres.fresh_database(name)
    try:
        screen = on_terminal("db", "copy", local, uri, columns=120)
        said = " ".join(screen.split())
        assert f"Copying {local} into the store on a database server" in said and "must be new or empty" in said, screen
        assert said.index("Copying") < said.index("Copied"), screen
    finally:
        postgres.recycle_database(name)
