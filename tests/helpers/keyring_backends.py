"""Keyring backends for tests, so no test ever touches the user's real keyring.

In-process tests install MemoryKeyring with keyring.set_keyring(); subprocesses get
FileKeyring through PYTHON_KEYRING_BACKEND=tests.helpers.keyring_backends.FileKeyring
(conftest puts the checkout on their PYTHONPATH).
LockedKeyring and BrokenKeyring stand in for a locked and a failing backend.
"""
import fcntl
import json
import os
import tempfile
from contextlib import contextmanager

from keyring.backend import KeyringBackend
from keyring.errors import KeyringLocked, PasswordDeleteError


class MemoryKeyring(KeyringBackend):
    priority = 1

    def __init__(self):
        super().__init__()
        self.entries = {}

    def set_password(self, service, username, password):
        self.entries[(service, username)] = password

    def get_password(self, service, username):
        return self.entries.get((service, username))

    def delete_password(self, service, username):
        if self.entries.pop((service, username), None) is None:
            raise PasswordDeleteError("not found")


class FileKeyring(KeyringBackend):
    """A JSON file named by CLAUDE_API_TEST_KEYRING: shared by the processes of a test,
    which may write it at the same moment (two `keys create` at once): a change is read,
    made and written back under an exclusive lock, and lands whole (a rename), so a
    reader sees the file before or after it, and no change is lost."""

    priority = 1

    @property
    def path(self):
        return os.environ["CLAUDE_API_TEST_KEYRING"]

    def _load(self):
        try:
            with open(self.path) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    @contextmanager
    def _changing(self):
        with open(self.path + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # (released when the file is closed)
            data = self._load()
            yield data
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(self.path) or ".", prefix=".keyring-")
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
            os.replace(tmp, self.path)

    def set_password(self, service, username, password):
        with self._changing() as data:
            data[f"{service}/{username}"] = password

    def get_password(self, service, username):
        return self._load().get(f"{service}/{username}")

    def delete_password(self, service, username):
        with self._changing() as data:
            if data.pop(f"{service}/{username}", None) is None:
                raise PasswordDeleteError("not found")


class LockedKeyring(KeyringBackend):
    priority = 1

    def set_password(self, service, username, password):
        raise KeyringLocked("the collection is locked")

    def get_password(self, service, username):
        raise KeyringLocked("the collection is locked")

    def delete_password(self, service, username):
        raise KeyringLocked("the collection is locked")


class BrokenKeyring(KeyringBackend):
    """Fails the way real backends do: a bare RuntimeError (and echoes what it was given)."""

    priority = 1

    def set_password(self, service, username, password):
        raise RuntimeError(f"backend crashed while storing {password}")

    def get_password(self, service, username):
        raise RuntimeError("backend crashed")

    def delete_password(self, service, username):
        raise RuntimeError("backend crashed")
