from .cli import cli

cli.main(prog_name="claude-api")
