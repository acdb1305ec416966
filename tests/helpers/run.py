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


def one_error_line(r, code=1, *texts) -> str:
    """The command failed with `code` and said so in one line, `Error: ...` (no
    traceback, no escaped line break) naming each of `texts`; returns the line."""
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.exit_code == code and len(lines) == 1 and lines[0].startswith("Error: "), r
    assert "\\n" not in lines[0] and "Traceback" not in r.stderr, r
    for text in texts:
        assert text in lines[0], r
    return lines[0]


# -- keys verify ---------------------------------------------------------------------

def verify(key, *args, code=None) -> dict:
    """`keys verify KEY --json`'s answer (and its exit code is `code`, if given)."""
    r = cli("keys", "verify", key, "--json", *args)
    answer = r.json()
    if code is not None:
        assert r.exit_code == code, r
    assert answer["allowed"] == (r.exit_code == 0)
    return answer


def error(answer) -> tuple:
    return answer["error"]["type"], answer["error"]["message"]


def verdict(secret, *args) -> tuple:
    """`keys verify SECRET --json`: (its exit code, its answer)."""
    r = cli("keys", "verify", secret, "--json", *args)
    return r.exit_code, r.json()


# -- usage -----------------------------------------------------------------------------

def record_at(key, at, cost=None, model="claude-sonnet-4-5", inp=100, out=10, read=0, write=0, rid=None):
    """`usage record` of one request at `at`."""
    args = ["usage", "record", "--key", key, "--at", at, "--model", model, "--input-tokens", inp,
            "--output-tokens", out, "--cache-read-tokens", read, "--cache-write-tokens", write]
    if cost is not None:
        args += ["--cost", cost]
    if rid:
        args += ["--request-id", rid]
    r = cli(*args)
    assert r.exit_code == 0, r


def report(*args):
    """A `usage` report's --json answer."""
    r = cli("usage", *args, "--json")
    assert r.exit_code == 0, r
    return r.json()


def imported(*args, code=0):
    """`usage import ... --json`: its answer, or (when `code` is not 0) the result."""
    r = cli("usage", "import", *args, "--json")
    assert r.exit_code == code, r
    return r.json() if code == 0 else r


def total():
    """All recorded usage: (requests, input tokens, output tokens, cost in nano-dollars)."""
    r = cli("usage", "summary", "--period", "all", "--json")
    assert r.exit_code == 0, r
    t = r.json()
    return t["requests"], t["input_tokens"], t["output_tokens"], round(t["cost_usd"] * 1e9)
