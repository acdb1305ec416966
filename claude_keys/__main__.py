from .cli import cli

if __name__ == "__main__":  # import workers re-import the main module: run only once
    cli.main(prog_name="claude-api")
