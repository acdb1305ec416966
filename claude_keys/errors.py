"""Errors the library raises. Each carries the CLI exit code it maps to.

Messages are one line, say what was wrong and what to do, and never contain a secret.
"""
from __future__ import annotations


class ClaudeKeysError(Exception):
    """An operation failed (exit 1)."""

    exit_code = 1


class InvalidInput(ClaudeKeysError, ValueError):
    """Bad input from the user: a value out of range or malformed (exit 2)."""

    exit_code = 2


class TooLarge(InvalidInput):
    """A record that would take a stored total past what the store holds exactly."""

    def __init__(self, message: str = ""):
        super().__init__(message or (
            "this would take a stored total past what the store holds exactly "
            "($9,223,372,036.854775807, or as many tokens); nothing was recorded"))


class RequestIdConflict(ClaudeKeysError):
    """Usage recorded with a request id that another key's lineage owns (in flight or
    stored): nothing was written (exit 1)."""


class KeyNotFound(ClaudeKeysError, LookupError):
    """A KEY reference matches no key."""


class AmbiguousKey(ClaudeKeysError, LookupError):
    """A KEY reference matches more than one key."""


class StoreError(ClaudeKeysError):
    """The store cannot be opened, read or upgraded."""


class TryAgain(StoreError):
    """Nothing of the call was done, and running it once more will work (the store's
    connection changed how it runs statements). The Python API retries it itself."""


class ConnectionLost(StoreError):
    """The connection to a database server broke in the middle of a call (the server
    restarted, ended the session, or the network went): what the call's transaction
    had done is undone; running it again is the remedy."""


class StoreDamaged(StoreError):
    """The store's file is damaged (or not a database at all): `db check` reports it."""


class StoreMissing(StoreError):
    """There is no store where one was named (or claude-api has not set it up), and the
    command only reads or changes one: nothing was created."""


class KeyringFailure(ClaudeKeysError):
    """The OS keyring refused (locked, erroring); distinct from having no keyring."""


class Terminated(KeyboardInterrupt):
    """SIGTERM while a command that handles it runs (an import): it ends the command as
    Ctrl-C does, with the exit code of a terminated process (143) and its own word."""
