"""The README stays true: two quick-start commands, and every command and option documented."""
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from claude_keys.cli import cli as root

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


@pytest.mark.one_backend
def test_quick_start_is_exactly_two_commands():
    block = re.search(r"## Quick start.*?```sh\n(.*?)```", README, re.S).group(1)
    commands = [line for line in block.splitlines() if line.strip()]
    assert len(commands) == 2
    assert "claude-api keys create" in commands[0] and "pytest" in commands[1]


def walk(group, path=()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield path + (name,), command
        if isinstance(command, click.Group):
            yield from walk(command, path + (name,))


@pytest.mark.one_backend
def test_every_command_and_option_is_documented():
    missing = []
    for path, command in walk(root):
        if f"{' '.join(path)}" not in README:
            missing.append(" ".join(path))
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("-") and opt not in ("-h", "--help") and opt not in README:
                    missing.append(f"{' '.join(path)} {opt}")
    assert not missing, f"not in the README: {missing}"


@pytest.mark.sqlite_only  # the example runs against a SQLite file of its own
def test_readme_example_runs(tmp_path):
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    code = re.search(r"<!-- example: request handler -->\n```python\n(.*?)```", readme, re.S).group(1)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "CLAUDE_API_DB": str(tmp_path / "example.db")})
    assert done.returncode == 0, done.stderr
    assert "200" in done.stdout and "403" in done.stdout
