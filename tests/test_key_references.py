"""KEY references (keys.find): the full secret (whitespace around a pasted one ignored),
the id, a unique prefix of at least 4 characters, or a name unique among live keys;
anything else is an error that guesses nothing and echoes no secret."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_keys import KeyStore, PermissionManager
from claude_keys import db as store
from claude_keys.errors import AmbiguousKey, KeyNotFound
from claude_keys.keys import find
from tests.helpers.run import cli, create, one_error_line


def test_key_reference_by_secret_id_and_prefix():
    key = create()
    for ref in (key["key"], key["id"], key["id"][:4], key["id"][:8]):
        r = cli("keys", "show", ref, "--json")
        assert r.exit_code == 0 and r.json()["id"] == key["id"], ref


def test_bad_key_references_fail_without_guessing_or_echoing_secrets():
    key = create()
    tampered = key["key"][:-1] + ("A" if key["key"][-1] != "A" else "B")
    for ref, expected in [("", "empty"), ("ffffffffffff", "no key"), ("zzzz", "no key"),
                          (key["id"][:2], "at least 4"), (tampered, "checksum")]:
        r = cli("keys", "show", ref)
        assert r.exit_code == 1, (ref, r)
        assert expected in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert key["key"] not in r.stderr and (tampered not in r.stderr)


def test_ambiguous_prefix_is_an_error(monkeypatch):
    import claude_keys.keys as keys_lib

    ids = iter(["abcd00000001", "abcd00000002"])
    monkeypatch.setattr(keys_lib, "_new_id", lambda conn: next(ids))
    create()
    create()
    r = cli("keys", "show", "abcd")
    assert r.exit_code == 1 and "more than one key" in r.stderr
    assert cli("keys", "show", "abcd00000002").exit_code == 0


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


@pytest.fixture(scope="module")
def keyed_store(tmp_path_factory):
    from claude_keys import AuthManager

    db = tmp_path_factory.mktemp("refs") / "keys.db"
    auth = AuthManager(db)
    secrets = [auth.generate_key("p", use_keyring=False) for _ in range(30)]
    conn = store.connect(db)
    ids = [find(conn, s)["id"] for s in secrets]
    return conn, secrets, ids


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=200)
@given(st.text(max_size=60))
def test_any_reference_finds_one_key_or_fails_cleanly(keyed_store, ref):
    conn, secrets, ids = keyed_store
    try:
        row = find(conn, ref)
    except (KeyNotFound, AmbiguousKey) as e:
        assert "\n" not in str(e) and not any(s in str(e) for s in secrets)
        return
    # Found: then it was the secret, the id, or an unambiguous id prefix of 4+ characters.
    assert ref == row["id"] or ref in secrets or (len(ref) >= 4 and row["id"].startswith(ref)
                                                  and sum(i.startswith(ref) for i in ids) == 1)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_ids_prefixes_and_secrets_resolve(keyed_store, data):
    conn, secrets, ids = keyed_store
    i = data.draw(st.integers(0, len(ids) - 1))
    assert find(conn, secrets[i])["id"] == ids[i] and find(conn, ids[i])["id"] == ids[i]
    n = data.draw(st.integers(4, 12))
    prefix = ids[i][:n]
    if sum(other.startswith(prefix) for other in ids) == 1:
        assert find(conn, prefix)["id"] == ids[i]
    else:
        with pytest.raises(AmbiguousKey):
            find(conn, prefix)


def test_an_unknown_reference_is_named_with_its_option():
    """"no key matches that reference" (issue 20): name what was typed, and where, when
    it cannot be a secret."""
    create()
    for args in (["usage", "summary"], ["usage", "by-key"], ["audit"], ["usage", "export", "--format", "csv"]):
        one_error_line(cli(*args, "--key", "laptop-key"), 1, "no key matches --key 'laptop-key'")
    one_error_line(cli("keys", "show", "laptop"), 1, "no key matches 'laptop'")
    one_error_line(cli("usage", "record", "--key", "laptop-key", "--cost", "1"), 1, "--key 'laptop-key'")
    # What could be a secret is never repeated, only where it was given.
    secretish = "x" * 10 + "SeCrEt" * 4
    line = one_error_line(cli("usage", "summary", "--key", secretish), 1, "the --key reference")
    assert "SeCrEt" not in line


def test_an_empty_filtered_list_says_the_filter_matched_nothing():
    create()
    r = cli("keys", "list", "--profile", "Pro")
    assert r.exit_code == 0 and "no key matches --profile pro" in r.stdout + r.stderr, r
    assert "create one" not in r.stdout + r.stderr
    assert cli("keys", "list", "--profile", "Pro", "--json").json() == []
