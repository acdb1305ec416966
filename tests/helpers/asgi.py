"""A real server for the ASGI gate's tests: a fake upstream that answers like the
Messages API (JSON or a server-sent-event stream) with known usage, the gate in front
of it, and uvicorn serving that in a process of its own on 127.0.0.1 (a free port),
which dies with the test.

The fake's behaviour is chosen per request by the body's `fake` field: `json` (default),
`stream`, `stream-crlf` (the same events with CRLF line ends), `slow-stream` (an event
every 50 ms for 10 s), `error` (a 500 in Anthropic's error shape), `raise` (the app
raises). It also answers `/health`, and `/lag`: the longest the event loop stalled since
the last `/lag?reset`.
"""
from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

USAGE = {"input_tokens": 1000, "output_tokens": 400, "cache_read_input_tokens": 70,
         "cache_creation_input_tokens": 30,
         "cache_creation": {"ephemeral_5m_input_tokens": 20, "ephemeral_1h_input_tokens": 10}}
MODEL = "claude-sonnet-4-5"
# The fake's usage, priced (claude-sonnet-4-5, $ per million tokens: 3 in, 15 out, 0.30
# cache read, 3.75 and 6 cache write for 5 minutes and 1 hour), in nano-dollars.
COST_NANOS = (1000 * 3 + 400 * 15) * 1000 + 70 * 300 + 20 * 3750 + 10 * 6000
RECORDED = {"input_tokens": 1000, "output_tokens": 400, "cache_read_tokens": 70,
            "cache_write_5m_tokens": 20, "cache_write_1h_tokens": 10}
PUBLIC = ("/health", "/lag")
CHUNK = 7  # the stream goes out in pieces this small, so events span chunks


def reply(model: str = MODEL) -> dict:
    return {"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": "Hello!"}], "stop_reason": "end_turn",
            "stop_sequence": None, "usage": USAGE}


def events(model: str = MODEL, crlf: bool = False, deltas: int = 3) -> bytes:
    """A Messages stream: message_start with the input and cache counts, text deltas,
    message_delta with the output count, message_stop."""
    start_usage = {**USAGE, "output_tokens": 1}
    message = {**reply(model), "content": [], "stop_reason": None, "usage": start_usage}
    items = [("message_start", {"type": "message_start", "message": message}),
             ("content_block_start", {"type": "content_block_start", "index": 0,
                                      "content_block": {"type": "text", "text": ""}}),
             *[("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "text_delta", "text": f"word {i} "}})
               for i in range(deltas)],
             ("ping", {"type": "ping"}),
             ("content_block_stop", {"type": "content_block_stop", "index": 0}),
             ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                "usage": {"output_tokens": USAGE["output_tokens"]}}),
             ("message_stop", {"type": "message_stop"})]
    end = "\r\n" if crlf else "\n"
    return "".join(f"event: {name}{end}data: {json.dumps(data)}{end}{end}" for name, data in items).encode()


class Lag:
    """The event loop's longest stall: a task that asks to wake every 5 ms."""

    def __init__(self):
        self.worst = 0.0

    async def watch(self):
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, loop.time() - before - 0.005)


def _seen(scope) -> list:
    """Headers saying what the app was told of the request: the gate's Decision."""
    decision = (scope.get("state") or {}).get("claude_keys")
    if decision is None:
        return []
    return [(b"x-seen-key-id", decision.key_id.encode()), (b"x-seen-request-id", decision.request_id.encode())]


async def _send_json(send, status: int, data, headers=()) -> None:
    body = json.dumps(data).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), *headers]})
    await send({"type": "http.response.body", "body": body})


def upstream():
    """The fake Messages API, as a raw ASGI app."""
    lag = Lag()
    tasks = []

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    tasks.append(asyncio.create_task(lag.watch()))
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope["path"]
        if path == "/health":
            return await _send_json(send, 200, {"ok": True})
        if path == "/lag":
            worst = lag.worst
            if scope["query_string"] == b"reset":
                lag.worst = 0.0
            return await _send_json(send, 200, {"worst_s": worst})
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        asked = json.loads(body or b"{}")
        model = asked.get("model", MODEL)
        fake = asked.get("fake", "json")
        if fake == "error":
            return await _send_json(send, 500, {"type": "error", "error": {"type": "api_error",
                                                                           "message": "Internal server error"}})
        if fake == "raise":
            raise RuntimeError("the upstream app failed")
        if fake == "json":
            return await _send_json(send, 200, reply(model), _seen(scope))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream; charset=utf-8"), *_seen(scope)]})
        slow = fake == "slow-stream"
        stream = events(model, crlf=fake == "stream-crlf", deltas=200 if slow else 3)
        for i in range(0, len(stream), CHUNK):
            await send({"type": "http.response.body", "body": stream[i:i + CHUNK], "more_body": True})
            if slow:
                await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


def gated():
    """uvicorn's factory: the gate in front of the fake. GATE_TIMEOUT: the store's wait
    bound; GATE_COST: the cost the service's describe hook names for every request;
    GATE_ASYNC_POOL=1: AsyncKeyStore's async_pool (PostgreSQL on the event loop)."""
    from claude_keys import AsyncKeyStore
    from claude_keys.asgi import KeyGate

    cost = os.environ.get("GATE_COST")
    describe = (lambda scope, body: {"cost": cost}) if cost else None
    store = AsyncKeyStore(timeout=os.environ.get("GATE_TIMEOUT"), async_pool=os.environ.get("GATE_ASYNC_POOL") == "1")
    return KeyGate(upstream(), store=store, public_paths=PUBLIC, describe=describe)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(factory: str = "tests.helpers.asgi:gated", env: dict | None = None, wait: float = 30.0,
            app_dir: str | None = None):
    """uvicorn serving the app `factory` makes (with `app_dir`: the app itself, from that
    folder) in a process that dies with this one; yields its URL."""
    import httpx

    from tests.helpers.processes import dies_with_this_process

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", factory, *(["--app-dir", app_dir] if app_dir else ["--factory"]), "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "--no-access-log",
         "--timeout-graceful-shutdown", "1"],  # (a slow stream whose client left runs on: do not wait for it)
        env={**os.environ, **(env or {})}, preexec_fn=dies_with_this_process())
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"uvicorn did not start (exit {server.poll()})")
            time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def messages(url: str, key: str, fake: str = "json", *, bearer: bool = False, **body):
    """(headers, body) of a Messages request with `key`."""
    headers = {"authorization": f"Bearer {key}"} if bearer else {"x-api-key": key}
    headers["anthropic-version"] = "2023-06-01"
    return headers, {"model": MODEL, "max_tokens": 1024, "messages": [{"role": "user", "content": "Hello, Claude"}],
                     "stream": "stream" in fake, "fake": fake, **body}
