"""Output off a terminal (render.py): --format json, csv, tsv and tabulate's formats,
--json the same as --format json, no box drawing or colour, totals rows without bars;
bars in proportion. (On a terminal: test_terminal.py.)"""
import pytest

from tests.helpers.run import cli, create, record_at


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_csv_and_tsv(fmt):
    create("--project-id", 'a,"b"')
    out = cli("keys", "list", "--format", fmt).stdout.splitlines()
    sep = "," if fmt == "csv" else "\t"
    assert out[0].split(sep)[:4] == ["id", "name", "project_id", "profile"]
    import csv

    rows = list(csv.DictReader(out, delimiter=sep))
    assert rows[0]["project_id"] == 'a,"b"' and rows[0]["status"] == "active"


def test_off_a_terminal_no_box_drawing_or_colour():
    create()
    for command in (["keys", "list"], ["profiles", "list"], ["keys", "permissions"]):
        if command[-1] == "permissions":
            command = command + [cli("keys", "list", "--json").json()[0]["id"]]
        out = cli(*command).stdout
        assert out and "\x1b[" not in out
        assert not any(ch in out for ch in "│┃┏━┡─╭╰═"), out


def test_tabulate_formats_pass_through():
    create()
    assert cli("keys", "list", "--format", "github").stdout.startswith("| id")


def test_json_flag_equals_format_json():
    create()
    assert cli("keys", "list", "--json").json() == cli("keys", "list", "--format", "json").json()


def test_human_tables_have_a_total_row_and_no_bars_off_a_terminal():
    key = create()
    record_at(key["id"], "2026-02-01T10:00:00Z", cost="1")
    record_at(key["id"], "2026-02-03T10:00:00Z", cost="2")
    out = cli("usage", "summary", "--by", "day", "--period", "all").stdout
    assert out.splitlines()[-1].startswith("total") and "$3.00" in out.splitlines()[-1]
    assert "█" not in out and "\x1b[" not in out


def test_bars_are_proportional():
    from claude_keys.render import bar

    assert bar(1.0, 10) == "█" * 10 and bar(0.0, 10) == "" and bar(0.5, 10) == "█" * 5
    assert len(bar(0.26, 10)) == 3 and bar(0.26, 10)[-1] != "█"
