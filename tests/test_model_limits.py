"""Model-aware limits (issue 17): model lists on keys and projects (every spelling of a
model is one model, a block wins), the worst case a request with a model and
max_tokens reserves (exact when 16 processes race for a $1 budget), a model without
a price, and input/output tokens per minute (refused, then free again)."""
import json
import subprocess
import time

import pytest

from claude_keys import InvalidInput, KeyStore, PermissionManager, gate
from tests.helpers.processes import dies_with_this_process
from tests.helpers.run import EXE, cli, create, error, one_error_line, proc, verdict, verify
from tests.helpers.store import LIVE, NANOS, sql

OPUS_REFUSED = "Model 'claude-opus-4-6' is not allowed for this API key"
SONNET = "claude-sonnet-4-5"  # $3 / $15 per million tokens; long context past 200,000: $6 / $22.50


def permissions(key, *args):
    r = cli("keys", "permissions", key, *args, "--json")
    assert r.exit_code == 0, r
    return r.json()


def record(key, *args):
    r = cli("usage", "record", "--key", key, *args, "--json")
    assert r.exit_code == 0, r
    return r.json()


# -- model lists --------------------------------------------------------------------------

def test_a_haiku_only_key_is_refused_opus_on_the_cli_and_the_api():
    key = create("--allow-model", "claude-haiku-*")
    answer = verify(key["key"], "--model", "claude-opus-4-6", code=4)
    assert error(answer) == ("permission_error", OPUS_REFUSED)
    r = proc("keys", "verify", key["key"], "--model", "claude-opus-4-6")  # the installed program
    assert r.exit_code == 4 and OPUS_REFUSED in r.stderr, r
    decision = KeyStore().check(key=key["key"], model="claude-opus-4-6")
    assert (decision.status, decision.body["error"]) == (403, {"type": "permission_error", "message": OPUS_REFUSED})
    for haiku in ("claude-haiku-4-5", "claude-haiku-4-5-20251001", "Claude-Haiku-4-5"):
        assert verify(key["key"], "--model", haiku, code=0)["allowed"]
    assert KeyStore().check(key=key["key"], model="claude-haiku-4-5").allowed
    shown = permissions(key["id"])
    assert (shown["allowed_models"], shown["blocked_models"]) == (["claude-haiku-*"], [])
    assert cli("keys", "show", key["id"], "--json").json()["permissions"]["allowed_models"] == ["claude-haiku-*"]
    assert verify(key["key"], code=0)["allowed"]  # a check without a model is not about models


def test_a_dated_id_its_alias_and_bedrock_and_vertex_spellings_are_one_model():
    dated = create("--allow-model", "claude-sonnet-4-5-20250929")
    alias = create("--allow-model", "claude-sonnet-4-5")
    bedrock = create("--block-model", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    spellings = ["claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                 "anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5@20250929", "CLAUDE-SONNET-4-5"]
    for model in spellings:
        assert verify(dated["key"], "--model", model, code=0)["allowed"], model
        assert verify(alias["key"], "--model", model, code=0)["allowed"], model
        assert verify(bedrock["key"], "--model", model, code=4)["error"]["message"] == \
            f"Model '{model}' is not allowed for this API key"
    for other in ("claude-sonnet-4", "claude-opus-4-6", "claude-3-5-sonnet"):
        assert verify(alias["key"], "--model", other, code=4)
        assert verify(bedrock["key"], "--model", other, code=0)
    # A pattern with wildcards is matched as written: `*-20251001` blocks one snapshot, not all.
    snapshot = create("--block-model", "*-20251001")
    verify(snapshot["key"], "--model", "claude-haiku-4-5-20251001", code=4)
    verify(snapshot["key"], "--model", "claude-sonnet-4-5", code=0)


def test_a_block_wins_and_the_lists_can_be_cleared():
    key = create("--allow-model", "claude-*", "--block-model", "claude-opus-*")
    assert error(verify(key["key"], "--model", "claude-opus-4-6", code=4))[1] == OPUS_REFUSED
    verify(key["key"], "--model", "claude-sonnet-4-5", code=0)
    verify(key["key"], "--model", "gpt-4o", code=4)  # not on the allowed list
    assert permissions(key["id"], "--block-model", "CLAUDE-SONNET-*")["blocked_models"] == \
        ["claude-opus-*", "claude-sonnet-*"]  # patterns are kept lowercased
    verify(key["key"], "--model", "claude-sonnet-4-5", code=4)
    cleared = permissions(key["id"], "--clear-models")
    assert (cleared["allowed_models"], cleared["blocked_models"]) == (["*"], [])
    verify(key["key"], "--model", "claude-opus-4-6", code=0)
    # The first allowed pattern restricts "every model"; clearing first replaces a list.
    assert permissions(key["id"], "--allow-model", "claude-haiku-*")["allowed_models"] == ["claude-haiku-*"]
    assert permissions(key["id"], "--clear-models", "--allow-model", "claude-opus-*")["allowed_models"] == \
        ["claude-opus-*"]
    # Re-profiling keeps them (an operator's restriction, not a tier's); --reset drops them.
    assert permissions(key["id"], "--set-profile", "pro")["allowed_models"] == ["claude-opus-*"]
    assert permissions(key["id"], "--set-profile", "enterprise", "--reset")["allowed_models"] == ["*"]
    one_error_line(cli("keys", "permissions", key["id"], "--allow-model", ""), 2, "model pattern")
    one_error_line(cli("keys", "create", "--project-id", "p", "--allow-model", "claude\n*"), 2)


def test_project_lists_apply_to_all_its_keys_as_well_as_their_own():
    plain = create("--project-id", "shop")
    opus_key = create("--project-id", "shop", "--allow-model", "claude-opus-*")
    r = cli("projects", "set", "shop", "--allow-model", "claude-haiku-*", "--allow-model", "claude-opus-*",
            "--block-model", "claude-opus-4-1", "--json")
    assert r.exit_code == 0, r
    assert (r.json()["allowed_models"], r.json()["blocked_models"]) == (["claude-haiku-*", "claude-opus-*"],
                                                                        ["claude-opus-4-1"])
    verify(plain["key"], "--model", "claude-haiku-4-5", code=0)
    assert error(verify(plain["key"], "--model", "claude-sonnet-4-5", code=4))[1] == \
        "Model 'claude-sonnet-4-5' is not allowed for this project"
    # A model must pass both: the key's list first, then the project's.
    assert error(verify(opus_key["key"], "--model", "claude-haiku-4-5", code=4))[1] == \
        "Model 'claude-haiku-4-5' is not allowed for this API key"
    verify(opus_key["key"], "--model", "claude-opus-4-6", code=0)
    assert error(verify(opus_key["key"], "--model", "claude-opus-4-1-20250805", code=4))[1] == \
        "Model 'claude-opus-4-1-20250805' is not allowed for this project"  # the project's block wins
    assert not KeyStore().check(key=plain["key"], model="claude-sonnet-4-5").allowed
    shown = PermissionManager().set_project("shop", {"allowed_models": []})
    assert (shown["allowed_models"], shown["blocked_models"]) == (["*"], ["claude-opus-4-1"])
    verify(plain["key"], "--model", "claude-sonnet-4-5", code=0)
    assert cli("projects", "set", "shop", "--clear-models").exit_code == 0
    verify(plain["key"], "--model", "claude-opus-4-1", code=0)
    assert cli("projects", "show", "shop", "--json").json()["blocked_models"] == []


def test_the_python_api_sets_model_lists_and_tokens_per_minute():
    key = create()
    manager = PermissionManager()
    got = manager.set_profile(key["id"], {"allowed_models": ["claude-haiku-*"], "input_tokens_per_minute": 500})
    assert (got["allowed_models"], got["input_tokens_per_minute"]) == (["claude-haiku-*"], 500)
    got = manager.set_profile(key["id"], {"blocked_models": ["claude-haiku-3*"]})
    assert (got["allowed_models"], got["blocked_models"]) == (["claude-haiku-*"], ["claude-haiku-3*"])
    with pytest.raises(InvalidInput):
        manager.set_profile(key["id"], {"allowed_models": "claude-haiku-*"})  # a list, not a string
    with pytest.raises(InvalidInput):
        KeyStore().check(key=key["key"], max_tokens=100)  # max_tokens needs the model


# -- the worst case a request reserves ------------------------------------------------------

def test_a_model_and_max_tokens_reserve_the_worst_case():
    key = create("--total-budget", "1")
    answer = verify(key["key"], "--model", SONNET, "--max-tokens", "10000", "--input-tokens", "20000", code=0)
    # 20,000 input at $3/M + 10,000 output at $15/M = $0.06 + $0.15
    assert sql("SELECT reserved_nanos, model, input_tokens FROM in_flight WHERE request_id = ?",
               (answer["request_id"],)) == [(210_000_000, SONNET, 20000)]
    # Past 200,000 input tokens the whole request is at the long-context rates:
    # 250,000 x $6/M + 1,000 x $22.50/M = $1.5225, over what is left.
    _, message = error(verify(key["key"], "--model", SONNET, "--max-tokens", "1000", "--input-tokens", "250000",
                              code=5))
    assert "this request may cost up to $1.52" in message, message
    # A cost given is what is reserved, whatever max_tokens says.
    given = verify(key["key"], "--model", SONNET, "--max-tokens", "1000000", "--cost", "0.01", code=0)
    assert sql("SELECT reserved_nanos FROM in_flight WHERE request_id = ?", (given["request_id"],)) == \
        [(10_000_000,)]
    one_error_line(cli("keys", "verify", key["key"], "--max-tokens", "10"), 2, "--max-tokens needs --model")
    assert KeyStore().check(key=key["key"], model=SONNET, max_tokens=40000).allowed  # $0.60 more: $0.81
    refused = KeyStore().check(key=key["key"], model=SONNET, max_tokens=40000)
    assert refused.status == 429 and "Total budget exceeded" in refused.message


def test_a_worst_case_over_the_max_cost_per_task_is_refused():
    key = create("--max-cost", "0.10")
    _, message = error(verify(key["key"], "--model", "claude-opus-4-6", "--max-tokens", "32000", code=4))
    assert message == ("Cost up to $0.80 (claude-opus-4-6, max_tokens 32,000) is over the maximum of $0.10 "
                       "per task for this API key")
    verify(key["key"], "--model", "claude-opus-4-6", "--max-tokens", "4000", code=0)  # $0.10


def test_a_model_without_a_price_is_refused_only_where_a_budget_needs_it():
    budget = create("--monthly-budget", "5")
    _, message = error(verify(budget["key"], "--model", "acme-large", "--max-tokens", "100", code=4))
    assert message.startswith("Model 'acme-large' has no price, so its cost cannot be reserved against the "
                              "budget of this API key"), message
    verify(budget["key"], "--model", "acme-large", "--max-tokens", "100", "--cost", "0.01", code=0)
    free_spending = create()
    verify(free_spending["key"], "--model", "acme-large", "--max-tokens", "100", code=0)
    shop = create("--project-id", "shop")
    assert cli("projects", "set", "shop", "--total-budget", "10").exit_code == 0
    decision = KeyStore().check(key=shop["key"], model="acme-large", max_tokens=100)
    assert decision.status == 403 and "the budget of this project" in decision.message


def _verify_at(secret, max_tokens, start_at):
    """A real `keys verify` process, started now, checking at `start_at`; the caller
    records what it admitted."""
    return subprocess.Popen(
        ["sh", "-c", f'while [ "$(date +%s)" -lt {int(start_at)} ]; do sleep 0.05; done; '
                     f'exec "{EXE}" keys verify "{secret}" --model {SONNET} --max-tokens {max_tokens} --json'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=dies_with_this_process())


def test_16_processes_against_a_one_dollar_budget_admit_exactly_what_the_worst_case_allows():
    """$0.15 worst case each (10,000 output tokens at $15/M): six fit in $1, never seven."""
    key = create("--total-budget", "1.00", "--monthly-budget", "1.00")
    start_at = time.time() + 4  # time for 16 processes to start
    workers = [_verify_at(key["key"], 10_000, start_at) for _ in range(16)]
    answers = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        answers.append((worker.returncode, out, err))
    admitted = [a for a in answers if a[0] == 0]
    assert len(admitted) == 6, answers
    assert sorted({code for code, _, _ in answers}) == [0, 5], answers
    for _, out, _ in admitted:  # each admitted request costs exactly its worst case
        rid = json.loads(out)["request_id"]
        record(key["id"], "--request-id", rid, "--model", SONNET, "--output-tokens", "10000")
    (count, spent), = sql("SELECT count(*), sum(cost_nanos) FROM usage")
    assert (count, spent) == (6, 900_000_000) and spent <= NANOS  # never past the $1
    assert sql(LIVE) == [(0,)]
    assert verdict(key["key"], "--model", SONNET, "--max-tokens", "10000")[0] == 5
    assert verdict(key["key"], "--model", SONNET, "--max-tokens", "6666")[0] == 0  # $0.09999


# -- tokens per minute ------------------------------------------------------------------

def _seconds(message: str) -> int:
    return int(message.split("Reset in ")[1].split()[0])


def test_input_tokens_per_minute_refuse_and_recover():
    key = create("--input-tokens-per-minute", "1000")
    record(key["id"], "--input-tokens", "900", "--output-tokens", "5", "--model", SONNET, "--at", "57s")
    current = cli("keys", "show", key["id"], "--json").json()["current"]
    assert (current["input_tokens_last_minute"], current["input_tokens_per_minute"]) == (900, 1000)
    verify(key["key"], "--input-tokens", "100", code=0)  # 900 + 100: at the limit, not past it
    answer = verify(key["key"], "--input-tokens", "101", code=5)  # (the 100 are declared, in flight)
    kind, message = error(answer)
    assert kind == "rate_limit_error" and message.startswith(
        "Input tokens per minute limit exceeded: 1,000 of 1,000 input tokens in the last minute for this "
        "API key, and this request declares 101."), message
    assert answer["headers"]["Retry-After"] == str(_seconds(message)) and _seconds(message) <= 4
    time.sleep(_seconds(message) + 0.2)  # the 900 recorded 57 s ago leave the window
    verify(key["key"], "--input-tokens", "800", code=0)
    one_request = verify(key["key"], "--input-tokens", "5000", code=5)
    assert "this request's 5,000 input tokens are over the limit of 1,000" in error(one_request)[1]


def test_declared_input_counts_while_in_flight_and_then_as_recorded():
    key = create("--input-tokens-per-minute", "1000")
    first = verify(key["key"], "--input-tokens", "600", code=0)
    verify(key["key"], "--input-tokens", "600", code=5)  # the first one's 600 are declared
    record(key["id"], "--request-id", first["request_id"], "--input-tokens", "600", "--model", SONNET)
    verify(key["key"], "--input-tokens", "600", code=5)  # now recorded: still in the minute
    released = verify(key["key"], "--input-tokens", "300", code=0)
    verify(key["key"], "--input-tokens", "300", code=5)
    assert cli("keys", "release", released["request_id"]).exit_code == 0
    verify(key["key"], "--input-tokens", "300", code=0)
    # A request in flight declares its input for the minute it started in only.
    sql("UPDATE in_flight SET started_ms = started_ms - 61000")
    sql("UPDATE usage SET at_ms = at_ms - 61000")
    verify(key["key"], "--input-tokens", "1000", code=0)


def test_output_tokens_per_minute_refuse_once_reached_and_recover():
    key = create("--output-tokens-per-minute", "500")
    record(key["id"], "--output-tokens", "499", "--model", SONNET, "--at", "58s")
    verify(key["key"], "--input-tokens", "100000", code=0)  # output is not declared: room for one more
    record(key["id"], "--output-tokens", "1", "--model", SONNET)
    answer = verify(key["key"], code=5)
    message = error(answer)[1]
    assert message.startswith("Output tokens per minute limit exceeded: 500 of 500 output tokens in the last "
                              "minute for this API key."), message
    # Freed when enough of the window's tokens leave it: the 499, recorded 58 s ago.
    assert 1 <= _seconds(message) <= 3 and answer["headers"]["Retry-After"] == str(_seconds(message))
    time.sleep(_seconds(message) + 0.2)
    verify(key["key"], code=0)
    assert permissions(key["id"], "--output-tokens-per-minute", "0")["output_tokens_per_minute"] == 0
    answer = verify(key["key"], code=5)
    assert error(answer)[1] == "Output tokens per minute limit exceeded: this API key allows no output tokens."
    assert "Retry-After" not in answer["headers"]
    assert permissions(key["id"], "--output-tokens-per-minute", "unlimited")["output_tokens_per_minute"] is None
    verify(key["key"], code=0)


def test_project_tokens_per_minute_are_shared_by_its_keys():
    one, two = create("--project-id", "shop"), create("--project-id", "shop")
    r = cli("projects", "set", "shop", "--input-tokens-per-minute", "1000", "--output-tokens-per-minute", "50",
            "--json")
    assert (r.json()["input_tokens_per_minute"], r.json()["output_tokens_per_minute"]) == (1000, 50)
    record(one["id"], "--input-tokens", "700", "--output-tokens", "10", "--model", SONNET)
    message = error(verify(two["key"], "--input-tokens", "400", code=5))[1]
    assert message.startswith("Project input tokens per minute limit exceeded: 700 of 1,000 input tokens in the "
                              "last minute for this project, and this request declares 400."), message
    held = verify(two["key"], "--input-tokens", "300", code=0)
    assert cli("keys", "release", held["request_id"]).exit_code == 0
    record(two["id"], "--output-tokens", "40", "--model", SONNET)
    assert error(verify(one["key"], code=5))[1].startswith("Project output tokens per minute limit exceeded")
    assert cli("projects", "set", "shop", "--output-tokens-per-minute", "unlimited").exit_code == 0
    verify(one["key"], code=0)


# -- the request path --------------------------------------------------------------------

class _Counting:
    """A connection that counts the calls made on it."""

    def __init__(self, conn):
        self.conn, self.calls = conn, []

    def __getattr__(self, name):
        found = getattr(self.conn, name)
        if callable(found):
            def call(*args, **kwargs):
                self.calls.append(name)
                return found(*args, **kwargs)
            return call
        return found


def test_a_model_without_model_lists_costs_no_extra_call(isolated):
    from claude_keys import db as store

    for options in ([], ["--rate-limit", "1000"], ["--monthly-budget", "100"]):
        key = create(*options)
        sql("UPDATE keys SET last_used_at = 9999999999")  # (no once-a-second touch to tell the calls apart)
        conn = store.connect(isolated)
        try:
            plain, with_model = _Counting(conn), _Counting(conn)
            assert gate.decide(plain, key["key"]).allowed
            assert gate.decide(with_model, key["key"], model="claude-opus-4-6").allowed
            assert with_model.calls == plain.calls, options
        finally:
            conn.close()
