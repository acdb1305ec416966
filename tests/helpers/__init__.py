"""What the tests share, besides conftest's fixtures:

- run: `cli(...)` (a command in-process, through Click's CliRunner), `proc(...)` (the
  installed `claude-api` as a real process), `create(...)` a key.
- store: reading the test's store back (`sql`, `dump`, `assert_consistent`).
- commands: every command of the CLI, with valid base arguments (fuzzing, secrets).
- processes: children that die with the process that started them; /proc lookups.
- pg_server: a throwaway PostgreSQL server; keyring_backends: test keyrings;
  claude_logs, cc_lines: Claude Code logs, generated or spelled out; ci: skip, or fail
  in CI.

Subprocesses import tests.helpers.keyring_backends (PYTHON_KEYRING_BACKEND), so this
package imports nothing itself.
"""
