"""A minimal gateway in front of the Anthropic Messages API, metered by claude-api.

Clients call it as they call Anthropic, with a key from `claude-api keys create`; the
gate (claude_keys.asgi.KeyGate) checks each request against the key's limits and
settles it from the reply's usage. Streams pass through as they come.

    pip install claude-api uvicorn httpx
    export ANTHROPIC_API_KEY=sk-ant-…        # the service's own key, sent upstream
    export CLAUDE_API_DB=~/keys.db           # the store (or a PostgreSQL location)
    uvicorn gateway:app --app-dir examples --port 8000

    curl localhost:8000/v1/messages -H "x-api-key: cc_…" -H "anthropic-version: 2023-06-01" \\
      -H "content-type: application/json" \\
      -d '{"model": "claude-sonnet-4-5", "max_tokens": 256, "messages": [{"role": "user", "content": "Hi"}]}'

ANTHROPIC_BASE_URL sends the requests elsewhere (a test's fake upstream).
"""
import asyncio
import json
import os

import httpx

from claude_keys.asgi import KeyGate

UPSTREAM = os.environ.get("ANTHROPIC_BASE_URL", "https://api.anthropic.com")
FORWARDED = {b"anthropic-version", b"anthropic-beta", b"content-type", b"accept"}  # of the client's headers
RETURNED = {"content-type", "request-id", "retry-after"}  # of the upstream's
client = httpx.AsyncClient(base_url=UPSTREAM, timeout=httpx.Timeout(600, connect=10))


async def proxy(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            if (await receive())["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await client.aclose()
                return await send({"type": "lifespan.shutdown.complete"})
    if scope["path"] == "/health":
        return await answer(send, 200, {"ok": True})
    body, more = b"", True
    while more:  # (the gate has read the body already: this is one message)
        message = await receive()
        body, more = body + message.get("body", b""), message.get("more_body", False)
    headers = {k.decode(): v.decode() for k, v in scope["headers"] if k in FORWARDED}
    headers.update({"x-api-key": os.environ["ANTHROPIC_API_KEY"], "accept-encoding": "identity"})
    request = client.build_request(scope["method"], scope["path"], params=scope["query_string"].decode(),
                                   headers=headers, content=body)
    try:
        upstream = await client.send(request, stream=True)
    except httpx.TransportError:
        return await answer(send, 502, {"type": "error", "error": {
            "type": "api_error", "message": "The upstream API could not be reached"}})
    try:
        await send({"type": "http.response.start", "status": upstream.status_code,
                    "headers": [(k.encode(), v.encode()) for k, v in upstream.headers.items() if k in RETURNED]})

        async def relay():
            async for chunk in upstream.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})

        async def client_gone():
            while (await receive())["type"] != "http.disconnect":
                pass

        # Whichever ends first: a client that leaves stops the upstream generating.
        tasks = {asyncio.create_task(relay()), asyncio.create_task(client_gone())}
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in done:
            task.result()  # (a failed relay raises: the gate releases the request)
    finally:
        await upstream.aclose()


async def answer(send, status, data):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(data).encode()})


app = KeyGate(proxy, public_paths=("/health",))
