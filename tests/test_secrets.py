"""Secrets: never in the database, its WAL, or any command's output (every command,
every format) except where showing it is the command's job: create, rotate, reveal."""
import click

from claude_keys import db as store
from tests.helpers.commands import base_args, commands
from tests.helpers.run import cli, create
from tests.helpers.store import dump

FORMATS = ["table", "json", "csv", "tsv", "plain", "github", "grid"]
SHOWS_A_SECRET = {("keys", "create"), ("keys", "rotate"), ("keys", "reveal")}


def test_no_secret_anywhere_it_should_not_be(isolated, tmp_path, store_backend):
    keys = [create("--profile", "free"), create("--no-keyring"), create("--name", "bot")]
    rotated = cli("keys", "rotate", keys[2]["id"], "--grace", "1h", "--json").json()
    cli("keys", "revoke", keys[1]["id"], "--force", "--reason", "test")
    cli("usage", "record", "--key", keys[0]["key"], "--input-tokens", "5", "--cost", "0.01")
    secrets = [k["key"] for k in keys] + [rotated["key"]]

    if store_backend == "sqlite":
        # Hold the WAL open while it is read (it is folded back into the file on close).
        holder = store.connect()
        holder.execute("BEGIN")
        holder.execute("SELECT count(*) FROM keys").fetchone()
        files = {p.name: p.read_bytes() for p in isolated.parent.iterdir()}
        holder.execute("COMMIT")
        holder.close()
        assert any(name.endswith("-wal") for name in files)
        for secret in secrets:
            for name, blob in files.items():
                assert secret.encode() not in blob and secret[3:].encode() not in blob, name
    stored = dump()
    backup = tmp_path / "copy.db"
    assert cli("db", "backup", backup).exit_code == 0
    for secret in secrets:
        assert secret not in stored and secret.encode() not in backup.read_bytes()

    record = tmp_path / "usage.jsonl"
    record.write_text(cli("usage", "export", "--format", "jsonl", "--period", "all").stdout)
    ran = 0
    for path, command in commands():
        if path in SHOWS_A_SECRET or path == ("keys", "revoke"):
            continue
        args = base_args(path, command, keys[0]["id"], record)
        has_format = any(getattr(p, "name", "") == "fmt" and isinstance(p.type, click.ParamType)
                         and not isinstance(p.type, click.Choice) for p in command.params)
        for fmt in FORMATS if has_format else [None]:
            result = cli(*args, *(["--format", fmt] if fmt else []), input="")
            output = result.stdout + result.stderr
            assert all(s not in output and s[3:23] not in output for s in secrets), (path, fmt)
            ran += 1
    assert ran > 60

    # The commands whose job it is show only their own key's secret.
    shown = cli("keys", "reveal", keys[0]["id"]).stdout
    assert keys[0]["key"] in shown and all(s not in shown for s in secrets[1:])
    new = cli("keys", "rotate", keys[0]["id"], "--json", "-y").json()
    assert all(s != new["key"] for s in secrets)


def test_the_secret_is_never_stored_or_listed(isolated, store_backend):
    keys = [create(), create("--profile", "free"), create("--no-keyring")]
    outputs = []
    for fmt in ("table", "json", "csv", "tsv", "github", "grid"):
        outputs.append(cli("keys", "list", "--format", fmt).stdout)
        for k in keys:
            outputs.append(cli("keys", "show", k["id"], "--format", fmt).stdout)
            outputs.append(cli("keys", "permissions", k["id"], "--format", fmt).stdout)
    outputs.append(cli("db", "check").stdout)
    blob = b"".join(p.read_bytes() for p in isolated.parent.iterdir()) if store_backend == "sqlite" else b""
    for k in keys:
        assert k["key"].encode() not in blob
        assert all(k["key"] not in out for out in outputs)
        assert all(k["key"][3:20] not in out for out in outputs)
    stored = dump()
    assert all(k["key"] not in stored for k in keys)


def test_secrets_are_compared_in_constant_time(monkeypatch, memory_keyring):
    """The one place a secret is compared in Python (reading it back from the keyring)
    uses hmac.compare_digest; everywhere else only SHA-256 digests are looked up."""
    import hmac

    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    key = create()
    assert cli("keys", "reveal", key["id"]).stdout.strip() == key["key"]
    assert calls
