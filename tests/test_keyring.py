"""The OS keyring: stored when there is one, a warning when there is none, and no
half-created key when it refuses. Never the user's real keyring."""
import json

import keyring
import pytest

from tests.helpers.keyring_backends import BrokenKeyring, LockedKeyring
from tests.helpers.run import cli, proc

NO_BACKEND = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}


def test_no_backend_creates_the_key_with_one_warning():
    r = proc("keys", "create", "--project-id", "p", "--json", env=NO_BACKEND)
    assert r.exit_code == 0, r
    assert json.loads(r.stdout)["stored_in_keyring"] is False
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "shown only once" in lines[0]


@pytest.mark.parametrize("how", [["--no-keyring"], []])
def test_keyring_can_be_skipped_silently(how):
    env = {**NO_BACKEND, **({} if how else {"CLAUDE_API_NO_KEYRING": "1"})}
    r = proc("keys", "create", "--project-id", "p", "--json", *how, env=env)
    assert r.exit_code == 0 and r.stderr == "" and json.loads(r.stdout)["stored_in_keyring"] is False


def test_subprocesses_share_the_file_keyring():
    key = json.loads(proc("keys", "create", "--project-id", "p", "--json").stdout)
    assert key["stored_in_keyring"] is True
    assert proc("keys", "reveal", key["id"]).stdout.strip() == key["key"]


@pytest.mark.parametrize("backend, words", [(LockedKeyring, "locked"), (BrokenKeyring, "crashed")])
def test_a_refusing_keyring_creates_nothing(backend, words):
    keyring.set_keyring(backend())
    r = cli("keys", "create", "--project-id", "p")
    assert r.exit_code == 1 and words in r.stderr and "--no-keyring" in r.stderr, r
    assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""
    assert "cc_" not in r.stderr  # BrokenKeyring echoes the secret in its error: scrubbed
    assert cli("keys", "list", "--json").json() == []
    assert cli("keys", "create", "--project-id", "p", "--no-keyring", "-q").exit_code == 0


def test_reveal_and_revoke_with_a_refusing_keyring(memory_keyring):
    key = json.loads(cli("keys", "create", "--project-id", "p", "--json").stdout)
    keyring.set_keyring(LockedKeyring())
    r = cli("keys", "reveal", key["id"])
    assert r.exit_code == 1 and "could not be read" in r.stderr
    r = cli("keys", "revoke", key["id"], "--force")
    assert r.exit_code == 0 and "could not be removed" in r.stderr
    assert cli("keys", "show", key["id"], "--json").json()["status"] == "revoked"


def test_reveal_without_a_backend_says_so():
    key = json.loads(proc("keys", "create", "--project-id", "p", "--json", env=NO_BACKEND).stdout)
    r = proc("keys", "reveal", key["id"], env=NO_BACKEND)
    assert r.exit_code == 1 and "no OS keyring" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("backend", [LockedKeyring, BrokenKeyring])
def test_a_refusing_keyring_rotates_nothing(backend):
    key = json.loads(cli("keys", "create", "--project-id", "p", "--no-keyring", "--json").stdout)
    keyring.set_keyring(backend())
    r = cli("keys", "rotate", key["id"], "-y")
    assert r.exit_code == 1 and len(r.stderr.strip().splitlines()) == 1 and "cc_" not in r.stderr
    listed = cli("keys", "list", "--json").json()
    assert [(k["id"], k["status"]) for k in listed] == [(key["id"], "active")]
    assert cli("keys", "show", key["id"], "--json").json()["rotated_to"] is None
    assert cli("audit", "--json").json()[-1]["action"] == "create"
