"""CLI fuzzing: every command and option fed hostile and random values. Whatever the
input: no traceback, one clear line on a failure, a contract exit code, and a store
left exactly as it was when the command failed."""
import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_keys.cli import cli as root
from tests.helpers.commands import base_args, commands
from tests.helpers.run import create
from tests.helpers.store import change_marker

HOSTILE = ["", " ", "-1", "-0", "0", "1.5", "0x10", "1e309", "inf", "-inf", "nan", "NaN", "∞", "٣",
           "9" * 40, "\x00", "a\x00b", "\x1b[31mred", "\r\n", "a" * 10_000, "'; DROP TABLE keys; --",
           "%s%n", "\u202egnp.exe", "😀", "\udcff", "null", "true", "2026-13-45", "9999-12-31T23:59:59Z",
           "0s", "1y", "../../../etc/passwd", "*", "@standard", "cc_" + "A" * 38,
           "a\x9b31mb", "a\u2066b\u2069", "9" * 5000, "Europe", "proj[/x]", " cc_" + "A" * 38 + "\n"]


_open: dict = {}  # store -> (its connection, the query of its snapshot or None), kept
_known: dict = {}  # store -> (its change marker, its snapshot) when last taken


def snapshot(db) -> str:
    """Every row of the store (one connection per store, kept: this runs thousands of
    times), taken again only when the store's change marker has moved since the last one:
    most hostile values are refused before anything is written."""
    from claude_keys import db as store
    from claude_keys.db import transfer

    if str(db) not in _open:
        _open.clear()
        _known.clear()
        conn, query = store.connect(db), None
        if str(db).startswith("postgresql"):
            # A round trip per table made the snapshots half of this file's time: on
            # PostgreSQL, every row of every table (and the list of tables) in one.
            rows = [f"SELECT '{t}' AS t, s::text AS r FROM {t} s" for t in transfer.tables(conn)]
            rows.append("SELECT 'table', tablename::text FROM pg_tables WHERE schemaname = current_schema()")
            query = f"SELECT string_agg(t || ' ' || r, E'\\n' ORDER BY t, r) FROM ({' UNION ALL '.join(rows)}) a"
        _open[str(db)] = conn, query
    conn, query = _open[str(db)]
    marker = change_marker(conn)
    if _known.get(str(db), (None,))[0] != marker:
        if query:
            rows = next(iter(conn.execute(query)))[0]
        else:
            rows = "\n".join(repr(tuple(r)) for t in transfer.tables(conn)
                              for r in conn.execute(f"SELECT * FROM {t} ORDER BY 1"))
        _known[str(db)] = marker, rows
    return _known[str(db)][1]


def run_and_check(args, db, stdin=""):
    before = snapshot(db)
    result = CliRunner().invoke(root, args, input=stdin, catch_exceptions=False)
    code, err = result.exit_code, result.stderr
    shown = [a[:40] for a in args]
    assert "Traceback" not in err and "unexpected" not in err, (shown, err)
    assert code in (0, 1, 2, 3, 4, 5), (shown, code, err)
    if code not in (0, 3, 4, 5):
        lines = [line for line in err.splitlines() if line.strip() and not line.rstrip().endswith("[y/N]:")]
        assert len(lines) == 1 and lines[0].startswith("Error: "), (shown, err)
        assert snapshot(db) == before, f"{shown} failed but changed the store"
    return code


@pytest.fixture
def fuzz_env(isolated, tmp_path, monkeypatch):
    # Hostile values become file names (`db backup VALUE`): keep them inside the test's
    # folder, deep enough that "../../../x" does too.
    cwd = tmp_path / "a" / "b" / "c" / "cwd"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    key = create()
    record = tmp_path / "usage.jsonl"
    record.write_text(f'{{"key": "{key["id"]}", "at": "2026-02-01T00:00:00Z", "cost_usd": 1}}\n')
    return isolated, key["id"], record


def test_every_option_with_hostile_values(fuzz_env, store_backend):
    db, key_id, record = fuzz_env
    tried = 0
    options = 0
    for path, command in commands():
        for param in command.params:
            if not isinstance(param, click.Option) or param.is_flag or param.name in ("help",):
                continue
            options += 1
            for i, value in enumerate(HOSTILE):
                # Each option gets half of the values on SQLite (a third on PostgreSQL), the
                # next option the other half (the next third): every value still reaches
                # each backend through most commands, at a suite's cost (229 options x 41
                # values took 93 s on SQLite alone).
                if (i + options) % (3 if store_backend == "postgres" else 2):
                    continue
                args = base_args(path, command, key_id, record)
                if param.name == "project_id" and "--project-id" in args:
                    args = args[:args.index("--project-id")] + args[args.index("--project-id") + 2:]
                if param.name == "key_ref" and param.required:
                    args = args[:args.index(param.opts[0])] + args[args.index(param.opts[0]) + 2:]
                if param.name == "fmt" and "--format" in args:
                    args = args[:args.index("--format")] + args[args.index("--format") + 2:]
                run_and_check(args + [param.opts[0], value], db)
                tried += 1
    assert tried > 2000 if store_backend == "sqlite" else tried > 1000


def test_every_argument_with_hostile_values(fuzz_env, store_backend):
    db, key_id, record = fuzz_env
    for n, (path, command) in enumerate(commands()):
        arguments = [p for p in command.params if isinstance(p, click.Argument)]
        for i, value in enumerate(HOSTILE):
            # On PostgreSQL each command gets a third of the values, the next command the
            # next third (a call costs ~6x what it does on SQLite).
            if store_backend == "postgres" and (i + n) % 3:
                continue
            if arguments:
                run_and_check(list(path) + [value] * (1 if arguments[0].nargs == 1 else 2), db)
            run_and_check(list(path) + ["--no-such-option", value], db)


@pytest.mark.parametrize("content", [b"\xff\xfe\x00junk\n", b'{"key": "\xc3\x28"}\n', b"\x00" * 100,
                                     b"{" * 10_000 + b"\n", b'"just a string"\n', b"[]\n",
                                     b"key,at\n\xff,2026\n", b"x" * 1_000_000 + b"\n", b""])
@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_hostile_files_to_import(fuzz_env, tmp_path, content, suffix):
    db, _, _ = fuzz_env
    path = tmp_path / f"hostile{suffix}"
    path.write_bytes(content)
    for fmt in ("auto", "jsonl", "csv", "claude-code"):
        run_and_check(["usage", "import", str(path), "--format", fmt], db)


@pytest.mark.parametrize("stdin", ["", b"\xff\xfe\xc3(", "\x00\x00", "a" * 10_000, "tok,\n,,\n\n", "😀" * 20])
def test_hostile_stdin(fuzz_env, stdin):
    db, key_id, _ = fuzz_env
    run_and_check(["keys", "import", "--project-id", "p"], db, stdin=stdin)
    run_and_check(["keys", "verify", "-", "--json"], db, stdin=stdin)
    run_and_check(["keys", "revoke", key_id], db, stdin=stdin)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_values_anywhere(fuzz_env, data):
    db, key_id, record = fuzz_env
    everything = list(commands())
    path, command = data.draw(st.sampled_from(everything))
    args = base_args(path, command, key_id, record)
    options = [p for p in command.params if isinstance(p, click.Option) and p.name != "help"]
    for param in data.draw(st.lists(st.sampled_from(options), max_size=3)) if options else []:
        args.append(param.opts[0])
        if not param.is_flag:
            args.append(data.draw(st.text(max_size=30)))
    run_and_check(args, db, stdin=data.draw(st.text(max_size=20)))


# --- Claude Code logs: hostile values in every field of a line ----------------------

_LINE = {"parentUuid": "p", "isSidechain": False, "userType": "external", "cwd": "/x", "sessionId": "s",
         "version": "2.0.31", "type": "assistant", "uuid": "u", "timestamp": "2026-02-01T10:00:00.000Z",
         "requestId": "req", "costUSD": None,
         "message": {"id": "msg", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
                     "content": [{"type": "text", "text": "hi"}],
                     "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 1,
                               "cache_creation_input_tokens": 2, "speed": "standard",
                               "cache_creation": {"ephemeral_5m_input_tokens": 2, "ephemeral_1h_input_tokens": 0}}}}
_FIELDS = [(), ("type",), ("timestamp",), ("requestId",), ("sessionId",), ("isSidechain",), ("costUSD",),
           ("uuid",), ("message",), ("message", "id"), ("message", "model"), ("message", "usage"),
           ("message", "usage", "input_tokens"), ("message", "usage", "output_tokens"),
           ("message", "usage", "cache_read_input_tokens"), ("message", "usage", "cache_creation_input_tokens"),
           ("message", "usage", "speed"), ("message", "usage", "cache_creation"),
           ("message", "usage", "cache_creation", "ephemeral_1h_input_tokens")]
_VALUES = [None, "", 0, -1, 1.5, 1e308, -1e308, 10**30, True, [], {}, [1, [2, [3]]], "x" * 200_000,
           "\udcff", "\u009b31m", "\u202egnp", "\x1b[2J\x1b]0;t\x07", "<synthetic>", "9999-12-31T23:59:59Z",
           "2099-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "fast", {"a": {"b": {"c": None}}}, "😀", "nan"]


def _with(path, value):
    import copy

    line = copy.deepcopy(_LINE)
    if not path:
        return value
    target = line
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return line


@pytest.mark.parametrize("path", _FIELDS, ids=lambda p: ".".join(p) or "line")
def test_hostile_claude_code_log_fields(fuzz_env, tmp_path, path):
    import json

    from tests.helpers.store import assert_consistent, sql

    db, _, _ = fuzz_env
    folder = tmp_path / "logs" / "projects" / "p"
    folder.mkdir(parents=True)
    lines = [json.dumps(dict(_LINE, requestId="good-1"))]
    for i, value in enumerate(_VALUES):
        hostile = _with(path, value)
        if isinstance(hostile, dict) and path[:1] != ("requestId",):
            hostile["requestId"] = f"h{i}"  # its own request, unless the id is what is fuzzed
        if isinstance(hostile, dict) and path not in (("message",), ("message", "id")) \
                and isinstance(hostile.get("message"), dict):
            hostile["message"]["id"] = f"msg-h{i}"  # and its own message (one message is one request)
        lines.append(json.dumps(hostile))
    lines.append(json.dumps(dict(_LINE, requestId="good-2", message=dict(_LINE["message"], id="msg-2"))))
    lines.append('{"message": {"usage": ' + "[" * 3000)  # deep, and unfinished
    (folder / "s.jsonl").write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(root, ["usage", "import", str(tmp_path / "logs"), "--json"], catch_exceptions=False)
    assert result.exit_code == 0 and "Traceback" not in result.stderr, result.stderr
    answer = json.loads(result.stdout)
    assert answer["lines"] == len(lines)
    assert sum(answer["skipped"].values()) + answer["requests"] <= len(lines)
    good = sql("SELECT request_id, input_tokens, output_tokens, cost_nanos FROM usage "
               "WHERE request_id IN ('cc:msg:good-1', 'cc:msg-2:good-2') ORDER BY 1")
    assert good == [("cc:msg-2:good-2", 10, 5, 37_600), ("cc:msg:good-1", 10, 5, 37_600)]
    assert_consistent(db)
    for args in (["summary", "--by", "model"], ["summary", "--by", "session,model"], ["by-project"], ["blocks"]):
        shown = CliRunner().invoke(root, ["usage", *args, "--period", "all"], catch_exceptions=False)
        assert shown.exit_code == 0 and "\x1b" not in shown.stdout and "\u202e" not in shown.stdout, args
