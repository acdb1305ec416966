"""`claude-api completion bash|zsh|fish`: the shell completion script, for users who
installed with pip and have no checkout (and so no `completions/` folder)."""
from __future__ import annotations

import click

SHELLS = ("bash", "zsh", "fish")


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL (what click generates; completions/ in the
    repository holds the same). For example, in ~/.bashrc:

    \b
    eval "$(claude-api completion bash)"
    """
    from click.shell_completion import get_completion_class

    from . import cli

    script = get_completion_class(shell)(cli, {}, "claude-api", "_CLAUDE_API_COMPLETE").source()
    click.echo(script.encode(), nl=False)  # bytes, as click writes it: no CRLF on Windows
