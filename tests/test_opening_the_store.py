"""Opening the store: which one (--db, CLAUDE_API_DB, the default under the user's
config folder), never created by a command that only reads, and one clear line when
it cannot be opened: a server that does not answer, no psycopg, a password in the URI
never shown. (Locations in every spelling: test_store_location.py; SQLite's own files:
test_sqlite_store.py.)"""
import os

import pytest

from claude_keys import KeyStore
from tests.helpers.run import cli, one_error_line, proc
from tests.helpers.store import store_is_absent


@pytest.mark.one_backend
def test_path_precedence(tmp_path, monkeypatch):
    flag = tmp_path / "flag.db"
    assert cli("--db", flag, "db", "path").stdout.strip() == str(flag)
    assert cli("db", "path").stdout.strip() == os.environ["CLAUDE_API_DB"]
    monkeypatch.delenv("CLAUDE_API_DB")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cli("db", "path").stdout.strip() == str(tmp_path / "xdg" / "claude-api" / "keys.db")


@pytest.mark.one_backend
def test_an_empty_db_option_is_refused_but_an_empty_variable_is_unset(monkeypatch, tmp_path):
    r = cli("--db", "", "keys", "list")
    assert r.exit_code == 2 and "store path is empty" in r.stderr
    monkeypatch.setenv("CLAUDE_API_DB", "")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert cli("db", "path").stdout.strip() == str(tmp_path / "xdg" / "claude-api" / "keys.db")


NOT_CREATING = [
    ("keys", "list"), ("keys", "show", "abcd1234abcd"), ("keys", "permissions", "abcd1234"),
    ("keys", "reveal", "abcd1234"), ("keys", "verify", "cc_" + "A" * 38), ("keys", "verify", "x" * 30),
    ("keys", "revoke", "abcd1234", "--force"), ("keys", "rotate", "abcd1234"),
    ("keys", "permissions", "abcd1234", "--rate-limit", "5"),
    ("usage", "summary"), ("usage", "by-key"), ("usage", "by-project"), ("usage", "export", "--format", "csv"),
    ("usage", "record", "--key", "abcd1234", "--cost", "1"), ("audit",), ("db", "check"), ("db", "check", "--json"),
    # Spend control and usage imports: reading, and changing what must already exist.
    ("projects", "list"), ("projects", "list", "--json"), ("projects", "show", "p"), ("usage", "blocks"),
    ("usage", "blocks", "--json"), ("usage", "summary", "--by", "day,model"), ("usage", "summary", "--by", "session"),
    ("usage", "export", "--format", "jsonl"), ("keys", "disable", "abcd1234"), ("keys", "enable", "abcd1234"),
    ("keys", "edit", "abcd1234", "--name", "n"), ("keys", "release", "req-1"), ("usage", "delete", "req-1", "-y"),
    ("usage", "delete", "--project-id", "p", "--since", "7d", "--until", "1d", "-y"),
]


@pytest.mark.new_store
@pytest.mark.parametrize("args", NOT_CREATING, ids=lambda a: " ".join(a)[:40])
def test_commands_that_only_read_never_create_a_store(store_backend, tmp_path, monkeypatch, args):
    if store_backend == "sqlite":
        target = str(tmp_path / "typo" / "keys.db")
        monkeypatch.setenv("CLAUDE_API_DB", target)
        expected = target
    else:  # a database claude-api has not set up: not set up by a read either
        target = os.environ["CLAUDE_API_DB"]
        expected = "no claude-api store yet"
    r = cli(*args)
    one_error_line(r, 1, expected)
    assert r.stdout == ""
    assert store_is_absent(store_backend, target)


@pytest.mark.one_backend
def test_a_password_in_the_uri_is_never_printed(postgres, tmp_path):
    secret_uri = postgres.uri("no_such_database").replace("postgresql:///", "postgresql://postgres:hunter2@/")
    shown = cli("--db", secret_uri, "db", "path")
    assert shown.exit_code == 0 and "hunter2" not in shown.stdout and "***" in shown.stdout
    for args in (["keys", "list"], ["db", "check"], ["keys", "verify", "cc_abc"]):
        line = one_error_line(proc("--db", secret_uri, *args))
        assert "hunter2" not in line and "no_such_database" in line
    param_uri = postgres.uri("no_such_database", password="hunter2")
    assert "hunter2" not in cli("--db", param_uri, "db", "path").stdout
    assert "hunter2" not in one_error_line(cli("--db", param_uri, "keys", "list"))


@pytest.mark.one_backend
@pytest.mark.parametrize("uri", [
    "postgresql://bob:s3cr?tpw@localhost/db",  # libpq takes a `?` before the `@` as the password's
    "postgresql://bob:s3cr#tpw@localhost/db",
    "postgresql://bob:s3crtpw@[::1/db",  # libpq's parse error quotes the whole URI
    "postgresql://bob:s3cr%zztpw@localhost/db",
    "postgresql:///db?host=/nowhere&pass%77ord=s3crtpw",  # a parameter name percent-encoded
    "postgresql:///db?host=/nowhere&sslpassword=s3crtpw",
    "postgresql://bob:s3cr@tpw@localhost/db",  # an unencoded @: libpq's host is then `tpw@localhost`
    "postgresql://bob:s3cr/tpw@localhost/db",  # an unencoded /
    "postgresql:///db?host=/nowhere&password=s3crtpw&user=a@b",
])
def test_no_spelling_of_a_password_is_printed(uri):
    assert "s3cr" not in cli("--db", uri, "db", "path").stdout
    line = one_error_line(proc("--db", uri, "keys", "list"))
    assert "s3cr" not in line and "tpw" not in line, line


@pytest.mark.one_backend
def test_an_unreachable_server_is_one_clear_line(tmp_path):
    uri = f"postgresql:///claude?host={tmp_path}&connect_timeout=2"
    line = one_error_line(proc("--db", uri, "keys", "list"), 1, "cannot connect to the store")
    assert str(tmp_path) in line
    assert KeyStore(uri).check(key="cc_anything").body["error"] == {
        "type": "api_error", "message": "the key store is unavailable"}


@pytest.mark.one_backend
def test_without_psycopg_a_uri_says_what_to_install(tmp_path):
    shadow = tmp_path / "shadow" / "psycopg"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('psycopg is not installed')\n")
    env = {"PYTHONPATH": f"{shadow.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    line = one_error_line(proc("--db", "postgresql:///claude", "keys", "list", env=env))
    assert "pip install 'claude-api[postgres]'" in line
