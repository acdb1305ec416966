"""The `claude-api` command: the root group, shared state, and error reporting.

Command groups live in their own modules and are imported only when invoked, so
`claude-api keys verify` loads click, sqlite3 and the verification path, and nothing
else. Every failure becomes one line on stderr and the contract's exit code.
"""
from __future__ import annotations

import importlib
import os
import signal
import sys


def _interrupted_while_loading(signum, frame):
    """Ctrl-C while Python still loads the CLI, before any command ran: one line, 130
    (not a traceback from whichever module happened to be importing)."""
    os.write(2, b"Error: interrupted; nothing was changed\n")
    os._exit(130)


# Only in the `claude-api` program: a service or a test importing this module keeps its own
# Ctrl-C. main() puts Python's handler back before a command runs.
if (os.path.basename(sys.argv[0]) in ("claude-api", "__main__.py")
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
    signal.signal(signal.SIGINT, _interrupted_while_loading)

import click  # noqa: E402  (after the handler: importing click is most of the loading)

from .. import __version__
from ..errors import ClaudeKeysError

COMMANDS = {
    "keys": "claude_keys.cli.keys:keys",
    "profiles": "claude_keys.cli.profiles:profiles",
    "projects": "claude_keys.cli.projects:projects",
    "usage": "claude_keys.cli.usage:usage",
    "db": "claude_keys.cli.db:db",
    "audit": "claude_keys.cli.audit:audit",
    "completion": "claude_keys.cli.completion:completion",
    "prices": "claude_keys.cli.prices:prices",
    "alerts": "claude_keys.cli.alerts:alerts",
    "help": "claude_keys.cli.help:help",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def __init__(self, *args, lazy: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx, name):
        if name in self.lazy:
            module, attr = self.lazy[name].split(":")
            return with_db_option(getattr(importlib.import_module(module), attr))
        return super().get_command(ctx, name)


def with_db_option(command: click.Command) -> click.Command:
    """Give every command under the root its own `--db`, so that `claude-api keys list
    --db X` works as well as `claude-api --db X keys list` (once per command object)."""
    whole_summary(command)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            with_db_option(sub)
    elif not any(p.name == "db" for p in command.params):
        command.params.append(click.Option(
            ["--db"], metavar="PATH|URI", type=FilePath(dir_okay=False), expose_value=False,
            callback=_late_db, help="The store (as `claude-api --db`; either place works)."))
    return command


def whole_summary(command: click.Command) -> None:
    """A group's list of commands shows each one's first sentence whole (wrapped), never
    cut off mid-sentence with "..." as Click does to fit a line."""
    import re

    if command.short_help is None and command.help:
        first = re.split(r"\n\s*\n", command.help.strip(), maxsplit=1)[0]
        first = re.split(r"(?<=[.!?])\s+(?=[A-Z`(])", " ".join(first.split()), maxsplit=1)[0]
        command.short_help = first


def _late_db(ctx: click.Context, param, value) -> None:
    if value is None:
        return
    check_db(value)
    ctx.meta["claude_api.db"] = value  # shell completion reads the store from here
    app = ctx.find_root().obj
    if isinstance(app, App):
        app.db = value


def check_db(value: str | None, given: bool = True) -> None:
    if value == "" and given:  # `--db "$STORE"` with STORE unset must not quietly use the default store
        raise click.BadParameter("the store path is empty", param_hint="--db")
    try:
        (value or "").encode("utf-8")
    except UnicodeEncodeError:  # a path that is not UTF-8 could be neither shown nor stored
        raise click.BadParameter("the store path must be valid UTF-8 text", param_hint="--db") from None


class Root(LazyGroup):
    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        code = run_reporting_errors(
            lambda: super(Root, self).main(args, prog_name or "claude-api", complete_var,
                                           standalone_mode=False, **extra)
        )
        if standalone_mode:
            sys.exit(code)
        return code


def _interrupted(e: KeyboardInterrupt, said: str) -> int:
    """Ctrl-C (130), or SIGTERM where a command turned it into Terminated (143)."""
    from ..errors import Terminated

    terminated = isinstance(e, Terminated)
    error(("terminated" if terminated else "interrupted") + said)
    return 143 if terminated else 130


def _what_was_stored() -> str:
    """After a Ctrl-C inside a command: its write transactions are each whole or not at
    all, so either nothing was changed or what it finished is stored (the interrupt came
    after a commit: while it printed its result, say)."""
    base = sys.modules.get("claude_keys.db.base")  # (not loaded: no store was opened)
    if base is not None and base.Wrote.changed:
        return "; what it had done by then is stored"
    return "; nothing was changed"


def run_reporting_errors(call) -> int:
    """Run the CLI; turn any failure into one line on stderr and an exit code."""
    base = sys.modules.get("claude_keys.db.base")
    if base is not None:  # (a program running several commands: each says what it stored)
        base.Wrote.changed = False
    try:
        rv = call()
        return rv if isinstance(rv, int) else 0
    except click.exceptions.NoArgsIsHelpError as e:
        # `claude-api` or `claude-api keys` alone: the help a newcomer asked for, not an error.
        click.echo(e.ctx.get_help())
        return 0
    except click.exceptions.Abort as e:
        if isinstance(e.__cause__, KeyboardInterrupt):  # Ctrl-C before a command's own handling
            return _interrupted(e.__cause__, _what_was_stored())
        error("aborted; nothing was changed")
        return 1
    except click.UsageError as e:
        where = f" (see '{e.ctx.command_path} --help')" if e.ctx else ""
        error(f"{usage_message(e)}{where}")
        return e.exit_code
    except click.ClickException as e:
        error(e.format_message())
        return e.exit_code
    except ClaudeKeysError as e:
        error(str(e))
        return e.exit_code
    except KeyboardInterrupt as e:
        return _interrupted(e, "")
    except UnicodeDecodeError:
        error("the input is not UTF-8 text")
        return 2
    except BrokenPipeError:
        # The reader went away (`| head`): not an error worth a word.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except OSError as e:
        error(f"{e.strerror or e}{f': {e.filename}' if e.filename else ''}")
        return 1
    except Exception as e:
        from ..db import as_store_error

        found = as_store_error(e)
        if found is not None:  # the database said no (busy, damaged, unreachable)
            error(str(found))
            return found.exit_code
        # A bug: still one line, with a way to see more.
        if os.environ.get("CLAUDE_API_DEBUG"):
            raise
        error(f"unexpected {type(e).__name__}; run with CLAUDE_API_DEBUG=1 for details")
        return 1


def usage_message(e: click.UsageError) -> str:
    """Click's message, except for a choice: Click names a choice argument by its
    metavar (`'{bash|zsh|fish}'`) and lists a missing choice's values one per line
    ("Choose from:\\n\\t…"), which reads as escapes on our one line. Name the
    argument ('shell', 'profile') and list the values inline."""
    param = getattr(e, "param", None)
    if not isinstance(e, click.BadParameter) or param is None or not isinstance(param.type, click.Choice):
        return e.format_message()
    if isinstance(param, click.Argument) and e.param_hint is None:
        e.param_hint = f"'{param.name}'"
    if isinstance(e, click.MissingParameter):
        hint = e.param_hint or param.get_error_hint(e.ctx)
        kind = e.param_type or param.param_type_name
        return f"Missing {kind} {hint}. Choose from: {', '.join(map(str, param.type.choices))}."
    return e.format_message()


def error(message: str) -> None:
    click.echo(f"Error: {one_line(message)}", err=True)


def warn(message: str) -> None:
    """A warning on stderr: one line for a program reading it; on a terminal, wrapped at
    word boundaries to its width (the terminal would cut words anywhere)."""
    click.echo(on_terminal_width(f"Warning: {one_line(message)}"), err=True)


def on_terminal_width(text: str) -> str:
    if not sys.stderr.isatty():
        return text
    try:
        width = int(os.environ.get("COLUMNS") or 0) or os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        return text
    import textwrap

    return textwrap.fill(text, max(width - 1, 20), break_long_words=False, break_on_hyphens=False)


def one_line(message: str) -> str:
    """A message may quote what the user typed: escape what values.check_text refuses
    (control characters, C1 ones such as NEL and CSI, line separators, bidirectional
    controls, lone surrogates) so it stays one line, cannot drive the terminal, and
    can be printed."""
    from ..values import scrubbed

    return scrubbed(message)


class App:
    """Per-invocation state in ctx.obj: where the store is, and its connections."""

    def __init__(self, db: str | None):
        self.db = db
        self._conns: dict = {}
        self.request_path = False  # `keys verify`, `usage record`: the request path's wait bound

    @property
    def target(self) -> str:
        """The store: a SQLite path or a PostgreSQL URI (see claude_keys.db)."""
        from ..db import resolve

        return resolve(self.db)

    db_path = target

    @property
    def conn(self):
        """For commands that may make the store: creates it (and sets it up) if need be."""
        return self._open(create=True, readonly=False)

    @property
    def existing(self):
        """For commands that change an existing store (a key must exist to be changed):
        a missing store is an error, and none is created."""
        return self._open(create=False, readonly=False)

    @property
    def reader(self):
        """For commands that only read: never creates a store, and never writes, so a
        user who may read the store but not write it can list and report."""
        return self._open(create=False, readonly=True)

    def _open(self, *, create: bool, readonly: bool):
        mode = (create, readonly)
        if mode not in self._conns:
            from ..db import connect

            self._conns[mode] = connect(self.db, create=create, readonly=readonly,
                                        request=self.request_path)
        return self._conns[mode]

    def close(self) -> None:
        while self._conns:
            self._conns.popitem()[1].close()


from .options import FilePath  # noqa: E402  (after App: options imports nothing from here)


@click.group("claude-api", cls=Root, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", metavar="PATH|URI", envvar="CLAUDE_API_DB", show_envvar=True,
              type=FilePath(dir_okay=False),
              help="The store: a SQLite file, or a PostgreSQL URI (postgresql://…) shared by "
                   "several hosts. Default: keys.db in the claude-api folder of your user config dir.")
@click.version_option(__version__, "-V", "--version", prog_name="claude-api")
@click.pass_context
def cli(ctx: click.Context, db: str | None) -> None:
    """Manage API keys, permissions and usage for a self-hosted Claude API service."""
    check_db(db, given=ctx.get_parameter_source("db") == click.core.ParameterSource.COMMANDLINE)
    app = App(db or None)
    ctx.obj = app
    ctx.call_on_close(app.close)


def main() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    cli.main(prog_name="claude-api")
