"""Locating a store: PostgreSQL in every spelling a user pastes, any other URI refused,
a password never shown or written into a path; and reads never create a store, in the
CLI and in the Python API alike."""
import os

import pytest

from claude_keys import AuthManager, InvalidInput, KeyStore, StoreError
from claude_keys.db import display, location
from tests.helpers.run import cli, create, proc

SPELLINGS = [
    "postgresql://claude:hunter22@db.internal:5432/claude",
    "postgres://claude:hunter22@db.internal/claude",
    "PostgreSQL://claude:hunter22@db.internal/claude",
    "POSTGRESQL://claude:hunter22@db.internal/claude",
    "postgresql+psycopg://claude:hunter22@db.internal/claude",
    "postgresql+psycopg2://claude:hunter22@db.internal/claude",
    "  postgresql://claude:hunter22@db.internal/claude\n",
    "postgresql://claude:hunter22/claude",  # no @: the password would read as a port
    "postgresql://db.internal/claude?user=claude&password=hunter22",
    "postgresql://db.internal/claude?user=claude&pass%77ord=hunter22",
    "host=db.internal dbname=claude user=claude password=hunter22",
    "host=db.internal dbname=claude password = 'hunter22 x'",
    "  dbname=claude password=hunter22",
]


@pytest.mark.one_backend
@pytest.mark.parametrize("spelling", SPELLINGS)
def test_every_postgresql_spelling_is_recognised_and_masked(spelling):
    kind, target = location.locate(spelling)
    assert kind == location.POSTGRES
    assert target.startswith(("postgresql:", "host=", "dbname="))  # what libpq takes
    assert "hunter22" not in display(spelling)


@pytest.mark.one_backend
@pytest.mark.parametrize("text, shown", [
    ("postgresql://db.internal:5432,replica:5433/claude", "postgresql://db.internal:5432,replica:5433/claude"),
    ("postgresql://[::1]:5432/claude", "postgresql://[::1]:5432/claude"),
    ("postgresql://u:pw/claude", "postgresql://u:***/claude"),
    ("postgresql:/claude", "postgresql:***"),
])
def test_masking_keeps_hosts_and_ports(text, shown):
    assert location.masked(location.locate(text)[1]) == shown


@pytest.mark.one_backend
@pytest.mark.parametrize("path", ["keys.db", "./postgresql", "C:\\stores\\keys.db", "weird:name.db",
                                  "host.db", "hosting=1.db"])
def test_a_path_stays_a_path(path):
    assert location.locate(path) == ("sqlite", path)


@pytest.mark.one_backend
@pytest.mark.parametrize("uri", ["mysql://root:hunter22@db/claude", "sqlite:///tmp/keys.db",
                                 "file:///tmp/keys.db", "HTTPS://user:hunter22@example.com/"])
def test_any_other_uri_is_refused_without_repeating_it(uri, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for run in (cli, proc):
        result = run("--db", uri, "keys", "create", "--project-id", "p", "--no-keyring")
        assert result.exit_code == 2, result
        assert "hunter22" not in result.stderr and "example.com" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    result = proc("keys", "list", env={"CLAUDE_API_DB": uri})
    assert result.exit_code == 2 and "hunter22" not in result.stderr
    with pytest.raises(InvalidInput) as raised:
        KeyStore(uri)
    assert "hunter22" not in str(raised.value)
    assert os.listdir(tmp_path) == []  # no folder named after the URI


@pytest.mark.one_backend
@pytest.mark.parametrize("spelling", SPELLINGS)
def test_a_password_is_never_printed_nor_made_a_path(spelling, tmp_path, monkeypatch):
    """Against a server that is not there (a closed port on this machine): `db path`
    and the connection error show the location masked, and nothing is created here."""
    closed = spelling.replace("db.internal:5432", "127.0.0.1:9").replace("db.internal", "127.0.0.1:9") \
        .replace("host=127.0.0.1:9", "host=127.0.0.1 port=9")
    monkeypatch.chdir(tmp_path)
    path = cli("--db", closed, "db", "path")
    assert path.exit_code == 0 and "hunter22" not in path.stdout
    monkeypatch.setenv("CLAUDE_API_TIMEOUT", "2")
    for run, args in ((cli, ["keys", "create", "--project-id", "p", "--no-keyring"]), (cli, ["keys", "list"]),
                      (proc, ["keys", "verify", "cc_x", "--json"])):  # (and once as a program of its own)
        result = run("--db", closed, *args)
        assert result.exit_code == 1, result
        assert "hunter22" not in result.stderr + result.stdout
    assert os.listdir(tmp_path) == []


@pytest.mark.one_backend
def test_bad_path_values_are_invalid_input():
    for value in ("\ud800", "a\x00b", 42, b"keys.db"):
        with pytest.raises(InvalidInput):
            KeyStore(value)


@pytest.mark.sqlite_only
def test_the_python_api_reads_never_create_a_file(tmp_path):
    typo = tmp_path / "typo" / "keys.db"
    store = KeyStore(typo)
    decision = store.check(key="cc_anything")
    assert decision.status == 503 and decision.body["error"]["type"] == "api_error"
    assert decision.exit_code == 1
    auth = AuthManager(typo)
    for call in (lambda: auth.validate_key("cc_x"), lambda: auth.authenticate({"x-api-key": "cc_x"}),
                 lambda: store.release("r-1")):
        with pytest.raises(StoreError):
            call()
    assert not typo.parent.exists()
    secret = auth.generate_key("p", use_keyring=False)  # a write sets the store up
    assert store.check(key=secret).allowed and typo.exists()


@pytest.mark.new_store
def test_the_python_api_reads_never_create_a_store(store_backend, isolated, tmp_path):
    """On a missing file or a PostgreSQL database claude-api has not set up: check is
    503, other reads raise StoreError, and nothing is created until a write."""
    def tables():
        if store_backend == "sqlite":
            return os.path.exists(isolated)
        import psycopg

        with psycopg.connect(isolated) as raw:
            return raw.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]

    assert not tables()
    store = KeyStore()
    assert store.check(key="cc_x").status == 503
    with pytest.raises(StoreError, match="no claude-api store|there is no store"):
        AuthManager().validate_key("cc_x")
    assert not tables()
    key = create()
    assert store.check(key=key["key"]).status == 200  # the same object, once a write set it up


@pytest.mark.sqlite_only
def test_verify_json_answers_503_when_there_is_no_store(tmp_path):
    missing = tmp_path / "nowhere" / "keys.db"
    for run in (cli, proc):
        result = run("--db", missing, "keys", "verify", "cc_x", "--json")
        assert result.exit_code == 1 and "there is no store" in result.stderr
        assert result.json() == {"allowed": False, "status": 503, "headers": {},
                                 "error": {"type": "api_error", "message": "the key store is unavailable"}}
    assert not missing.parent.exists()
