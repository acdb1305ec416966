"""A key's owner and metadata (claude_keys/labels.py, issue 17): set, replaced and
removed with `keys create` / `keys edit` / `keys import`; shown by `keys show` and
`keys list`; filtered on by `keys list --owner --meta`; kept by rotation for the whole
lineage; audited per metadata key; copied by `db backup`; and grouped on by reports
(`usage summary --by owner`, `--by meta.KEY`), whose groups add up to the keys' sums
and to the total. Hostile text is refused in one line (exit 2), the store unchanged."""
import json

import pytest

from tests.helpers.hostile import BAD_TEXT
from tests.helpers.run import cli, create, one_error_line, proc, record_at, report
from tests.helpers.store import dump, sql

DAY = "2026-03-02T10:00:00Z"


def show(key_id) -> dict:
    r = cli("keys", "show", key_id, "--json")
    assert r.exit_code == 0, r
    return r.json()


def listed(*filters) -> list:
    r = cli("keys", "list", *filters, "--json")
    assert r.exit_code == 0, r
    return [k["id"] for k in r.json()]


def edit(key_id, *args) -> dict:
    r = cli("keys", "edit", key_id, *args, "--json")
    assert r.exit_code == 0, r
    return r.json()


# -- set, replace, remove ---------------------------------------------------------------

def test_create_sets_owner_and_metadata_and_list_and_show_carry_them():
    key = create("--owner", "ana@example.com", "--meta", "team=search", "--meta", "env=prod",
                 "--meta", "note=a=b c")  # a value is everything after the first '='
    bare = create()
    shown = show(key["id"])
    assert shown["owner"] == "ana@example.com"
    assert shown["metadata"] == {"env": "prod", "note": "a=b c", "team": "search"}
    rows = {k["id"]: k for k in cli("keys", "list", "--json").json()}
    assert rows[key["id"]]["owner"] == "ana@example.com" and rows[key["id"]]["metadata"]["team"] == "search"
    # Always present: null and {} when unset.
    assert rows[bare["id"]]["owner"] is None and rows[bare["id"]]["metadata"] == {}
    assert show(bare["id"])["owner"] is None and show(bare["id"])["metadata"] == {}


def test_edit_replaces_and_removes_entries_and_clears_the_owner():
    key = create("--owner", "ana", "--meta", "team=search", "--meta", "env=prod")
    after = edit(key["id"], "--meta", "team=ads", "--meta", "env=", "--meta", "cost-center=4711")
    assert after["metadata"] == {"cost-center": "4711", "team": "ads"}
    assert after["owner"] == "ana"  # untouched when not given
    assert edit(key["id"], "--owner", "")["owner"] is None
    assert edit(key["id"], "--meta", "missing=")["metadata"] == {"cost-center": "4711", "team": "ads"}
    assert show(key["id"])["metadata"] == {"cost-center": "4711", "team": "ads"}
    # In order: a later entry for the same key wins.
    assert edit(key["id"], "--meta", "team=x", "--meta", "team=y")["metadata"]["team"] == "y"
    # Nothing given at all is a usage error.
    one_error_line(cli("keys", "edit", key["id"]), 2, "--owner or --meta")


def test_show_for_people_has_a_row_per_entry():
    key = create("--owner", "ana", "--meta", "cost_center=4711")
    out = cli("keys", "show", key["id"]).stdout
    assert "owner" in out and "ana" in out
    assert "meta.cost_center" in out and "4711" in out  # spelled as given, not "cost center"
    assert "metadata" in cli("keys", "show", create()["id"]).stdout  # "metadata  none"


def test_storage_is_one_owner_column_and_json_metadata():
    key = create("--owner", "ana", "--meta", "b=2", "--meta", "a=1")
    assert sql("SELECT owner, metadata FROM keys WHERE id = ?", (key["id"],)) == [("ana", '{"a":"1","b":"2"}')]
    edit(key["id"], "--meta", "a=", "--meta", "b=")
    assert sql("SELECT metadata FROM keys WHERE id = ?", (key["id"],)) == [(None,)]


# -- filters ----------------------------------------------------------------------------

def test_list_filters_by_owner_and_every_meta_entry():
    a = create("--owner", "ana", "--meta", "team=search", "--meta", "env=prod")["id"]
    b = create("--owner", "ana", "--meta", "team=search", "--meta", "env=dev")["id"]
    c = create("--owner", "bob", "--meta", "team=ads")["id"]
    d = create()["id"]
    assert listed("--owner", "ana") == [a, b]
    assert listed("--meta", "team=search") == [a, b]
    assert listed("--meta", "team=search", "--meta", "env=prod") == [a]  # all must match
    assert listed("--owner", "ana", "--meta", "env=dev") == [b]
    assert listed("--meta", "team=") == [d]  # KEY=: keys without KEY
    assert listed("--owner", "") == [d]  # '': keys without an owner
    assert listed("--owner", "bob", "--project-id", "p", "--status", "active") == [c]
    assert listed("--owner", "ANA") == []  # exact, as every text
    r = cli("keys", "list", "--meta", "team=nope")
    assert r.exit_code == 0 and "no key matches --meta team=nope" in r.stderr
    assert cli("keys", "list", "--owner", "zed", "--json").json() == []


def test_list_formats():
    create("--owner", "ana", "--meta", "team=search", "--meta", "env=prod")
    plain = create()
    csv = cli("keys", "list", "--format", "csv").stdout.splitlines()
    assert csv[0].endswith(",owner,metadata")  # a fixed header for scripts
    assert csv[1].endswith(',ana,"{""env"":""prod"",""team"":""search""}"')
    assert csv[2].endswith(",,{}")
    table = cli("keys", "list").stdout
    assert "owner" in table and "env=prod, team=search" in table
    # A store without labels lists as before: no empty owner or metadata column.
    cli("keys", "revoke", plain["id"], "-y")
    assert "owner" not in cli("keys", "list", "--status", "revoked").stdout


# -- the text gate -----------------------------------------------------------------------

@pytest.mark.parametrize("what", sorted(BAD_TEXT))
def test_hostile_owner_and_metadata_are_refused_in_one_line(what):
    bad = BAD_TEXT[what]
    key = create("--owner", "ana", "--meta", "team=search")
    before = dump()
    for args in (["keys", "create", "--project-id", "p", "--owner", bad],
                 ["keys", "create", "--project-id", "p", "--meta", f"team={bad}"],
                 ["keys", "create", "--project-id", "p", "--meta", f"{bad}=x"],
                 ["keys", "edit", key["id"], "--owner", bad],
                 ["keys", "edit", key["id"], "--meta", f"team={bad}"],
                 ["keys", "edit", key["id"], "--meta", f"{bad}=x"],
                 ["keys", "list", "--owner", bad],
                 ["keys", "list", "--meta", f"team={bad}"],
                 ["usage", "summary", "--by", f"meta.{bad}"]):
        one_error_line(cli(*args), 2)
    assert dump() == before


@pytest.mark.parametrize("entry, says", [
    ("team", "not KEY=VALUE"), ("=x", "metadata key"), ("a b=x", "metadata key"),
    ("-team=x", "metadata key"), (".team=x", "metadata key"), ("k" * 65 + "=x", "metadata key"),
    ("t\u00e9am=x", "metadata key"), ("team=" + "v" * 257, "too long"),
])
def test_metadata_shape_and_length_limits(entry, says):
    key = create()
    one_error_line(cli("keys", "edit", key["id"], "--meta", entry), 2, says)
    one_error_line(cli("keys", "create", "--project-id", "p", "--meta", entry), 2, says)
    assert show(key["id"])["metadata"] == {}


def test_limits_that_still_pass():
    key = create("--owner", "o" * 256, "--meta", "k" * 64 + "=" + "v" * 256, "--meta", "a.b_c-9=ünïcödé ok")
    assert show(key["id"])["metadata"]["a.b_c-9"] == "ünïcödé ok"
    one_error_line(cli("keys", "edit", key["id"], "--owner", "o" * 257), 2, "too long")


def test_at_most_32_entries():
    many = [a for i in range(32) for a in ("--meta", f"k{i}=v")]
    key = create(*many)
    assert len(show(key["id"])["metadata"]) == 32
    before = dump()
    one_error_line(cli("keys", "edit", key["id"], "--meta", "one=more"), 2, "at most 32")
    one_error_line(cli("keys", "create", "--project-id", "p", *many, "--meta", "k99=v"), 2, "at most 32")
    assert dump() == before
    # Replacing one, or removing one and adding another, stays within the limit.
    assert edit(key["id"], "--meta", "k0=", "--meta", "new=v")["metadata"]["new"] == "v"


def test_hostile_text_through_the_real_executable():
    r = proc("keys", "create", "--project-id", "p", "--owner", "ana\x1b[2Jx")
    one_error_line(r, 2, "--owner", "control characters")
    r = proc("keys", "create", "--project-id", "p", "--meta", "team=\u202eadmin")
    one_error_line(r, 2, "--meta", "bidirectional")
    assert sql("SELECT count(*) FROM keys") == [(0,)]


def test_python_api_takes_and_checks_them():
    from claude_keys import AuthManager, PermissionManager
    from claude_keys.errors import InvalidInput

    auth = AuthManager()
    secret = auth.generate_key("p", owner="svc-search", metadata={"team": "search", "tier": None},
                               use_keyring=False)
    key_id = PermissionManager().get_profile(secret)["id"]
    assert (show(key_id)["owner"], show(key_id)["metadata"]) == ("svc-search", {"team": "search"})
    for bad in ({"team": 1}, {"bad key": "x"}, ["team=x"], {"team": "\x1b[31m"},
                {f"k{i}": "v" for i in range(33)}):
        with pytest.raises(InvalidInput):
            auth.generate_key("p", metadata=bad, use_keyring=False)
    with pytest.raises(InvalidInput):
        auth.generate_key("p", owner="a\u2066b", use_keyring=False)
    assert len(listed()) == 1


# -- the lineage: rotation, editing through an old secret ---------------------------------

def test_rotation_keeps_them_and_they_belong_to_the_lineage():
    key = create("--owner", "ana", "--meta", "team=search")
    new = cli("keys", "rotate", key["id"], "--grace", "1h", "--json").json()
    assert (show(new["id"])["owner"], show(new["id"])["metadata"]) == ("ana", {"team": "search"})
    # Changed through either secret, they change for both (and for a revoked ancestor too).
    edit(key["id"], "--owner", "bob", "--meta", "team=ads")
    for k in (key["id"], new["id"]):
        assert (show(k)["owner"], show(k)["metadata"]) == ("bob", {"team": "ads"})
    newer = cli("keys", "rotate", new["id"], "-y", "--json").json()  # no grace: `new` is revoked now
    edit(newer["id"], "--meta", "team=infra")
    assert {show(k)["metadata"]["team"] for k in (key["id"], new["id"], newer["id"])} == {"infra"}
    assert listed("--meta", "team=infra", "--status", "all") == [key["id"], new["id"], newer["id"]]


def test_a_revoked_key_cannot_be_relabelled():
    key = create("--owner", "ana")
    cli("keys", "revoke", key["id"], "-y")
    one_error_line(cli("keys", "edit", key["id"], "--owner", "bob"), 1, "revoked")
    assert show(key["id"])["owner"] == "ana"


# -- audit ------------------------------------------------------------------------------------

def test_audit_names_each_metadata_key_that_changed():
    key = create("--owner", "ana", "--meta", "team=search", "--meta", "env=prod")
    edit(key["id"], "--owner", "", "--meta", "team=ads", "--meta", "env=", "--meta", "tier=gold")
    trail = cli("audit", "--key", key["id"], "--json").json()
    created, edited = trail[-2], trail[-1]
    assert created["action"] == "create"
    assert created["changes"]["owner"] == [None, "ana"]
    assert created["changes"]["meta.team"] == [None, "search"]
    assert edited["action"] == "edit"
    assert edited["changes"] == {"owner": ["ana", None], "meta.team": ["search", "ads"],
                                 "meta.env": ["prod", None], "meta.tier": [None, "gold"]}
    lines = cli("audit", "--key", key["id"]).stdout
    assert "meta.team: search -> ads" in lines and "owner: ana -> -" in lines
    assert "meta.env: prod -> -" in lines and "meta.tier: - -> gold" in lines
    # Nothing changed: nothing audited.
    edit(key["id"], "--meta", "tier=gold")
    assert len(cli("audit", "--key", key["id"], "--json").json()) == len(trail)


# -- keys import, db backup ---------------------------------------------------------------------

def test_import_labels_the_keys_it_makes():
    tokens = "tok_" + "a" * 30 + "\n" + "tok_" + "b" * 30 + "\n"
    r = cli("keys", "import", "--project-id", "legacy", "--owner", "ops", "--meta", "source=env",
            "--json", input=tokens)
    assert r.exit_code == 0, r
    rows = r.json()
    assert [(k["owner"], k["metadata"]) for k in rows] == [("ops", {"source": "env"})] * 2
    # A token already stored keeps its own labels.
    again = cli("keys", "import", "--project-id", "legacy", "--owner", "other", "--json", input=tokens).json()
    assert [k["owner"] for k in again] == ["ops", "ops"] and not any(k["imported"] for k in again)


@pytest.mark.parametrize("how", ["backup", "copy"])
def test_backup_and_copy_carry_them(tmp_path, how, store_target):
    key = create("--owner", "ana", "--meta", "team=search")
    target = tmp_path / f"{how}.db"
    r = cli("db", how, target) if how == "backup" else cli("db", "copy", store_target, target)
    assert r.exit_code == 0, r
    rows = json.loads(proc("keys", "list", "--json", "--db", target).stdout)
    assert [(k["id"], k["owner"], k["metadata"]) for k in rows] == [(key["id"], "ana", {"team": "search"})]


# -- reports ----------------------------------------------------------------------------------

@pytest.fixture
def labelled_usage(tmp_path):
    """Keys with and without labels, a rotated lineage, and usage without a key."""
    a = create("--owner", "ana", "--meta", "team=search")
    b = create("--owner", "ana", "--meta", "team=ads", "--project-id", "q")
    c = create("--owner", "bob", "--meta", "team=search")
    d = create()  # no owner, no metadata
    a2 = cli("keys", "rotate", a["id"], "--grace", "1h", "--json").json()  # a's lineage
    for key, cost, at in ((a, "1.000000001", DAY), (a, "2.5", "2026-03-03T01:00:00Z"), (a2, "0.25", DAY),
                          (b, "3", DAY), (c, "0.75", "2026-03-04T23:59:00Z"), (d, "10", DAY)):
        record_at(key["id"], at, cost=cost)
    records = tmp_path / "keyless.jsonl"
    records.write_text(json.dumps({"project_id": "x", "at": DAY, "model": "claude-haiku-4-5",
                                   "cost_usd": "0.5", "request_id": "no-key-1"}) + "\n")
    assert cli("usage", "import", records, "--format", "jsonl").exit_code == 0
    return {"a": a["id"], "a2": a2["id"], "b": b["id"], "c": c["id"], "d": d["id"]}


def _nanos(row) -> int:
    return round(row["cost_usd"] * 1_000_000_000)


def test_by_meta_team_sums_equal_the_keys_sums_and_the_total(labelled_usage):
    window = ("--period", "all")
    by_key = {r["key_id"]: r for r in report("summary", "--by", "key", *window)}
    by_team = {r["meta.team"]: r for r in report("summary", "--by", "meta.team", *window)}
    total = report("summary", *window)
    ids = labelled_usage
    expected = {
        "search": [ids["a"], ids["a2"], ids["c"]],  # a rotated key's usage goes with its lineage
        "ads": [ids["b"]],
        None: [ids["d"], None],  # a key without the entry, and usage without a key
    }
    assert set(by_team) == set(expected)
    for team, keys in expected.items():
        for counter in ("requests", "input_tokens", "output_tokens", "total_tokens"):
            assert by_team[team][counter] == sum(by_key[k][counter] for k in keys), (team, counter)
        assert _nanos(by_team[team]) == sum(_nanos(by_key[k]) for k in keys)
    assert _nanos(by_team["search"]) == 4_500_000_001  # exact to the nano-dollar
    assert sum(r["requests"] for r in by_team.values()) == total["requests"] == 7
    assert sum(_nanos(r) for r in by_team.values()) == _nanos(total) == 18_000_000_001


def test_by_owner_and_pairs(labelled_usage):
    window = ("--period", "all")
    by_owner = {r["owner"]: _nanos(r) for r in report("summary", "--by", "owner", *window)}
    assert by_owner == {"ana": 6_750_000_001, "bob": 750_000_000, None: 10_500_000_000}
    # Paired with a period: each day's owners add up to the day.
    days = report("summary", "--by", "day,owner", *window)
    per_day = {}
    for r in days:
        per_day[r["period"]] = per_day.get(r["period"], 0) + _nanos(r)
    assert per_day == {r["period"]: _nanos(r) for r in report("summary", "--by", "day", *window)}
    assert {(r["period"], r["owner"]) for r in days} >= {("2026-03-02", "ana"), ("2026-03-04", "bob")}
    # Paired with another level, and two labels at once.
    pairs = report("summary", "--by", "owner,meta.team", *window)
    assert {(r["owner"], r["meta.team"]): _nanos(r) for r in pairs} == {
        ("ana", "search"): 3_750_000_001, ("ana", "ads"): 3_000_000_000,
        ("bob", "search"): 750_000_000, (None, None): 10_500_000_000}
    by_project = report("summary", "--by", "meta.team,project", *window)
    assert {(r["meta.team"], r["project_id"]) for r in by_project} == {
        ("search", "p"), ("ads", "q"), (None, "p"), (None, "x")}
    # Filters apply before grouping; a time window too.
    assert [(r["owner"], _nanos(r)) for r in report("summary", "--by", "owner", "--project-id", "q",
                                                    *window)] == [("ana", 3_000_000_000)]
    assert {r["owner"]: _nanos(r) for r in report("summary", "--by", "owner", "--since", "2026-03-03",
                                                  "--until", "2026-03-03")} == {"ana": 2_500_000_000}
    # A metadata key no key has: everything in the (none) group.
    assert [r["meta.nothing"] for r in report("summary", "--by", "meta.nothing", *window)] == [None]


def test_groups_follow_the_keys_labels_as_they_are_now(labelled_usage):
    edit(labelled_usage["c"], "--meta", "team=ads")
    by_team = {r["meta.team"]: _nanos(r) for r in report("summary", "--by", "meta.team", "--period", "all")}
    assert by_team["ads"] == 3_750_000_000 and by_team["search"] == 3_750_000_001


def test_report_tables_name_the_none_group(labelled_usage):
    out = cli("usage", "summary", "--by", "owner", "--period", "all").stdout
    assert "(none)" in out and "ana" in out and "total" in out
    csv = cli("usage", "summary", "--by", "meta.team", "--period", "all", "--format", "csv").stdout
    assert csv.splitlines()[0].startswith("meta.team,requests")
    assert any(line.startswith(",") for line in csv.splitlines()[1:])  # the none group: empty


@pytest.mark.parametrize("by", ["owner,owner", "meta.,day", "meta.a b", "meta.-x", "owners", "meta"])
def test_bad_levels_are_refused(by):
    one_error_line(cli("usage", "summary", "--by", by), 2, "--by")


# -- the schema step ----------------------------------------------------------------------------

@pytest.mark.sqlite_only  # the step itself runs on PostgreSQL wherever a new store is set up
def test_a_store_from_before_the_step_gets_empty_labels(tmp_path):
    import sqlite3

    from claude_keys.db import migrations, sqlite as sqlite_backend

    db = tmp_path / "before.db"
    conn = sqlite3.connect(db, isolation_level=None, factory=sqlite_backend.Connection)
    conn.execute("PRAGMA journal_mode=WAL")
    steps, found = migrations.sqlite_migrations(conn)
    steps.apply(found, stop_before="m008_owners_and_metadata")
    migrations._install_sqlite(conn)
    conn.execute(f"PRAGMA user_version={[s.__name__ for s in migrations.STEPS].index('m008_owners_and_metadata')}")
    conn.execute("INSERT INTO keys (id, digest, hint, project_id, profile, created_at, lineage, seq) "
                 "VALUES ('aaaaaaaaaaa1', x'00', 'cc_x…', 'web', 'pro', 1767225600, 'aaaaaaaaaaa1', 1)")
    assert not {"owner", "metadata"} & {r[1] for r in conn.execute("PRAGMA table_info(keys)")}
    conn.close()
    rows = cli("--db", db, "keys", "list", "--json").json()
    assert [(k["id"], k["owner"], k["metadata"]) for k in rows] == [("aaaaaaaaaaa1", None, {})]
    assert cli("--db", db, "keys", "edit", "aaaaaaaaaaa1", "--owner", "ana", "--meta", "team=web").exit_code == 0
    assert listed("--db", db, "--owner", "ana", "--meta", "team=web") == ["aaaaaaaaaaa1"]
    assert json.loads(proc("--db", db, "db", "check", "--json").stdout)["ok"]
