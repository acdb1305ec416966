"""`claude-api help environment`: the environment variables claude-api reads (as `gh help
environment`), and `claude-api help COMMAND…`: a command's --help."""
from __future__ import annotations

import click

# Every variable the code reads (tests/test_first_hour.py checks that each CLAUDE_API_*
# in claude_keys/ is here), as: name, what it does.
ENVIRONMENT = (
    ("CLAUDE_API_DB", "The store: a SQLite file or a PostgreSQL URI (as --db, which wins). Default: "
                      "keys.db in the claude-api folder of your user config dir (`claude-api db path`)."),
    ("CLAUDE_API_TIMEOUT", "Seconds any wait on the store may last (a lock, a busy server, a connection) "
                           "before the command fails with one line and `keys verify` answers 503."),
    ("CLAUDE_API_NO_KEYRING", "1: never try the OS keyring (as --no-keyring): a new secret is shown once."),
    ("CLAUDE_API_PRICES", "A prices.json that overrides or adds model prices (default: prices.json beside "
                          "a SQLite store, or in the claude-api config folder)."),
    ("CLAUDE_API_TZ", "The time zone of reports' periods and dates (as --tz, which wins): an IANA "
                      "name, UTC or local. Default: the system's zone (TZ, else /etc/localtime). "
                      "Budgets keep the store's budget time zone."),
    ("CLAUDE_API_POOL_SIZE", "PostgreSQL: connections per process in the Python API's pool."),
    ("CLAUDE_API_DEBUG", "1: an unexpected error prints its traceback instead of one line."),
    ("CLAUDE_CONFIG_DIR", "Where `usage import` (with no FILE) finds Claude Code's logs, as Claude Code "
                          "does; else ~/.claude and ~/.config/claude."),
    ("XDG_CONFIG_HOME", "The user config dir that ~/.config/claude is looked for in."),
    ("NO_COLOR", "Set: no colour anywhere (tables, progress)."),
    ("COLUMNS", "The width tables fit on a terminal (default: the terminal's own)."),
)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("topic", nargs=-1, metavar="[environment | COMMAND...]")
@click.pass_context
def help(ctx, topic) -> None:  # noqa: A001 (the command's name)
    """Help on a topic (`environment`: the variables claude-api reads) or a command."""
    if list(topic) == ["environment"]:
        click.echo(environment_text())
        return
    root = ctx.find_root().command
    command, path = root, ["claude-api"]
    for name in topic:
        sub = command.get_command(ctx, name) if isinstance(command, click.Group) else None
        if sub is None:
            raise click.UsageError(f"no help topic or command {' '.join([*path[1:], name])!r}: "
                                   "try `claude-api help environment` or `claude-api --help`", ctx)
        command, path = sub, [*path, name]
    with click.Context(command, info_name=" ".join(path)) as shown:
        click.echo(command.get_help(shown))


def environment_text() -> str:
    width = max(len(name) for name, _ in ENVIRONMENT) + 2
    import textwrap

    lines = ["Environment variables claude-api reads:", ""]
    for name, what in ENVIRONMENT:
        wrapped = textwrap.wrap(what, 78 - width, break_long_words=False, break_on_hyphens=False)
        lines.append(f"  {name:<{width}}{wrapped[0]}")
        lines += [" " * (width + 2) + more for more in wrapped[1:]]
    return "\n".join(lines)
