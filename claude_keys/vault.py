"""The OS keyring (service `claude-api`, username = key id), and life without one.

Three outcomes, kept apart because callers treat them differently:
- stored / read / deleted;
- no backend at all (headless Linux, CI): `NoBackend`, a normal situation;
- a backend that refuses (locked, erroring, any exception): `KeyringFailure`.
`keyring` is imported only here, only when a secret is actually stored or read.
No message built here contains a secret.
"""
from __future__ import annotations

import os

from .errors import KeyringFailure

SERVICE = "claude-api"
ENV_DISABLE = "CLAUDE_API_NO_KEYRING"


class NoBackend(Exception):
    """No keyring backend is available on this machine."""


def disabled() -> bool:
    return os.environ.get(ENV_DISABLE, "").strip().lower() not in ("", "0", "false", "no")


def _keyring():
    try:
        import keyring
        from keyring.backends import fail
    except Exception as e:  # a broken install is the same as no backend
        raise NoBackend(f"the keyring module cannot load ({type(e).__name__})") from None
    try:
        backend = keyring.get_keyring()
    except Exception as e:
        raise KeyringFailure(f"the OS keyring could not start: {_describe(e)}") from None
    if isinstance(backend, fail.Keyring):
        raise NoBackend("no keyring backend is available")
    return keyring


def _describe(error: BaseException, secret: str | None = None) -> str:
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    if secret:
        text = text.replace(secret, "[secret]")
    return text.splitlines()[0] if text else type(error).__name__


def _is_no_backend(error: BaseException) -> bool:
    try:
        from keyring.errors import NoKeyringError
    except Exception:
        return False
    return isinstance(error, NoKeyringError)


def store(key_id: str, secret: str) -> None:
    """Put a secret in the keyring. Raises NoBackend or KeyringFailure."""
    keyring = _keyring()
    try:
        keyring.set_password(SERVICE, key_id, secret)
    except Exception as e:
        if _is_no_backend(e):
            raise NoBackend("no keyring backend is available") from None
        raise KeyringFailure(
            f"the OS keyring refused to store the key ({_describe(e, secret)}); unlock it, "
            "or pass --no-keyring to be shown the key once instead"
        ) from None


def read(key_id: str) -> str | None:
    """The secret of a key, or None when the keyring has no entry for it."""
    try:
        keyring = _keyring()
    except NoBackend:
        raise KeyringFailure(
            "no OS keyring is available on this machine, so no secret can be read back"
        ) from None
    try:
        return keyring.get_password(SERVICE, key_id)
    except Exception as e:
        raise KeyringFailure(f"the OS keyring could not be read ({_describe(e)})") from None


def delete(key_id: str) -> str | None:
    """Remove a secret; returns a warning line when that was not possible, else None.

    Never raises: revoking a key must not fail because the keyring is unhappy.
    """
    if disabled():
        return None
    try:
        keyring = _keyring()
    except (NoBackend, KeyringFailure):
        return None
    try:
        keyring.delete_password(SERVICE, key_id)
    except Exception as e:
        from keyring.errors import PasswordDeleteError

        if isinstance(e, PasswordDeleteError):
            return None  # nothing stored under that id: nothing to remove
        return f"the secret of {key_id} could not be removed from the OS keyring ({_describe(e)})"
    return None
