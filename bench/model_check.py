"""What naming the model costs a check: KeyStore.check(headers, model=...) for a key with
no model lists, against the same check without a model (issue 17's target: <= 1.1x the
time). Rounds of each alternate, and the medians are compared, so drift on a shared
machine hits both alike. Also shown, with no target: a budgeted check that reserves the
worst case from model and max_tokens against one given the cost; what the index that
tokens-per-minute checks read (usage_by_project_time) costs each record_usage (rounds
with and without it); and a tokens-per-minute check beside 0 and 20,000 requests of
another project in the last minute (it reads only its own project's).

Usage: python bench/model_check.py [--seconds S]
"""
from __future__ import annotations

import argparse
import statistics
import time

from _common import report, scratch, verdict

KINDS = {  # key kind -> generate_key options
    "without limits": {"rate_limit": None, "profile": "enterprise"},
    "rate-limited": {"rate_limit": 10**9, "profile": "pro"},
    "with a monthly budget": {"rate_limit": None, "profile": "enterprise", "monthly_budget": 10**8},
}
MODEL = {"model": "claude-sonnet-4-5"}


def rate(store, headers, seconds: float, asked: dict, release: bool) -> float:
    """Checks per second (each in-flight request released, so the table stays as it was)."""
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(50):
            decision = store.check(headers, **asked)
            assert decision.allowed, decision.body
            if release and decision.request_id:
                store.release(decision.request_id)
        n += 50
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def measure(kind: str, seconds: float, plain: dict, named: dict, rounds: int = 8) -> tuple[float, float]:
    from claude_keys import AuthManager, KeyStore

    db = scratch("model") / "keys.db"
    secret = AuthManager(db).generate_key("bench", use_keyring=False, **KINDS[kind])
    store = KeyStore(db)
    headers = {"x-api-key": secret}
    release = "budget" in kind
    rate(store, headers, seconds / rounds / 4, named, release)  # warm: the price table, caches
    without, with_model = [], []
    for _ in range(rounds):
        without.append(rate(store, headers, seconds / rounds / 2, plain, release))
        with_model.append(rate(store, headers, seconds / rounds / 2, named, release))
    store.close()
    return statistics.median(without), statistics.median(with_model)


def record_rate(store, key_id: str, seconds: float) -> float:
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(50):
            store.record_usage(key_id, model="claude-sonnet-4-5", input_tokens=1200, output_tokens=300)
        n += 50
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def index_cost(seconds: float, rounds: int = 8) -> tuple[float, float]:
    """record_usage per second without and with usage_by_project_time (SQLite)."""
    from claude_keys import AuthManager, KeyStore
    from claude_keys import db as store_db

    db = scratch("index") / "keys.db"
    secret = AuthManager(db).generate_key("bench", use_keyring=False, rate_limit=None)
    store = KeyStore(db)
    key_id = store.check(key=secret).key_id
    ddl = store_db.connect(db)
    (index,), = ddl.execute("SELECT sql FROM sqlite_master WHERE name = 'usage_by_project_time'").fetchall()
    without, with_index = [], []
    record_rate(store, key_id, seconds / rounds / 4)
    for _ in range(rounds):
        with ddl.transaction():
            ddl.execute("DROP INDEX usage_by_project_time")
        without.append(record_rate(store, key_id, seconds / rounds / 2))
        with ddl.transaction():
            ddl.execute(index)
        with_index.append(record_rate(store, key_id, seconds / rounds / 2))
    ddl.close()
    store.close()
    return statistics.median(without), statistics.median(with_index)


def busy_minute(busy: int, checks: int = 300) -> float:
    """µs per check (and release) of a key with tokens-per-minute limits, with `busy`
    requests of another project recorded in the last minute."""
    from claude_keys import AuthManager, KeyStore, PermissionManager
    from claude_keys import db as store_db

    db = scratch("minute") / "keys.db"
    auth = AuthManager(db)
    secret = auth.generate_key("bench", use_keyring=False, rate_limit=None)
    other = auth.generate_key("other", use_keyring=False, rate_limit=None)
    PermissionManager(db).set_profile(secret, {"input_tokens_per_minute": 10**12, "output_tokens_per_minute": 10**12})
    store = KeyStore(db)
    other_id = store.check(key=other).key_id
    conn = store_db.connect(db)
    now = conn.now_ms()
    with conn.transaction():
        conn.executemany("INSERT INTO usage (request_id, key_id, project_id, at_ms, model, input_tokens, "
                         "output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, "
                         "cost_nanos, priced) VALUES (?, ?, 'other', ?, 'm', 10, 10, 0, 0, 0, 1, 1)",
                         [(f"r{i}", other_id, now - i % 50_000) for i in range(busy)])
    conn.close()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(checks):
            decision = store.check(key=secret, input_tokens=5)
            assert decision.allowed, decision.body
            store.release(decision.request_id)
        times.append((time.perf_counter() - start) / checks)
    store.close()
    return statistics.median(times) * 1e6


def main(seconds: float = 4.0, busy: int = 20_000) -> list[tuple]:
    rows = []
    for kind in KINDS:
        plain = {"cost": "0.01"} if "budget" in kind else {}
        without, with_model = measure(kind, seconds, plain, {**plain, **MODEL})
        ratio = without / with_model  # time with the model / time without
        rows.append((f"check with a model, no model lists (key {kind})", f"{with_model:,.0f}/s",
                     f"{without:,.0f}/s", f"{ratio:.2f}x", "<= 1.1x", verdict(ratio <= 1.1)))
    given, worst = measure("with a monthly budget", seconds, {**MODEL, "cost": "0.01"},
                           {**MODEL, "max_tokens": 1024, "input_tokens": 2000})
    rows.append(("check reserving the worst case (model + max_tokens) vs a cost given (budgeted key)",
                 f"{worst:,.0f}/s", f"{given:,.0f}/s", f"{given / worst:.2f}x", "", ""))
    without, with_index = index_cost(seconds)
    rows.append(("record_usage with usage_by_project_time vs without (SQLite)", f"{with_index:,.0f}/s",
                 f"{without:,.0f}/s", f"{without / with_index:.2f}x", "", ""))
    quiet, loud = busy_minute(0), busy_minute(busy)
    rows.append((f"check + release, key with tokens-per-minute limits, {busy:,} requests of another project "
                 "in the last minute vs none", f"{loud:,.0f} µs", f"{quiet:,.0f} µs", f"{loud / quiet:.2f}x", "", ""))
    report("A check with a model", rows)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--busy", type=int, default=20_000)
    args = parser.parse_args()
    main(args.seconds, args.busy)
