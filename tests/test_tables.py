"""Tables fitted to a terminal by one rule (render.DROP_ORDER; issue 20): on a real
pseudo-terminal of 80 and 120 columns (PostgreSQL's data at 80: conftest.SCREENS), every
listing and report keeps ids (key, project, session) and model names whole, never
splits a number, an amount or a time, cuts a free-text name with "…" rather than
wrapping it, and leaves columns out in the stated order: first those with nothing to say, then the least useful. Off a terminal,
tabulate formats align numbers right; warnings wrap at word boundaries."""
import re

import pytest

from claude_keys import render
from tests.helpers.run import cli, create
from tests.test_terminal import LONG_PROJECT, check_screen, intact, on_terminal, realistic, spending  # noqa: F401

LISTINGS = [("keys", "list"), ("keys", "list", "--status", "all"), ("profiles", "list"), ("projects", "list"),
            ("audit",), ("usage", "summary", "--period", "all"), ("usage", "by-key", "--period", "all"),
            ("usage", "by-project", "--period", "all"), ("usage", "blocks", "--period", "all")]
LISTINGS += [("usage", "summary", "--by", by, "--period", "all")
             for by in ("day", "week", "month", "project", "key", "model", "session", "day,model",
                        "session,model", "project,model", "key,model", "model,day")]


def shown_and_left_out(screen: str) -> tuple[str, list[str]]:
    """The table, and the titles its note says were left out."""
    table, _, note = screen.partition("(not shown")
    note = " ".join(note.split())
    left_out = note.partition(": ")[2].partition("; --format json")[0]
    return table, [t.strip() for t in left_out.split(",") if t.strip()]


def whole_values(args) -> dict:
    """Per column, the values that must appear whole (ids, models), from --json; a model
    as people see it, by its short name (sonnet-4.5) where it has one."""
    from claude_keys.pricing import short_model

    rows = cli(*args, "--json").json()
    rows = rows if isinstance(rows, list) else [rows]
    columns = {}
    for row in rows:
        for field in ("id", "key_id", "project_id", "session_id", "model"):
            if isinstance(row.get(field), str) and row[field]:
                value = short_model(row[field]) if field == "model" else row[field]
                columns.setdefault(field, set()).add(value)
    return columns


TITLES = {"id": "id", "key_id": "key", "project_id": "project", "session_id": "session", "model": "model"}


def test_every_listing_keeps_ids_and_models_whole(spending, columns):
    # One store for all the listings (building it is most of a listing's time).
    for args in LISTINGS:
        screen = on_terminal(*args, columns=columns)
        check_screen(screen, columns)
        table, left_out = shown_and_left_out(screen)
        if args[0] == "audit":
            continue  # an audit's ids are in its free-text changes; its key column is checked by the keys list
        for field, values in whole_values(args).items():
            if TITLES[field] in left_out or (args[:2] == ("profiles", "list")):
                continue  # left out whole, and said so
            missing = intact(table, sorted(values))
            assert not missing, (args, field, missing, screen)


def test_names_are_cut_with_an_ellipsis_never_wrapped(spending, columns):
    screen = on_terminal("keys", "list", columns=columns)
    table, left_out = shown_and_left_out(screen)
    if "name" in left_out:
        return
    line = next(line for line in table.splitlines() if "webshop" in line)
    assert "…" in line and "(blue deployment)" not in table, screen  # one line, cut
    assert not any(line.strip().startswith("checkout") for line in table.splitlines()), screen


@pytest.fixture
def ordinary(tmp_path):
    """Keys with ordinary names, a retiring one, projects with a monthly budget but no
    total budget, a few changes in the audit."""
    key = create("--project-id", "webshop-prod", "--name", "checkout", "--profile", "pro", "--expires-in", "30d")
    create("--project-id", "mobile-app", "--name", "ios-release")
    assert cli("keys", "rotate", key["id"], "--grace", "5d").exit_code == 0
    for project in ("webshop-prod", "mobile-app"):
        assert cli("projects", "set", project, "--monthly-budget", "250").exit_code == 0
    assert cli("usage", "record", "--key", key["id"], "--cost", "3.5", "--model", "claude-sonnet-4-5",
               "--input-tokens", "1200", "--output-tokens", "300").exit_code == 0
    return key


def test_at_80_columns_the_right_columns_stay(ordinary):
    table, left_out = shown_and_left_out(on_terminal("keys", "list", columns=80))
    assert "expires at" in table and "in 5 days" in table, table  # when the retiring key stops
    assert "created at" in left_out, left_out
    table, left_out = shown_and_left_out(on_terminal("audit", columns=80))
    assert "actor" in table and "actor" not in left_out, table
    screen = on_terminal("projects", "list", columns=80)
    table, left_out = shown_and_left_out(screen)
    assert "total budget" in left_out and "monthly" in table and "$250.00" in table, screen  # all unlimited: first
    assert left_out.index("total budget") == 0 or all(
        t in ("keys", "retiring", "in flight", "rate / min", "tokens / day", "concurrent", "hold")
        for t in left_out[:left_out.index("total budget")]), left_out
    table, left_out = shown_and_left_out(on_terminal("usage", "summary", "--by", "day,model", "--period", "all",
                                                     columns=80))
    assert "requests" in table and "requests" not in left_out, table


@pytest.mark.one_backend
def test_a_column_with_nothing_to_say_goes_first_then_the_stated_order():
    columns = ["period", "model", "requests", "input_tokens", "total_tokens", "cost_usd", "unpriced_requests"]
    body = [["2026-01-05", "claude-sonnet-4-5-20250929", "12", "1,200", "1,500", "$3.50", "0"],
            ["", "claude-haiku-4-5-20251001", "3", "300", "400", "$0.10", "0"]]
    order = [columns[i] for i in render.drop_order(columns, body)]
    assert order == ["unpriced_requests", "input_tokens", "requests", "total_tokens"]
    titles = ["period", "model", "requests", "input", "total tokens", "cost", "unpriced"]
    shown, _, _ = render._fit(columns, titles, body, 70)
    assert [columns[i] for i in shown] == ["period", "model", "requests", "total_tokens", "cost_usd"]
    # The first column names its rows and stays; a column not in DROP_ORDER stays.
    assert 0 not in render.drop_order(["project_id", "cost_usd"], [["-", "$0.00"]])
    assert render._fit(columns, titles, body, 40) is None  # model whole does not fit: vertical layout
    # Every name in DROP_ORDER is a column some listing has, once.
    assert len(set(render.DROP_ORDER)) == len(render.DROP_ORDER)


@pytest.mark.one_backend
def test_a_name_is_cut_before_columns_go_and_models_never_break():
    columns = ["key_id", "name", "model", "cost_usd"]
    body = [["a1b2c3d4e5f6", "webshop production checkout service", "claude-sonnet-4-5-20250929", "$1.00"]]
    shown, _, widths = render._fit(columns, ["key", "name", "model", "cost"], body, 80)
    assert shown == [0, 1, 2, 3] and widths[2] == len(body[0][2]) and widths[1] < len(body[0][1])


def test_tabulate_formats_align_numbers_right_off_a_terminal(ordinary):
    for fmt in ("github", "simple", "plain", "grid", "table"):
        lines = cli("usage", "by-project", "--period", "all", "--format", fmt).stdout.splitlines()
        header = next(line for line in lines if "requests" in line)
        row = next(line for line in lines if "webshop-prod" in line)
        for title, value in (("requests", "1"), ("cost", "$3.50"), ("total tokens", "1,500")):
            end = header.index(title) + len(title)
            assert row[:end].rstrip("| ").endswith(value), (fmt, title, lines)


def test_warnings_wrap_at_word_boundaries_on_a_terminal():
    key = create()
    assert cli("usage", "record", "--key", key["id"], "--model", "claude-unknown-9", "--input-tokens", "5").exit_code == 0
    message = cli("usage", "summary", "--period", "all").stderr
    words = [w for w in message.split() if len(w) > 3]
    screen = on_terminal("usage", "summary", "--period", "all", columns=80)
    warning = screen[screen.index("Warning:"):]
    lines = warning.splitlines()
    assert len(lines) > 1 and all(len(line) <= 80 for line in lines), screen
    flowing = warning.split()
    assert all(w in flowing for w in words), screen  # no word split across lines
