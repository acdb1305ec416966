"""What the tests share, besides conftest's fixtures:

- run: `cli(...)` (a command in-process, through Click's CliRunner), `proc(...)` (the
  installed `claude-api` as a real process), `create(...)` a key, and reading answers
  back (`verify`, `verdict`, `report`, `imported`, `one_error_line`, ...).
- store: reading the test's store back (`sql`, `dump`, `assert_consistent`).
- workers: process pools and workers several tests start (they die with the run).
- commands: every command of the CLI, with valid base arguments (fuzzing, secrets).
- processes: children that die with the process that started them; /proc lookups.
- pg_server: a throwaway PostgreSQL server; keyring_backends: test keyrings;
  claude_logs, cc_lines: Claude Code logs, generated or spelled out; hostile: text
  that must never reach the store or a terminal; ci: skip, or fail in CI.

Subprocesses import tests.helpers.keyring_backends (PYTHON_KEYRING_BACKEND), so this
package imports nothing itself.
"""
