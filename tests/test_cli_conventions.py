"""The command line's conventions (claude_keys/cli/): help for every command and group,
-V/--version, `python -m claude_keys`, exit codes through the real executable, --db
before or after the command, -y/--yes/--force alike."""
import json

import pytest

from tests.helpers.run import cli, create, one_error_line, proc


@pytest.mark.one_backend
@pytest.mark.parametrize("group", [[], ["keys"], ["usage"], ["db"], ["profiles"]])
def test_a_command_alone_prints_its_help(group):
    r = proc(*group)
    assert r.exit_code == 0 and r.stderr == "", r
    assert r.stdout.startswith(f"Usage: claude-api {' '.join(group)}".rstrip() + " [OPTIONS] COMMAND")
    assert "\nCommands:\n" in r.stdout and "\\n" not in r.stdout


@pytest.mark.one_backend
def test_short_version_flag():
    assert proc("-V").stdout == proc("--version").stdout == "claude-api, version 0.1.0\n"


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


def test_python_m_entry_point():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "claude_keys", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and "claude-api" in done.stdout


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


def test_db_after_the_subcommand(tmp_path, store_target, monkeypatch):
    monkeypatch.delenv("CLAUDE_API_DB")
    target = str(store_target)
    key = json.loads(proc("keys", "create", "--project-id", "p", "--json", "--db", target).stdout)
    assert [k["id"] for k in json.loads(proc("keys", "list", "--json", "--db", target).stdout)] == [key["id"]]
    assert proc("keys", "verify", key["key"], "--db", target).exit_code == 0
    assert proc("usage", "record", "--key", key["id"], "--cost", "1", "--db", target).exit_code == 0
    assert json.loads(proc("usage", "summary", "--json", "--db", target).stdout)["requests"] == 1
    assert proc("db", "check", "--db", target).exit_code == 0
    # Either place works, the later one wins, and an empty one is refused.
    other = tmp_path / "other.db"
    assert proc("--db", target, "keys", "list", "--db", str(other)).exit_code == 1  # no store there
    one_error_line(proc("keys", "list", "--db", ""), 2, "--db", "empty")
    assert not other.exists()


def test_yes_is_accepted_where_force_is():
    a, b, c = create(), create(), create()
    for key, flag in ((a, "-y"), (b, "--yes"), (c, "--force")):
        r = cli("keys", "revoke", key["id"], flag)
        assert r.exit_code == 0 and "Revoked" in r.stderr, r
    assert {k["status"] for k in cli("keys", "list", "--status", "all", "--json").json()} == {"revoked"}


def test_ctrl_c_at_a_prompt_exits_130_with_one_line():
    """An interrupt before a command's own handling (here, at its y/N prompt) is an
    interrupt, not an abort: exit 130, like every other Ctrl-C."""
    import os
    import signal
    import subprocess
    import time

    from tests.helpers.run import EXE

    key = create()
    child = subprocess.Popen([EXE, "keys", "revoke", key["id"]], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ)
    seen, deadline = "", time.monotonic() + 30
    while "[y/N]" not in seen and time.monotonic() < deadline:  # at the prompt: Python's handlers are in place
        seen += child.stderr.read(1)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=30)
    lines = [x for x in err.splitlines() if x.strip()]
    assert child.returncode == 130 and lines == ["Error: interrupted; nothing was changed"], err
    assert cli("keys", "show", key["id"], "--json").json()["status"] == "active"


@pytest.mark.parametrize("where", ["inside its write", "after it committed"])
def test_ctrl_c_inside_a_command_says_whether_it_stored_anything(monkeypatch, where):
    """A Ctrl-C that reaches the command line from inside a command: a write transaction
    it cut off is rolled back ("nothing was changed"); one that came after the commit
    (here, while the result was printed) must not say so, nor may the next command."""
    from claude_keys import audit, render

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(audit if where == "inside its write" else render,
                        "record" if where == "inside its write" else "write_json", ctrl_c)
        r = cli("keys", "create", "--project-id", "cut", "--json")
    stored = len(cli("keys", "list", "--project-id", "cut", "--json").json())
    said = "nothing was changed" if where == "inside its write" else "what it had done by then is stored"
    assert (r.exit_code, r.stderr.strip(), stored) == (130, f"Error: interrupted; {said}", int(where != "inside its write")), r
    monkeypatch.setattr(render, "write_json", ctrl_c)
    again = cli("keys", "list", "--json")  # a command that writes nothing, in the same process
    assert (again.exit_code, again.stderr.strip()) == (130, "Error: interrupted; nothing was changed"), again


@pytest.mark.one_backend
@pytest.mark.parametrize("program", ["claude-api", "__main__.py"])
def test_ctrl_c_while_the_cli_still_loads_is_one_line_and_130(program):
    """Before main() runs (Python importing the CLI, a slow start on a loaded machine), a
    Ctrl-C is one line and 130, never a traceback from whatever module was importing."""
    import subprocess
    import sys

    code = ("import os, signal, sys; sys.argv[0] = sys.argv[1]; import claude_keys.cli; "
            "os.kill(os.getpid(), signal.SIGINT); import time; time.sleep(5)")
    done = subprocess.run([sys.executable, "-c", code, program], capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stderr) == (130, "Error: interrupted; nothing was changed\n"), done


@pytest.mark.one_backend
def test_a_library_import_keeps_its_own_ctrl_c():
    """A service (or a test) importing the CLI module keeps Python's KeyboardInterrupt."""
    import signal

    import claude_keys.cli  # noqa: F401

    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _choice_params():
    import click

    from tests.helpers.commands import commands

    for path, command in commands():
        for param in command.params:
            if isinstance(param.type, click.Choice):
                yield path, command, param


def _args_with(path, command, target, value):
    """The command with valid values for what it requires, and `value` (None: nothing)
    for the choice `target`."""
    import click

    from tests.helpers.commands import base_args

    args = list(path)
    for param in command.params:
        if param is target:
            if value is not None:
                args += [value] if isinstance(param, click.Argument) else [param.opts[0], value]
        elif param.required:
            args += base_args((), type(command)(command.name, params=[param]), "abc123", "/nonexistent-file")
    return args


@pytest.mark.one_backend
def test_every_choice_error_is_one_plain_line():
    """Click lists a missing choice's values as "Choose from:\\n\\t…" and names a choice
    argument by its metavar ('{bash|zsh|fish}'): each reads as noise on one line (issue 20)."""
    import click

    found = list(_choice_params())
    assert {p[:2] for p, _, _ in found} >= {("completion",), ("profiles", "show"), ("usage", "export")}
    for path, command, param in found:
        name = f"'{param.name if isinstance(param, click.Argument) else param.opts[0]}'"
        cases = [("no-such-choice", f"Invalid value for {name}")]
        if param.required:
            cases.append((None, f"Missing {param.param_type_name} {name}. Choose from: "
                                + ", ".join(param.type.choices) + "."))
        for value, says in cases:
            r = cli(*_args_with(path, command, param, value))
            line = one_error_line(r, 2, says)
            assert "\\t" not in line and "'{" not in line, (path, line)


FIRST_COMMANDS = [("keys", "create"), ("keys", "verify"), ("keys", "permissions"), ("usage", "import"),
                  ("usage", "summary")]


@pytest.mark.one_backend
@pytest.mark.parametrize("path", FIRST_COMMANDS)
def test_first_commands_end_their_help_with_examples_that_parse(path, tmp_path):
    """Issue 20: as `gh`, the help a newcomer reads first ends with 2-4 examples."""
    import shlex

    import click

    from tests.helpers.commands import commands

    text = proc(*path, "--help", env={"COLUMNS": "80"}).stdout
    examples = text.split("\n  Examples:\n", 1)[1].splitlines()
    assert 2 <= len(examples) <= 4 and all(len(line) <= 80 for line in examples), text
    command = dict(commands())[path]
    for line in examples:
        (tmp_path / "records.jsonl").touch()
        words = shlex.split(line.split("|")[-1].split(">")[0].replace("$KEY", "cc_x")
                            .replace("~/.claude", str(tmp_path)).replace("records.jsonl", str(tmp_path / "records.jsonl")))
        assert words[:1 + len(path)] == ["claude-api", *path], line
        command.make_context(" ".join(path), words[1 + len(path):], parent=click.Context(click.Group()))


@pytest.mark.one_backend
@pytest.mark.parametrize("group", [[], ["keys"], ["usage"], ["db"], ["profiles"], ["projects"]])
def test_command_summaries_are_not_cut_off(group):
    text = proc(*group, "--help", env={"COLUMNS": "80"}).stdout
    assert "..." not in text.split("\nCommands:\n", 1)[1], text
