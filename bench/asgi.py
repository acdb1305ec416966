"""The ASGI gate (claude_keys.asgi.KeyGate) in a real server: requests per second
through uvicorn with the gate in front of an app, against the same app without it, in
the same run. One uvicorn process (one event loop, the gate's 10 worker threads), 32
clients at once on keep-alive connections from another process; the app answers each
Messages request at once with a JSON reply and its usage, so the gate's whole cost is
measured: read the body, check (off the loop), pass the reply on, read its usage,
record it with the request id.

- an unlimited key: check = the key's lookup; then one usage insert;
- a key with a monthly budget: check = the admission (a transaction, a reservation in
  flight); then the settle (usage stored and the in-flight row gone in one step).

Target on SQLite: >= 0.6x the app alone. Beside it, on SQLite, the most the gate could
reach with no Python of its own or of the store: the statements one gated request sends
to SQLite (caught in-process from a warm gate, with their parameters) replayed in plain
sqlite3 on a copy of the store, added to the app alone's time a request
(request_path.py measures the same way for KeyStore). Also on PostgreSQL (a throwaway server, as
the tests start one). Both servers run throughout; rounds load them in turn, and the
figures are medians (this machine's load moves a lot within a minute).

Usage: python bench/asgi.py [--seconds S] [--rounds N] [--clients 32] [--no-postgres]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from _common import report, scratch, verdict

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))  # tests.helpers.pg_server: the tests' throwaway server

REPLY = json.dumps({"id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                    "content": [{"type": "text", "text": "Hello!"}], "stop_reason": "end_turn",
                    "usage": {"input_tokens": 1200, "output_tokens": 300}}).encode()
REQUEST = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 1024,
                      "messages": [{"role": "user", "content": "Hello, Claude"}]}).encode()


async def messages_app(scope, receive, send):
    """The app behind the gate: reads the body, answers a Messages reply at once."""
    if scope["type"] == "lifespan":
        while True:
            if (await receive())["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                return await send({"type": "lifespan.shutdown.complete"})
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(REPLY)).encode())]})
    await send({"type": "http.response.body", "body": REPLY})


def gated():
    """uvicorn's factory for the gated app (the store: CLAUDE_API_DB)."""
    from claude_keys.asgi import KeyGate

    return KeyGate(messages_app)


def bare():
    return messages_app


# -- the load: raw HTTP/1.1 on keep-alive connections (lighter than any client library) --

async def _client(port: int, headers: bytes, until: float, counts: list) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (b"POST /v1/messages HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
               + headers + b"content-length: " + str(len(REQUEST)).encode() + b"\r\n\r\n" + REQUEST)
    try:
        while time.monotonic() < until:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            counts[0 if status == 200 else 1] += 1
    finally:
        writer.close()


async def _load(port: int, secret: str, clients: int, seconds: float) -> tuple[float, int]:
    headers = f"x-api-key: {secret}\r\n".encode()
    await asyncio.gather(*[_client(port, headers, time.monotonic() + 0.3, [0, 0]) for _ in range(clients)])
    counts = [0, 0]
    start = time.monotonic()
    await asyncio.gather(*[_client(port, headers, start + seconds, counts) for _ in range(clients)])
    return counts[0] / (time.monotonic() - start), counts[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(factory: str, db: str):
    """uvicorn serving `factory` (one process, one event loop); yields its port."""
    from tests.helpers.processes import dies_with_this_process

    port = _free_port()
    env = {**os.environ, "CLAUDE_API_DB": db, "CLAUDE_API_NO_KEYRING": "1"}
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", f"asgi:{factory}", "--factory",
                               "--app-dir", str(HERE), "--port", str(port), "--log-level", "warning",
                               "--no-access-log"], env=env, preexec_fn=dies_with_this_process())
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"uvicorn did not start for {factory}")
                time.sleep(0.1)
        yield port
    finally:
        server.terminate()
        server.wait(10)


def rate(port: int, secret: str, clients: int, seconds: float) -> float:
    """Requests per second through the server on `port` (every one allowed)."""
    per_second, refused = asyncio.run(_load(port, secret, clients, seconds))
    if refused:
        raise SystemExit(f"{refused} requests were refused")
    return per_second


def _key(db: str, **opts) -> str:
    os.environ["CLAUDE_API_NO_KEYRING"] = "1"
    from claude_keys import AuthManager

    return AuthManager(db).generate_key("bench", rate_limit=None, use_keyring=False, **opts)


async def _one_request(app, secret: str) -> int:
    """One Messages request through `app` in this process (no server); its status."""
    body, status = [REQUEST], []

    async def receive():
        return {"type": "http.request", "body": body.pop() if body else b"", "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/v1/messages", "raw_path": b"/v1/messages", "query_string": b"",
             "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
             "headers": [(b"host", b"bench"), (b"content-type", b"application/json"),
                         (b"x-api-key", secret.encode()), (b"content-length", str(len(REQUEST)).encode())]}
    await app(scope, receive, send)
    return status[0]


REQUESTS_CAUGHT = 100  # statements caught over this many requests (a key's last use, written
#                        at most once a second, counts its share)


def statements_of_requests(db: str, secret: str) -> list[tuple[str, tuple]]:
    """The statements REQUESTS_CAUGHT warm gated requests send to SQLite, with their
    parameters."""
    from claude_keys.asgi import KeyGate
    from request_path import catching

    async def requests():
        gate = KeyGate(messages_app, db=db)
        try:
            for _ in range(50):  # warm: the key, the statements' first use, the loop's connection
                assert await _one_request(gate, secret) == 200
            await asyncio.sleep(0.05)  # (a settle may end after the reply)
            with catching() as sent:
                for _ in range(REQUESTS_CAUGHT):
                    await _one_request(gate, secret)
                await asyncio.sleep(0.05)
            return sent
        finally:
            await gate.store.aclose()

    return asyncio.run(requests())


def statements_alone(db: str, secret: str, seconds: float, rounds: int) -> tuple[float, float]:
    """Gated requests a second that the store's statements alone allow (plain sqlite3, on
    a copy of the store; the WAL checkpointed off the clock every CHECKPOINT_EVERY writes,
    as a worker does for the loop), the median of `rounds`; and how many statements a
    request sends."""
    from claude_keys.db.async_connections import CHECKPOINT_EVERY
    from request_path import copy_store, our_statements

    sent = statements_of_requests(db, secret)
    copy = str(scratch("asgi-statements") / "copy.db")
    copy_store(db, copy)
    replays = [our_statements(copy, sent, seconds / rounds, checkpoint_every=CHECKPOINT_EVERY)
               for _ in range(rounds)]
    return statistics.median(replays) * REQUESTS_CAUGHT, len(sent) / REQUESTS_CAUGHT


def measure(db: str, name: str, clients: int, seconds: float, rounds: int, keys: dict) -> list[tuple]:
    """The app alone and the gated app, each served throughout, loaded in turn (rounds
    alternate, so a change in the machine's load falls on both alike); medians."""
    rows = []
    secrets = {what: _key(db, **opts) for what, opts in keys.items()}
    with serving("bare", db) as bare_port, serving("gated", db) as gated_port:
        for what, secret in secrets.items():
            floors, rates = [], []
            for _ in range(rounds):
                floors.append(rate(bare_port, "none", clients, seconds))
                rates.append(rate(gated_port, secret, clients, seconds))
            floor, ours = statistics.median(floors), statistics.median(rates)
            sqlite = name == "SQLite"
            rows.append((f"{name}: {what}", f"{ours:,.0f} req/s", f"{floor:,.0f} req/s (app alone)",
                         f"{ours / floor:.2f}x", "≥ 0.6x" if sqlite else "(none)",
                         verdict(ours / floor >= 0.6) if sqlite else ""))
            if sqlite:
                alone, count = statements_alone(db, secret, seconds, rounds)
                app_us, store_us = 1e6 / floor, 1e6 / alone
                best = 1e6 / (app_us + store_us)
                rows.append((f"  the most it could reach: the app alone ({app_us:.0f} µs a request) + the "
                             f"store's {count:.2f} statements alone ({store_us:.1f} µs), no Python of the gate's "
                             "or the store's", f"{best:,.0f} req/s", f"{floor:,.0f} req/s",
                             f"{best / floor:.2f}x", "", ""))
    return rows


KEYS = {"unlimited key": {}, "key with a monthly budget": {"monthly_budget": 1000}}


def main(seconds: float = 3.0, clients: int = 32, postgres: bool = True, rounds: int = 5) -> list[tuple]:
    rows = measure(str(scratch("asgi") / "keys.db"), "SQLite", clients, seconds, rounds, KEYS)
    server = None
    if postgres:
        from tests.helpers import pg_server

        reason = pg_server.missing_reason()
        if reason:
            print(f"PostgreSQL skipped: {reason}")
        else:
            server = pg_server.Server(durable=True)
    try:
        if server is not None:
            rows += measure(server.create_database("bench_asgi"), "PostgreSQL", clients, seconds, rounds, KEYS)
    finally:
        if server is not None:
            server.close()
    report(f"The ASGI gate through uvicorn ({clients} clients, {rounds} rounds of {seconds:g} s, medians; "
           f"load average {os.getloadavg()[0]:.1f})", rows)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="each round's load, per side")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    main(args.seconds, args.clients, not args.no_postgres, args.rounds)
