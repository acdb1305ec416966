"""Every command of the CLI, and valid values for what each requires (so a test can vary
one option or argument at a time)."""
import click

from claude_keys.cli import cli as root


def commands(group=root, path=()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from commands(command, path + (name,))
        else:
            yield path + (name,), command


def base_args(path, command, key_id, file):
    """The command with valid values for its required arguments and options."""
    args = list(path)
    for param in command.params:
        if isinstance(param, click.Argument) and param.required:
            args.append({"key": key_id, "profile": "pro", "file": str(file)}.get(param.name, str(file)))
        elif isinstance(param, click.Option) and param.required:
            if param.name == "project_id":
                args += [param.opts[0], "p"]
            elif param.name == "key_ref":
                args += [param.opts[0], key_id]
            elif param.name == "fmt":
                args += [param.opts[0], "jsonl"]
    return args
