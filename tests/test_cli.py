"""CLI behaviour: bad values, exit codes, output formats, help."""
import json

import pytest

from tests.helpers.run import cli, create, proc

BAD_VALUES = [
    ("keys", "create", "--project-id", "p", "--rate-limit", "-1"),
    ("keys", "create", "--project-id", "p", "--rate-limit", "abc"),
    ("keys", "create", "--project-id", "p", "--rate-limit", "1.5"),
    ("keys", "create", "--project-id", "p", "--rate-limit", "99999999999999999999999"),
    ("keys", "create", "--project-id", "p", "--max-cost", "-0.5"),
    ("keys", "create", "--project-id", "p", "--max-cost", "abc"),
    ("keys", "create", "--project-id", "p", "--max-cost", "nan"),
    ("keys", "create", "--project-id", "p", "--max-cost", "inf"),
    ("keys", "create", "--project-id", "p", "--max-cost", "1e400"),
    ("keys", "create", "--project-id", "p", "--monthly-budget", "-3"),
    ("keys", "create", "--project-id", "p", "--monthly-budget", "ten"),
    ("keys", "create", "--project-id", "p", "--expires-in", "30"),
    ("keys", "create", "--project-id", "p", "--expires-in", "30x"),
    ("keys", "create", "--project-id", "p", "--expires-in", "-1d"),
    ("keys", "create", "--project-id", "p", "--expires-in", "1y"),
    ("keys", "create", "--project-id", "p", "--expires-in", "99999999999d"),
    ("keys", "create", "--project-id", "p", "--profile", "gold"),
    ("keys", "create", "--project-id", ""),
    ("keys", "create", "--project-id", "a\x1b[31mb"),
    ("keys", "create"),
    ("keys", "list", "--status", "weird"),
    ("keys", "list", "--profile", "gold"),
    ("keys", "list", "--format", "nope"),
    ("keys", "rotate", "KEY", "--grace", "5"),
    ("keys", "rotate", "KEY", "--grace", "soon"),
    ("keys", "permissions", "KEY", "--set-profile", "gold"),
    ("keys", "permissions", "KEY", "--max-cost", "-1"),
    ("keys", "permissions", "KEY", "--rate-limit", "fast"),
    ("keys", "permissions", "KEY", "--timeout", "-5"),
    ("keys", "permissions", "KEY", "--timeout", "abc"),
    ("keys", "permissions", "KEY", "--monthly-budget", "nan"),
    ("keys", "permissions", "KEY", "--tokens-per-day", "-1"),
    ("keys", "permissions", "KEY", "--keep-overrides"),
    ("profiles", "show", "gold"),
    ("keys", "frobnicate"),
    ("keys", "list", "--no-such-option"),
]


@pytest.mark.parametrize("args", BAD_VALUES, ids=lambda a: " ".join(a[1:])[:60])
def test_bad_values_exit_2_with_one_clear_line(args):
    key = create()
    args = [key["id"] if a == "KEY" else a for a in args]
    r = cli(*args)
    assert r.exit_code == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), r
    assert r.stdout == ""
    assert len(cli("keys", "list", "--json").json()) == 1  # nothing half-written


def test_exit_codes_through_the_real_executable():
    key = proc("keys", "create", "--project-id", "p", "--json")
    assert key.exit_code == 0, key
    kid = json.loads(key.stdout)["id"]
    assert proc("keys", "show", kid).exit_code == 0
    assert proc("keys", "show", "ffffffffffff").exit_code == 1
    assert proc("keys", "create").exit_code == 2
    assert proc("keys", "create", "--project-id", "p", "--rate-limit", "-4").exit_code == 2
    r = proc("keys", "revoke", kid, input="")
    assert r.exit_code == 1 and "Traceback" not in r.stderr
    assert json.loads(proc("keys", "show", kid, "--json").stdout)["status"] == "active"


def test_python_m_entry_point():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "claude_keys", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and "claude-api" in done.stdout


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_csv_and_tsv(fmt):
    create("--project-id", 'a,"b"')
    out = cli("keys", "list", "--format", fmt).stdout.splitlines()
    sep = "," if fmt == "csv" else "\t"
    assert out[0].split(sep)[:4] == ["id", "name", "project_id", "profile"]
    import csv

    rows = list(csv.DictReader(out, delimiter=sep))
    assert rows[0]["project_id"] == 'a,"b"' and rows[0]["status"] == "active"


def test_off_a_terminal_no_box_drawing_or_colour():
    create()
    for command in (["keys", "list"], ["profiles", "list"], ["keys", "permissions"]):
        if command[-1] == "permissions":
            command = command + [cli("keys", "list", "--json").json()[0]["id"]]
        out = cli(*command).stdout
        assert out and "\x1b[" not in out
        assert not any(ch in out for ch in "│┃┏━┡─╭╰═"), out


def test_tabulate_formats_pass_through():
    create()
    assert cli("keys", "list", "--format", "github").stdout.startswith("| id")


def test_json_flag_equals_format_json():
    create()
    assert cli("keys", "list", "--json").json() == cli("keys", "list", "--format", "json").json()


def test_profiles_match_the_contract_table():
    rows = {p["name"]: p for p in cli("profiles", "list", "--json").json()}
    assert rows["free"]["allowed_tools"] == ["Read", "Grep"] and rows["free"]["allowed_agents"] == []
    assert (rows["free"]["rate_limit"], rows["free"]["max_cost_per_task"], rows["free"]["timeout"]) == (10, 0.1, 60)
    assert rows["pro"]["allowed_tools"] == ["Read", "Grep", "Bash", "Edit", "Write"]
    assert rows["pro"]["allowed_agents"] == ["code-reviewer", "security-auditor"]
    assert (rows["pro"]["rate_limit"], rows["pro"]["max_cost_per_task"], rows["pro"]["timeout"]) == (100, 1.0, 300)
    assert rows["enterprise"]["allowed_tools"] == ["*"] and rows["enterprise"]["allowed_skills"] == ["*"]
    assert rows["enterprise"]["rate_limit"] is None and rows["enterprise"]["timeout"] is None


def test_every_command_has_help():
    from claude_keys.cli import cli as root

    import click

    def walk(group, path):
        ctx = click.Context(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            yield path + [name]
            if isinstance(command, click.Group):
                yield from walk(command, path + [name])

    for path in walk(root, []):
        r = cli(*path, "--help")
        assert r.exit_code == 0 and "Usage:" in r.stdout, path
