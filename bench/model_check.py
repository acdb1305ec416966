"""What naming the model costs a check: KeyStore.check(headers, model=...) for a key with
no model lists, against the same check without a model (issue 17's target: <= 1.1x the
time). Rounds of each alternate, and the medians are compared, so drift on a shared
machine hits both alike. Also shown, with no target: a budgeted check that reserves the
worst case from model and max_tokens against one given the cost.

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


def main(seconds: float = 4.0) -> list[tuple]:
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
    report("A check with a model", rows)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0)
    main(parser.parse_args().seconds)
