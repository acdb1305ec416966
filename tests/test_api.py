"""The Python API: KeyStore.check / record_usage from threads and processes, and the
seed-compatible AuthManager and PermissionManager."""
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

from claude_keys import AuthManager, InvalidInput, KeyNotFound, KeyStore, PermissionManager
from tests.helpers.run import cli, create, report
from tests.helpers.store import connection_of, sql
from tests.helpers.workers import record_many, spawn_pool


def test_check_reads_headers_like_the_seeds():
    free = create("--profile", "free")
    other = create()
    store = KeyStore()
    d = store.check({"Authorization": f"Bearer {free['key']}"}, tool="Read")
    assert (d.allowed, d.status, d.key_id, d.project_id, d.timeout) == (True, 200, free["id"], "p", 60)
    assert d.headers["X-RateLimit-Limit"] == "10" and d.body["allowed"] is True
    # x-api-key wins over Authorization; header names in any case.
    d = store.check({"X-API-Key": other["key"], "authorization": f"Bearer {free['key']}"})
    assert d.key_id == other["id"]
    assert store.check(query={"api_key": other["key"]}).key_id == other["id"]
    d = store.check({"Authorization": f"Bearer {free['key']}"}, tool="Bash")
    assert (d.allowed, d.status) == (False, 403)
    assert d.body == {"error": {"type": "permission_error", "message": "Tool 'Bash' is not allowed for this API key"}}
    assert store.check({}).body == {"error": {"type": "authentication_error", "message": "Missing Authorization header"}}
    assert store.check({"Authorization": "Basic abc"}).body["error"]["message"] == "Invalid API key"
    assert store.check(key=free["key"], cost=0.2).status == 403


def test_record_usage_prices_and_deduplicates(isolated):
    key = create()
    store = KeyStore()
    done = store.record_usage(key["id"], model="claude-sonnet-4-5-20250929", input_tokens=1000,
                              output_tokens=500, cache_read_tokens=10_000, cache_write_tokens=2000,
                              request_id="req-1")
    assert done.recorded and done.priced and done.cost_nanos == 21_000_000  # $0.021 exactly
    again = store.record_usage(key["id"], model="claude-sonnet-4-5", input_tokens=99, request_id="req-1")
    assert not again.recorded
    assert sql("SELECT count(*), sum(input_tokens) FROM usage") == [(1, 1000)]
    assert not store.record_usage(key["id"], model="mystery-model", input_tokens=5).priced
    with pytest.raises(KeyNotFound):
        store.record_usage("000000000000", input_tokens=1)
    with pytest.raises(InvalidInput):
        store.record_usage(key["id"], input_tokens=-1)


def test_keystore_is_thread_safe_and_exact(isolated):
    key = create("--rate-limit", "40")
    store = KeyStore()

    def work(i):
        d = store.check(key=key["key"])
        store.record_usage(key["id"], input_tokens=1, cost=0.001, request_id=f"t{i}")
        return d.allowed

    with ThreadPoolExecutor(8) as pool:
        allowed = list(pool.map(work, range(100)))
    assert allowed.count(True) == 40
    assert sql("SELECT count(*), sum(cost_nanos) FROM usage") == [(100, 100_000_000)]
    assert sql("SELECT sum(requests), sum(cost_nanos) FROM usage_daily") == [(100, 100_000_000)]


def _hammer(args):
    db, secret, key_id, n, tag = args
    store = KeyStore(db)
    allowed = 0
    for i in range(n):
        allowed += store.check(key=secret).allowed
        store.record_usage(key_id, input_tokens=2, cost="0.01", request_id=f"{tag}-{i}")
    return allowed


def test_processes_share_limits_and_lose_no_usage(isolated):
    key = create("--rate-limit", "50")
    with spawn_pool(4) as pool:
        allowed = pool.map(_hammer, [(str(isolated), key["key"], key["id"], 40, f"p{i}") for i in range(4)])
    assert sum(allowed) == 50
    assert sql("SELECT count(*), sum(input_tokens), sum(cost_nanos) FROM usage") == [(160, 320, 1_600_000_000)]


def test_many_processes_recording_lose_nothing(isolated):
    key = create()
    with spawn_pool(6) as pool:
        done = sum(pool.map(record_many, [(str(isolated), key["id"], f"w{i}", 150) for i in range(6)]))
    total = report("summary", "--period", "all")
    assert total["requests"] == done == 900 and total["input_tokens"] == 2700 and total["cost_usd"] == 0.9
    days = report("summary", "--by", "day", "--period", "all")
    assert [d["requests"] for d in days] == [300, 300, 300]


def test_used_from_a_separate_python_process():
    key = create("--profile", "pro")
    code = textwrap.dedent(f"""
        from claude_keys import KeyStore
        store = KeyStore()
        d = store.check({{"x-api-key": "{key['key']}"}}, tool="Bash", agent="code-reviewer")
        assert d.allowed, d.body
        print(store.record_usage(d.key_id, model="claude-haiku-4-5", output_tokens=1000).cost_usd)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0.005"
    assert cli("keys", "show", key["id"], "--json").json()["last_used_at"] is not None


def test_auth_manager_as_in_the_seed():
    auth = AuthManager()
    api_key = auth.generate_key("my-project", rate_limit=100)
    perm = PermissionManager()
    perm.apply_default_profile(api_key, "enterprise")
    assert api_key.startswith("cc_") and auth.validate_key(api_key)
    info = auth.authenticate({"Authorization": f"Bearer {api_key}"})
    assert info["project_id"] == "my-project" and info["profile"] == "enterprise"
    assert auth.authenticate(query={"api_key": api_key})["key_id"] == info["key_id"]
    assert auth.authenticate({"Authorization": "Bearer nope"}) is None
    assert auth.revoke_key(api_key) is True and not auth.validate_key(api_key)
    assert auth.revoke_key(api_key) is False
    with pytest.raises(InvalidInput):
        auth.generate_key("p", colour="blue")


def test_permission_manager_set_profile_with_the_seeds_keys():
    api_key = AuthManager().generate_key("p", rate_limit=None, profile="free")
    perm = PermissionManager()
    perm.set_profile(api_key, {
        "allowed_tools": ["Read", "Grep", "Bash"],
        "blocked_tools": ["Write"],
        "allowed_agents": ["company-workflow-analyst"],
        "max_cost_per_task": 0.50,
        "monthly_budget": None,
    })
    p = perm.get_profile(api_key)
    assert p["allowed_tools"] == ["Read", "Grep", "Bash"] and p["blocked_tools"] == ["Write"]
    assert p["allowed_agents"] == ["company-workflow-analyst"] and p["max_cost_per_task"] == 0.5
    assert p["profile"] == "free" and p["rate_limit"] == 10
    assert KeyStore().check(key=api_key, agent="company-workflow-analyst", tool="Bash").allowed
    with pytest.raises(InvalidInput):
        perm.set_profile(api_key, {"allowed_toolz": []})


def test_a_forked_child_opens_its_own_connection(isolated):
    """A connection must not cross fork(): a pre-fork server's children get theirs."""
    key = create()
    store = KeyStore()
    assert store.check(key=key["key"]).allowed
    parent_conn = connection_of(store)
    pid = os.fork()
    if pid == 0:  # the child: use the inherited KeyStore
        try:
            ok = store.check(key=key["key"]).allowed and connection_of(store) is not parent_conn
            store.record_usage(key["id"], model="claude-haiku-4-5", input_tokens=7, request_id="from-child")
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.check(key=key["key"]).allowed  # the parent's connections still work
    if not str(isolated).startswith("postgresql"):  # (a pool may hand out another of its own)
        assert connection_of(store) is parent_conn
    assert sql("SELECT input_tokens FROM usage WHERE request_id = 'from-child'") == [(7,)]


def test_review_findings_in_the_python_api(isolated):
    key = create()
    store = KeyStore()
    with pytest.raises(KeyNotFound) as error:
        store.record_usage(key["key"], input_tokens=1)  # a secret where the id belongs
    assert key["key"] not in str(error.value) and key["key"][3:20] not in str(error.value)
    raw = [(b"content-type", b"application/json"), (b"x-api-key", key["key"].encode())]
    assert store.check(raw).key_id == key["id"]  # raw ASGI headers
    assert store.check({"Authorization": "Bearer "}).body["error"]["message"] == "Invalid API key"
    assert store.check({"Authorization": "Bearer"}).body["error"]["message"] == "Invalid API key"


@pytest.mark.one_backend
def test_the_calls_show_their_arguments_not_the_connection():
    """help() and IDEs show each call as CONTRACT.md writes it: record_usage's arguments
    by name (on both stores), and never the connection a call is handed inside."""
    import inspect

    from claude_keys import AsyncKeyStore, AuthManager, KeyStore, PermissionManager

    contract = ["self", "key_id", "model", "input_tokens", "output_tokens", "cache_read_tokens",
                "cache_write_tokens", "cost", "request_id", "at"]
    for call in (KeyStore.record_usage, AsyncKeyStore.record_usage):
        assert list(inspect.signature(call).parameters)[:len(contract)] == contract
    calls = [member for cls in (KeyStore, AsyncKeyStore, AuthManager, PermissionManager)
             for name, member in vars(cls).items() if callable(member) and not name.startswith("_")]
    assert len(calls) > 10
    assert all("conn" not in inspect.signature(call).parameters for call in calls)
