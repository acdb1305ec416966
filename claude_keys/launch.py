"""The `claude-api` program: `usage statusline` goes straight to its module, every
other command through the Click CLI (claude_keys.cli).

Claude Code runs its status line command on every update of a conversation, and Click
with the CLI's modules takes longer to load than the status line takes to answer. So
the plain forms of that one command (`claude-api [--db X] usage statusline [--db X]`)
are recognised here, without Click; anything else (`--help`, a typo, an empty `--db`)
goes through Click, where the same command is registered (cli/usage.py), and behaves
the same.
"""
from __future__ import annotations

import sys

_COMMAND = ["usage", "statusline"]


def statusline_store(args: list[str]):
    """The `--db` of a plain `usage statusline` command line (None when not given), or
    False when `args` is anything else."""
    db, rest, i = None, [], 0
    while i < len(args):
        arg = args[i]
        if arg == "--db" and i + 1 < len(args):
            value, i = args[i + 1], i + 2
        elif arg.startswith("--db="):
            value, i = arg[len("--db="):], i + 1
        else:
            rest.append(arg)
            i += 1
            continue
        if not value or "\x00" in value:
            return False  # Click says what is wrong with it
        db = value
    return db if rest == _COMMAND else False


def main() -> None:
    db = statusline_store(sys.argv[1:])
    if db is False:
        from .cli import main as cli_main

        cli_main()
        return
    from .statusline import run

    try:
        sys.stdout.write(run(sys.stdin, db) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, OSError):
        pass  # the reader went away: nothing to tell anyone
    sys.exit(0)
