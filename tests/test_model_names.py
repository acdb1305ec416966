"""One name per model: reports merge a model's dated ids, aliases and Bedrock/Vertex
spellings into one row under its canonical id (JSON keeps the full id), with sums
exact; human tables show a short name (sonnet-4.5) that never breaks at 80 columns."""
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from claude_keys.pricing import canonical_model, is_regional, normalize, short_model
from tests.helpers.cc_lines import line, write
from tests.helpers.run import cli, create, imported, record_at, report
from tests.test_terminal import on_terminal  # the real executable on an 80-column pseudo-terminal

SPELLINGS = {
    "claude-sonnet-4-5": ["claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5@20250929",
                          "anthropic.claude-sonnet-4-5-20250929-v1:0",
                          "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                          "global.anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic/claude-sonnet-4-5"],
    "claude-haiku-4-5": ["claude-haiku-4-5-20251001", "apac.anthropic.claude-haiku-4-5-20251001-v1:0",
                         "eu.anthropic.claude-haiku-4-5-20251001-v1:0"],
    "claude-3-5-sonnet": ["claude-3-5-sonnet-latest", "claude-3-5-sonnet-20241022"],
}


# normalize and is_regional as they were written with regular expressions (the code
# reads names with string methods, so that the status line need not load `re`).
_PREFIX = re.compile(r"^(?:(?:global|[a-z]{2,4}(?:-[a-z]{2,4})?)\.)?(?:anthropic[./])")
_REGIONAL = re.compile(r"^(?!global\.)[a-z]{2,4}(?:-[a-z]{2,4})?\.anthropic\.")
_SUFFIX = re.compile(r"(?:-v\d+(?::\d+)?|@\d{8}|-\d{8}|-latest)$")


def by_pattern(model: str) -> tuple[str, bool]:
    name = _PREFIX.sub("", model.strip().lower())
    while _SUFFIX.sub("", name) != name:
        name = _SUFFIX.sub("", name)
    return name, bool(_REGIONAL.match(model.strip().lower()))


PIECES = ["anthropic", ".", "/", "-", "-v", "v", "1", "0", ":", "@", "2025", "0929", "20250929", "-latest",
          "us", "eu", "apac", "global", "gov", "abcde", "claude", "sonnet", "-4", "-5", "x", "١", "٠١٢٣٤٥٦٧",
          " ", "A", "US", "İ", "_"]


@pytest.mark.one_backend
@given(st.one_of(st.lists(st.sampled_from(PIECES), max_size=14).map("".join),
                 st.text(st.characters(blacklist_characters="\n"), max_size=30)))
def test_names_are_read_as_the_patterns_read_them(model):
    """(A newline aside: a pattern's `$` also matches before a last one; no stored model
    name holds one, the text gate refuses control characters.)"""
    assert (normalize(model), is_regional(model)) == by_pattern(model)


@pytest.mark.one_backend
def test_canonical_and_short_names():
    for canonical, spellings in SPELLINGS.items():
        assert {canonical_model(s) for s in spellings} == {canonical}
    assert [short_model(m) for m in ("claude-sonnet-4-5-20250929", "claude-opus-4-6", "claude-haiku-4-5",
                                     "claude-opus-4", "claude-3-5-haiku-20241022", "claude-3-opus",
                                     "my-model", "us.anthropic.claude-opus-4-1-20250805-v1:0")] == [
        "sonnet-4.5", "opus-4.6", "haiku-4.5", "opus-4", "haiku-3.5", "opus-3", "my-model", "opus-4.1"]


def test_by_model_merges_every_spelling_into_one_row_with_exact_sums():
    key = create()
    expected = {}
    for canonical, spellings in SPELLINGS.items():
        for i, spelling in enumerate(spellings):
            cost = f"0.{i + 1:09d}"  # nano-dollar amounts: a float sum would drift
            record_at(key["id"], f"2026-02-0{1 + i % 3}T10:00:00Z", cost=cost, model=spelling, inp=i + 1, out=7)
            nanos, tokens, n = expected.get(canonical, (0, 0, 0))
            expected[canonical] = (nanos + i + 1, tokens + i + 1, n + 1)
    rows = report("summary", "--by", "model", "--period", "all")
    assert sorted(r["model"] for r in rows) == sorted(SPELLINGS)  # one row per model
    for r in rows:
        nanos, tokens, n = expected[r["model"]]
        assert (r["requests"], r["input_tokens"], r["output_tokens"]) == (n, tokens, 7 * n)
        assert round(r["cost_usd"] * 1e9) == nanos
    # The same under a period and a second level, and by session.
    by_day = report("summary", "--by", "day,model", "--period", "all")
    assert len({(r["period"], r["model"]) for r in by_day}) == len(by_day)
    assert sum(r["requests"] for r in by_day if r["model"] == "claude-sonnet-4-5") == 7
    by_project = report("summary", "--by", "project,model", "--period", "all")
    assert sorted(r["model"] for r in by_project) == sorted(SPELLINGS)
    # An hour's edge (raw rows) and whole days (roll-ups) merge into the same row.
    edge = report("summary", "--by", "model", "--since", "2026-02-01T10:00:00.001Z")
    assert len(edge) == len({r["model"] for r in edge})


def test_human_tables_show_short_names_that_fit_80_columns(tmp_path):
    folder = tmp_path / "projects" / "p"
    write(folder / "s.jsonl", line("m1", "r1", model="claude-haiku-4-5-20251001"),
          line("m2", "r2", model="claude-haiku-4-5"),
          line("m3", "r3", model="claude-opus-4-6"))
    imported(tmp_path)
    shown = on_terminal("usage", "summary", "--by", "model", "--period", "all", columns=80)
    lines = shown.splitlines()
    assert all(len(x) <= 80 for x in lines), shown
    assert sum("haiku-4.5" in x for x in lines) == 1 and any("opus-4.6" in x for x in lines), shown
    assert "claude-haiku-4-" not in shown  # never an id cut in two
    two = on_terminal("usage", "summary", "--by", "day,model", "--period", "all", columns=80)
    assert "haiku-4.5" in two and "claude-" not in two, two
    plain = cli("usage", "summary", "--by", "model", "--period", "all").stdout  # off a terminal too
    assert "haiku-4.5" in plain and "claude-haiku" not in plain
    # Data formats keep the full canonical id.
    csv = cli("usage", "summary", "--by", "model", "--period", "all", "--format", "csv").stdout
    assert "claude-haiku-4-5," in csv and "claude-haiku-4-5-20251001" not in csv
