"""Bounded reads: what claude-api reads from standard input has a limit (a key from
`keys verify -`: 4 KiB; `keys import`: 10 MiB, 100,000 tokens, 512 characters a token;
a y/N answer: 256 characters). Beyond it: one line, exit 2, nothing written, at once
(`< /dev/zero` never grows until memory runs out). Real processes, real /dev/zero."""
import os
import subprocess
import time

import pytest

from claude_keys.cli.keys import MAX_IMPORT_INPUT, MAX_SECRET_INPUT
from claude_keys.keys import MAX_IMPORT_TOKENS
from tests.helpers.run import EXE, cli, create, one_error_line, proc
from tests.helpers.store import dump


def from_dev_zero(*args):
    """The command with /dev/zero as its standard input; it must end within seconds."""
    started = time.monotonic()
    with open("/dev/zero", "rb") as zero:
        done = subprocess.run([EXE, *args], stdin=zero, capture_output=True, text=True,
                              env=dict(os.environ), timeout=30)
    return done, time.monotonic() - started


@pytest.mark.parametrize("args,limit", [(("keys", "verify", "-"), MAX_SECRET_INPUT),
                                        (("keys", "verify", "-", "--json"), MAX_SECRET_INPUT),
                                        (("keys", "import", "--project-id", "p"), MAX_IMPORT_INPUT)])
def test_an_endless_standard_input_is_refused_at_once(args, limit):
    create()
    before = dump()
    done, seconds = from_dev_zero(*args)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done
    assert f"over {limit:,} bytes" in lines[0] and "Traceback" not in done.stderr
    assert done.stdout == ""
    assert seconds < 15
    assert dump() == before


def test_a_confirmation_reads_a_bounded_answer():
    key = create()
    done, seconds = from_dev_zero("keys", "revoke", key["id"])
    assert done.returncode != 0 and "Traceback" not in done.stderr and seconds < 15, done
    assert cli("keys", "show", key["id"], "--json").json()["status"] == "active"


def test_a_key_on_standard_input_at_the_limit_is_read():
    key = create()
    assert proc("keys", "verify", "-", input=key["key"] + "\n").exit_code == 0
    padded = key["key"] + " " * (MAX_SECRET_INPUT - len(key["key"]) - 1) + "\n"  # 4 KiB exactly
    assert proc("keys", "verify", "-", input=padded).exit_code == 0
    r = proc("keys", "verify", "-", input=padded[:-1] + " \n")
    one_error_line(r, 2, f"over {MAX_SECRET_INPUT:,} bytes")


def test_an_import_of_too_many_tokens_is_refused_whole():
    before = dump()
    tokens = "".join(f"tok_{n:020d}\n" for n in range(MAX_IMPORT_TOKENS + 1))
    assert len(tokens.encode()) < MAX_IMPORT_INPUT  # the count is the limit met, not the size
    r = proc("keys", "import", "--project-id", "p", input=tokens)
    one_error_line(r, 2, f"at most {MAX_IMPORT_TOKENS:,}")
    assert dump() == before


def test_an_import_with_a_token_too_long_is_refused_whole():
    before = dump()
    r = proc("keys", "import", "--project-id", "p", input="tok_" + "a" * 30 + "\n" + "b" * 600 + "\n")
    one_error_line(r, 2, "token 2", "at most 512")
    assert dump() == before
