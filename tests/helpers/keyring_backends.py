"""Keyring backends for tests, so no test ever touches the user's real keyring.

In-process tests install MemoryKeyring with keyring.set_keyring(); subprocesses get
FileKeyring through PYTHON_KEYRING_BACKEND=tests.helpers.keyring_backends.FileKeyring
(conftest puts the checkout on their PYTHONPATH).
LockedKeyring and BrokenKeyring stand in for a locked and a failing backend.
"""
import json
import os

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
    """A JSON file named by CLAUDE_API_TEST_KEYRING: shared by the processes of a test."""

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

    def _save(self, data):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, self.path)

    def set_password(self, service, username, password):
        data = self._load()
        data[f"{service}/{username}"] = password
        self._save(data)

    def get_password(self, service, username):
        return self._load().get(f"{service}/{username}")

    def delete_password(self, service, username):
        data = self._load()
        if data.pop(f"{service}/{username}", None) is None:
            raise PasswordDeleteError("not found")
        self._save(data)


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
