"""An operator's first hour: what a newcomer types first, the store they point at, and
hostile values on every command line (issue 12)."""
import json
import os
from pathlib import Path

import pytest

from claude_keys import AuthManager, InvalidInput, KeyStore, PermissionManager
from tests.helpers.run import cli, create, proc
from tests.helpers.store import sql


def one_error_line(r, code=1, *texts):
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.exit_code == code and len(lines) == 1 and lines[0].startswith("Error: "), r
    assert "\\n" not in lines[0] and "Traceback" not in r.stderr, r
    for text in texts:
        assert text in lines[0], r
    return lines[0]


# -- first contact -----------------------------------------------------------------------

@pytest.mark.one_backend
@pytest.mark.parametrize("group", [[], ["keys"], ["usage"], ["db"], ["profiles"]])
def test_a_command_alone_prints_its_help(group):
    r = proc(*group)
    assert r.exit_code == 0 and r.stderr == "", r
    assert r.stdout.startswith(f"Usage: claude-api {' '.join(group)}".rstrip() + " [OPTIONS] COMMAND")
    assert "\nCommands:\n" in r.stdout and "\\n" not in r.stdout


@pytest.mark.one_backend
def test_short_version_flag():
    assert proc("-V").stdout == proc("--version").stdout == "claude-api, version 0.1.0\n"


def test_yes_is_accepted_where_force_is():
    a, b, c = create(), create(), create()
    for key, flag in ((a, "-y"), (b, "--yes"), (c, "--force")):
        r = cli("keys", "revoke", key["id"], flag)
        assert r.exit_code == 0 and "Revoked" in r.stderr, r
    assert {k["status"] for k in cli("keys", "list", "--json").json()} == {"revoked"}


def test_db_after_the_subcommand(tmp_path, store_target, monkeypatch):
    monkeypatch.delenv("CLAUDE_API_DB")
    target = str(store_target)
    key = json.loads(proc("keys", "create", "--project-id", "p", "--json", "--db", target).stdout)
    assert [k["id"] for k in json.loads(proc("keys", "list", "--json", "--db", target).stdout)] == [key["id"]]
    assert proc("keys", "verify", key["key"], "--db", target).exit_code == 0
    assert proc("usage", "record", "--key", key["id"], "--cost", "1", "--db", target).exit_code == 0
    assert json.loads(proc("usage", "summary", "--json", "--db", target).stdout)["requests"] == 1
    assert proc("db", "check", "--db", target).exit_code == 0
    # Either place works, the later one wins, and an empty one is refused.
    other = tmp_path / "other.db"
    assert proc("--db", target, "keys", "list", "--db", str(other)).exit_code == 1  # no store there
    one_error_line(proc("keys", "list", "--db", ""), 2, "--db", "empty")
    assert not other.exists()


def test_profile_names_in_any_case():
    key = create("--profile", "Pro")
    assert key["profile"] == "pro"
    assert [k["id"] for k in cli("keys", "list", "--profile", "PRO", "--json").json()] == [key["id"]]
    r = cli("keys", "permissions", key["id"], "--set-profile", "Enterprise", "--json")
    assert r.exit_code == 0 and r.json()["profile"] == "enterprise", r
    assert cli("profiles", "show", "Free", "--json").json()["name"] == "free"
    one_error_line(cli("keys", "create", "--project-id", "p", "--profile", "gold"), 2, "gold")
    # The Python API, everywhere a profile is taken.
    secret = AuthManager().generate_key("p", profile="Free", rate_limit=None, use_keyring=False)
    perm = PermissionManager()
    assert perm.get_profile(secret)["profile"] == "free"
    assert perm.apply_default_profile(secret, "PRO")["profile"] == "pro"
    assert perm.set_profile(secret, {"profile": "Enterprise "})["profile"] == "enterprise"
    with pytest.raises(InvalidInput):
        perm.apply_default_profile(secret, "platinum")


def test_a_unique_live_name_is_a_reference():
    prod = create("--name", "webshop-prod")
    create("--name", "ci")
    assert cli("keys", "show", "webshop-prod", "--json").json()["id"] == prod["id"]
    assert cli("usage", "record", "--key", "webshop-prod", "--cost", "1").exit_code == 0
    assert cli("usage", "summary", "--key", "webshop-prod", "--json").json()["requests"] == 1
    # Rotating gives the name to the new key: the retiring one no longer answers to it.
    new = cli("keys", "rotate", "webshop-prod", "--grace", "1h", "--json").json()
    assert cli("keys", "show", "webshop-prod", "--json").json()["id"] == new["id"]
    # Two live keys with one name: an error listing both ids, never a guess.
    twin = create("--name", "webshop-prod")
    line = one_error_line(cli("keys", "revoke", "webshop-prod", "--force"), 1, new["id"], twin["id"])
    assert "more than one key" in line
    assert {k["status"] for k in cli("keys", "list", "--json").json()} == {"active", "retiring"}  # none revoked
    one_error_line(cli("keys", "show", "no-such-name"), 1, "no key matches")


def test_a_pasted_secret_with_whitespace_is_found():
    key = create()
    for pasted in (f"  {key['key']}\n", f"\t{key['key']} "):
        assert cli("keys", "show", pasted, "--json").json()["id"] == key["id"]
        assert cli("keys", "verify", pasted).exit_code == 0
    assert cli("keys", "verify", "-", input=f"  {key['key']}  \n").exit_code == 0
    assert KeyStore().check(key=f" {key['key']}\n").allowed
    assert PermissionManager().get_profile(f"{key['key']}\n")["id"] == key["id"]


# -- the store ---------------------------------------------------------------------------

def _store_is_absent(store_backend, target) -> bool:
    if store_backend == "sqlite":
        return not os.path.lexists(target) and not os.path.lexists(os.path.dirname(target))
    from claude_keys import db as store
    from claude_keys.errors import StoreMissing

    try:
        store.connect(target, create=False).close()
    except StoreMissing:
        return True
    return False


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
    assert _store_is_absent(store_backend, target)


def test_profiles_need_no_store(store_backend, tmp_path, monkeypatch):
    """The presets are the product's: shown without a store (and without making one),
    with the default standard agents and a note saying so."""
    if store_backend == "sqlite":
        monkeypatch.setenv("CLAUDE_API_DB", str(tmp_path / "typo" / "keys.db"))
    r = cli("profiles", "list", "--json")
    assert r.exit_code == 0 and "showing the default standard agents" in r.stderr
    assert r.json()[1]["allowed_agents"] == ["code-reviewer", "security-auditor"]
    assert _store_is_absent(store_backend, os.environ["CLAUDE_API_DB"])


@pytest.mark.sqlite_only
def test_db_backup_of_no_store_creates_neither(tmp_path, monkeypatch):
    monkeypatch.setenv("CLAUDE_API_DB", str(tmp_path / "typo.db"))
    one_error_line(cli("db", "backup", tmp_path / "copy.db"), 1, "typo.db")
    one_error_line(cli("db", "copy", tmp_path / "typo.db", tmp_path / "copy.db"), 1, "typo.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.sqlite_only
def test_db_check_reports_damage(isolated):
    for i in range(40):
        create("--name", f"key number {i}")
    with open(isolated, "r+b") as f:  # scribble over a page of the keys table
        f.seek(3 * 1024)
        f.write(b"\xff" * 700)
    r = cli("db", "check")
    assert r.exit_code == 1 and "damaged" in r.stdout and "db check" not in r.stdout + r.stderr, r
    r = cli("db", "check", "--json")
    assert r.exit_code == 1 and r.json()["ok"] is False, r
    assert "malformed" in " ".join(r.json()["integrity"])


@pytest.mark.sqlite_only
def test_no_store_or_backup_is_created_through_a_dangling_symlink(tmp_path, monkeypatch):
    os.umask(0o022)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "keys.db"
    link.symlink_to(elsewhere / "planted.db")
    monkeypatch.setenv("CLAUDE_API_DB", str(link))
    one_error_line(cli("keys", "create", "--project-id", "p"), 1, "symbolic link")
    assert list(elsewhere.iterdir()) == []
    # A backup or a copy to a dangling link: refused, nothing written where it points.
    real = tmp_path / "real.db"
    monkeypatch.setenv("CLAUDE_API_DB", str(real))
    create()
    backup_link = tmp_path / "backup.db"
    backup_link.symlink_to(elsewhere / "backup.db")
    one_error_line(cli("db", "backup", backup_link), 1, "symbolic link")
    copy_link = tmp_path / "copy.db"
    copy_link.symlink_to(elsewhere / "copy.db")
    one_error_line(cli("db", "copy", real, copy_link), 1, "symbolic link")
    assert list(elsewhere.iterdir()) == []
    # A symlink to an existing store is fine, and a new store is still 0600.
    (tmp_path / "alias.db").symlink_to(real)
    assert len(cli("--db", tmp_path / "alias.db", "keys", "list", "--json").json()) == 1
    assert cli("--db", tmp_path / "fresh.db", "keys", "create", "--project-id", "p").exit_code == 0
    assert (tmp_path / "fresh.db").stat().st_mode & 0o777 == 0o600
    assert cli("db", "backup", tmp_path / "b.db").exit_code == 0
    assert (tmp_path / "b.db").stat().st_mode & 0o777 == 0o600


@pytest.mark.sqlite_only
def test_a_reader_who_may_not_write_can_list_and_report(tmp_path):
    """The store's owner writes; another user may read the file but not write it or its
    folder. Listings and reports work for them; a change is one clear line."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="claude-api-ro-"))  # outside pytest's 0700 folders
    try:
        db = folder / "keys.db"
        r = cli("--db", db, "keys", "create", "--project-id", "p", "--name", "shared", "--json")
        key = r.json()
        assert cli("--db", db, "usage", "record", "--key", key["id"], "--cost", "2").exit_code == 0
        assert sorted(p.name for p in folder.iterdir()) == ["keys.db"]  # no WAL or shared memory left
        os.chmod(db, 0o644)
        os.chmod(folder, 0o755)
        results = _as_another_user([
            ["--db", str(db), "keys", "list", "--json"],
            ["--db", str(db), "keys", "show", "shared", "--json"],
            ["--db", str(db), "usage", "summary", "--period", "all", "--json"],
            ["--db", str(db), "audit", "--json"],
            ["--db", str(db), "keys", "create", "--project-id", "q"],
        ])
        (code, out, err), *_ = results
        assert code == 0 and json.loads(out)[0]["id"] == key["id"], results[0]
        assert results[1][0] == 0 and json.loads(results[1][1])["name"] == "shared", results[1]
        assert results[2][0] == 0 and json.loads(results[2][1])["cost_usd"] == 2, results[2]
        assert results[3][0] == 0, results[3]
        code, out, err = results[4]
        assert code == 1 and err.startswith("Error: ") and len(err.splitlines()) == 1, results[4]
        assert sorted(p.name for p in folder.iterdir()) == ["keys.db"]
    finally:
        import shutil

        shutil.rmtree(folder)


def _as_another_user(commands):
    """Run CLI commands in a child process that may read the store but not write it:
    as root, a child that became `nobody`; otherwise the files lose their write bits."""
    if os.getuid() != 0:
        pytest.skip("needs root to become another user (as the store's owner, chmod does not bind)")
    # What the commands import, imported now: `nobody` may not read this Python's folder.
    from click.testing import CliRunner

    import claude_keys.audit  # noqa: F401
    import claude_keys.cli.audit  # noqa: F401
    import claude_keys.cli.keys  # noqa: F401
    import claude_keys.cli.usage  # noqa: F401
    import claude_keys.pricing  # noqa: F401
    import claude_keys.render  # noqa: F401
    import claude_keys.reports  # noqa: F401
    import claude_keys.vault  # noqa: F401
    from claude_keys.cli import cli as root

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            out = []
            for args in commands:
                result = CliRunner().invoke(root, args, catch_exceptions=True)
                out.append((result.exit_code, result.stdout, result.stderr + (
                    repr(result.exception) if result.exception and not isinstance(result.exception, SystemExit) else "")))
            os.write(write, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 65536):
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    return json.loads(data)


# -- hostile values on the command line ---------------------------------------------------

HOSTILE_TEXT = {
    "a C1 control (one-byte CSI)": "proj\x9b31mred",
    "an escape sequence": "proj\x1b[2J",
    "a bidi override": "gnp\u202eexe.txt",
    "a bidi isolate": "a\u2066b\u2069",
    "a line separator": "a\u2028b",
    "invalid UTF-8": "a\udcffb",
}


@pytest.mark.parametrize("what", HOSTILE_TEXT, ids=list(HOSTILE_TEXT))
def test_one_gate_for_text_on_the_command_line(what):
    bad = HOSTILE_TEXT[what]
    key = create()
    for args in (("keys", "create", "--project-id", bad), ("keys", "create", "--project-id", "p", "--name", bad),
                 ("keys", "revoke", key["id"], "--force", "--reason", bad),
                 ("usage", "record", "--key", key["id"], "--model", bad),
                 ("usage", "record", "--key", key["id"], "--request-id", bad),
                 ("keys", "permissions", key["id"], "--allow-tool", bad),
                 ("profiles", "standard-agents", "--add", bad),
                 # spend control and usage imports
                 ("projects", "set", bad, "--rate-limit", "5"), ("projects", "show", bad),
                 ("keys", "disable", key["id"], "--reason", bad), ("keys", "edit", key["id"], "--name", bad),
                 ("keys", "release", bad), ("usage", "delete", bad, "-y"),
                 ("usage", "delete", "--project-id", bad, "--since", "7d", "-y"),
                 ("usage", "summary", "--by", "project,model", "--project-id", bad),
                 ("usage", "blocks", "--project-id", bad), ("usage", "export", "--format", "csv", "--project-id", bad)):
        one_error_line(cli(*args), 2)
    assert [k["status"] for k in cli("keys", "list", "--json").json()] == ["active"]
    assert cli("keys", "show", key["id"], "--json").json()["name"] is None
    assert sql("SELECT count(*) FROM usage") == [(0,)]
    assert sql("SELECT count(*) FROM projects") == [(0,)]


def test_every_kind_of_text_has_a_length_cap():
    key = create()
    for args in (("keys", "create", "--project-id", "p" * 257), ("keys", "create", "--project-id", "p", "--name", "n" * 257),
                 ("usage", "record", "--key", key["id"], "--model", "m" * 200_000),
                 ("usage", "record", "--key", key["id"], "--request-id", "r" * 257),
                 ("keys", "revoke", key["id"], "--force", "--reason", "x" * 1001),
                 ("keys", "disable", key["id"], "--reason", "x" * 1001), ("keys", "edit", key["id"], "--name", "n" * 257),
                 ("keys", "release", "r" * 257), ("usage", "delete", "r" * 257, "-y"),
                 ("projects", "set", "p" * 257, "--rate-limit", "5")):
        one_error_line(cli(*args), 2, "too long")
    with pytest.raises(InvalidInput):
        KeyStore().record_usage(key["id"], model="m" * 200_000)
    assert sql("SELECT count(*) FROM usage") == [(0,)]


def test_bad_numbers_are_bad_input():
    key = create()
    one_error_line(cli("usage", "record", "--key", key["id"], "--cost", "9" * 5000), 2, "too large")
    one_error_line(cli("keys", "verify", key["key"], "--cost", "1" + "0" * 4999), 2, "too large")
    r = cli("keys", "create", "--project-id", "p", "--max-cost", "0." + "0" * 5000 + "1", "--json")
    assert r.exit_code == 0  # a long but valid amount: it rounds to $0
    for zone in ("Europe", "Europe/", "../../etc/passwd", "x" * 300):
        one_error_line(cli("usage", "summary", "--tz", zone), 2, "time zone")


def test_the_import_summary_speaks_proper_english():
    r = cli("keys", "import", "--project-id", "legacy", input="legacy-token-000000000001\n")
    assert r.stderr.strip().endswith("Adopted 1 token."), r
    r = cli("keys", "import", "--project-id", "legacy",
            input="legacy-token-000000000001\nlegacy-token-000000000002\nlegacy-token-000000000003\n")
    assert r.stderr.strip().endswith("Adopted 2 tokens; 1 was already stored."), r
    r = cli("keys", "import", "--project-id", "legacy",
            input="legacy-token-000000000001\nlegacy-token-000000000002\n")
    assert r.stderr.strip().endswith("Adopted 0 tokens; 2 were already stored."), r


def test_the_progress_description_is_never_markup():
    from claude_keys.cli.usage import _described

    assert _described("logs of [bold]proj[/x]") == "logs of \\[bold]proj\\[/x]"
