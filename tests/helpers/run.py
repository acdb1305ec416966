"""Running claude-api the two ways the tests do, and reading back its answers.

`cli(...)` runs a command in-process through Click's CliRunner; `proc(...)` runs the
installed `claude-api` executable as a real subprocess, with the environment the test's
fixtures set up (its store, its keyring, no colour).
"""
import json
import os
import shutil
import subprocess
import sys

from click.testing import CliRunner

from claude_keys.cli import cli as root

EXE = shutil.which("claude-api", path=os.path.dirname(sys.executable)) or shutil.which("claude-api")


class Result:
    def __init__(self, code, stdout, stderr):
        self.exit_code, self.stdout, self.stderr = code, stdout, stderr

    def json(self):
        return json.loads(self.stdout)

    def __repr__(self):
        return f"<exit {self.exit_code}\nstdout: {self.stdout}\nstderr: {self.stderr}>"


def cli(*args, input=None, env=None) -> Result:
    result = CliRunner().invoke(root, [str(a) for a in args], input=input, env=env,
                                catch_exceptions=False)
    return Result(result.exit_code, result.stdout, result.stderr)


def proc(*args, input=None, env=None, timeout=60) -> Result:
    assert EXE, "the claude-api executable is not installed next to this Python"
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run([EXE, *map(str, args)], input=input, capture_output=True, text=True,
                          env=full_env, timeout=timeout)
    return Result(done.returncode, done.stdout, done.stderr)


def create(*args, **kwargs) -> dict:
    """Create a key (project 'p' unless given) and return its --json answer."""
    if "--project-id" not in args:
        args = ("--project-id", "p", *args)
    result = cli("keys", "create", *args, "--json", **kwargs)
    assert result.exit_code == 0, result
    return result.json()
