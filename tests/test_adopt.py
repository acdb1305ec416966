"""`keys import`: adopting plaintext tokens from API_KEYS / AUTH_TOKEN by digest only."""
import json

from tests.helpers.run import cli, proc
from tests.helpers.store import dump


def test_tokens_from_stdin_work_and_are_never_stored(isolated, store_backend):
    tokens = ["key-production-abc123", "key-staging-xyz789-0000", "third-token-0000000000"]
    r = cli("keys", "import", "--project-id", "legacy", "--profile", "pro", "--json",
            input=f"{tokens[0]},{tokens[1]}\n{tokens[2]}\n{tokens[0]}\n")
    assert r.exit_code == 0, r
    adopted = r.json()
    assert len(adopted) == 3 and all(a["imported"] and a["profile"] == "pro" for a in adopted)
    for token in tokens:
        answer = cli("keys", "verify", token, "--json").json()
        assert answer["allowed"] and answer["project_id"] == "legacy"
        assert token not in r.stdout and token not in r.stderr
    stored = dump()
    assert not any(t in stored for t in tokens)
    if store_backend == "sqlite":  # the file itself, its WAL and shared memory
        blob = b"".join(p.read_bytes() for p in isolated.parent.iterdir())
        assert not any(t.encode() in blob for t in tokens)
    again = cli("keys", "import", "--project-id", "legacy", "--json", input=tokens[1])
    assert again.json()[0]["imported"] is False and "already stored" in again.stderr
    assert len(cli("keys", "list", "--json").json()) == 3


def test_tokens_from_an_environment_variable():
    r = proc("keys", "import", "--project-id", "proxy", "--from-env", "AUTH_TOKEN", "--json",
             env={"AUTH_TOKEN": "your-secret-token-here"})
    assert r.exit_code == 0, r
    key = json.loads(r.stdout)[0]
    assert proc("keys", "verify", "your-secret-token-here").exit_code == 0
    r = proc("keys", "import", "--project-id", "x", "--from-env", "NOT_SET_ANYWHERE")
    assert r.exit_code == 2 and "not set" in r.stderr
    # An adopted key can be rotated to a generated one.
    new = json.loads(proc("keys", "rotate", key["id"], "--json", "--no-keyring", "-y").stdout)
    assert new["key"].startswith("cc_") and proc("keys", "verify", "your-secret-token-here").exit_code == 3


def test_bad_token_input():
    assert cli("keys", "import", "--project-id", "x", input="").exit_code == 2
    r = cli("keys", "import", "--project-id", "x", input="cc_" + "A" * 38)
    assert r.exit_code == 2 and "checksum" in r.stderr
    # A one-character "token" was adopted after a warning: now refused, nothing stored.
    for weak in ("x", "short", "a" * 19):
        r = cli("keys", "import", "--project-id", "x", input=weak)
        assert r.exit_code == 2 and "--allow-weak" in r.stderr and weak not in r.stderr, r
    assert cli("keys", "list", "--json").json() == []
    r = cli("keys", "import", "--project-id", "x", "--allow-weak", input="short")
    assert r.exit_code == 0 and "only 5 characters" in r.stderr and "short" not in r.stderr
    assert cli("keys", "import", "--project-id", "x", input="a" * 20).exit_code == 0


def test_hints_of_adopted_tokens_give_little_away():
    short, long = "legacy-0123456789", "L" * 20 + "tail"
    rows = cli("keys", "import", "--project-id", "x", "--json", "--allow-weak",
               input=f"{short}\n{long}\n").json()
    assert [r["hint"] for r in rows] == ["…", "…tail"]


def test_the_import_summary_speaks_proper_english():
    r = cli("keys", "import", "--project-id", "legacy", input="legacy-token-000000000001\n")
    assert r.stderr.strip().endswith("Adopted 1 token."), r
    r = cli("keys", "import", "--project-id", "legacy",
            input="legacy-token-000000000001\nlegacy-token-000000000002\nlegacy-token-000000000003\n")
    assert r.stderr.strip().endswith("Adopted 2 tokens; 1 was already stored."), r
    r = cli("keys", "import", "--project-id", "legacy",
            input="legacy-token-000000000001\nlegacy-token-000000000002\n")
    assert r.stderr.strip().endswith("Adopted 0 tokens; 2 were already stored."), r
