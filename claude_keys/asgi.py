"""The gate in front of a service's ASGI app (FastAPI, Starlette, Litestar, any):

    app = KeyGate(app, db="postgresql://…")

For every HTTP request (but `public_paths`, such as a health check) it reads the key
(`x-api-key`, then `Authorization: Bearer`) and what the request asks for (on
`messages_paths`, from the Anthropic Messages body: `model`, `max_tokens` and a rough
input-token estimate; plus whatever the service's `describe` hook names: tool, agent,
skill, cost), and asks AsyncKeyStore.check, which never waits on the event loop.

- Refused: Anthropic's error shape and status, `{"type": "error", "error": {"type":
  "rate_limit_error", "message": …}}` with 401/403/429 (503 `api_error` when the store
  is unavailable), the X-RateLimit-* headers and, when the rate window is full,
  `retry-after`. The app never sees the request.
- Allowed: the app gets the request, its body handed on untouched, and the Decision in
  `scope["state"]["claude_keys"]` (`request.state.claude_keys` in Starlette/FastAPI).
  The request is in flight (inflight.py) until the reply settles it: the gate reads the
  `usage` of the reply as it passes (a JSON reply, or the `message_start` and
  `message_delta` events of a server-sent-event stream, parsed chunk by chunk, nothing
  held back) and, once the last byte is sent, records it with the check's request id
  and the reply's model. It is released instead, its reservation given back, when the
  app raises, answers an error status (>= 400), sends a reply without usage, or the
  client goes away before the reply is whole.

No dependency beyond the standard library: the ASGI interface is three callables.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import logging

from .errors import ClaudeKeysError, InvalidInput

__all__ = ["KeyGate", "estimate_input_tokens"]

log = logging.getLogger("claude_keys.asgi")

MESSAGES_PATHS = ("/v1/messages",)
MAX_BODY = 32 * 1024 * 1024  # the Messages API's own request limit
MAX_JSON_REPLY = 16 * 1024 * 1024  # a JSON reply kept (beside passing it on) to read its usage
_STATE = "claude_keys"  # scope["state"][_STATE]: the Decision of an allowed request


class KeyGate:
    """ASGI middleware: every HTTP request checked against the key store, every allowed
    one settled from its reply (see the module's docstring).

    `db`, `timeout`, `pool_size`: the store, as for KeyStore (or give `store`, an
    AsyncKeyStore to share). `public_paths`: paths passed on without a key (exact
    matches, e.g. "/health"). `messages_paths`: where the body is a Messages request.
    `describe(scope, body)` (plain or async): what else to check, as keyword arguments of
    KeyStore.check (`tool`, `agent`, `skill`, `cost`); `body` is the parsed JSON body on
    messages paths, else None."""

    def __init__(self, app, db=None, *, store=None, timeout=None, pool_size=None,
                 public_paths=(), messages_paths=MESSAGES_PATHS, describe=None, max_body: int = MAX_BODY):
        if store is None:
            from .api import AsyncKeyStore

            store = AsyncKeyStore(db, timeout=timeout, pool_size=pool_size)
        self.app, self.store, self.describe = app, store, describe
        self.public_paths = frozenset(public_paths)
        self.messages_paths = frozenset(messages_paths)
        self.max_body = max_body

    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind == "lifespan" or scope.get("path") in self.public_paths:
            return await self.app(scope, receive, send)
        if kind == "websocket":  # not metered: refused unless public
            return await send({"type": "websocket.close", "code": 1008})
        if kind != "http":
            return await self.app(scope, receive, send)

        body = await _read_body(receive, self.max_body)
        if body is None:
            return  # the client went away before its request was whole
        if body is _TOO_LARGE:
            return await _error(send, 413, "request_too_large",
                                f"Request body is larger than {self.max_body:,} bytes")
        asked = _asked(body) if scope.get("path") in self.messages_paths else {}
        try:
            described = await self._described(scope, asked.get("body"))
            decision = await self.store.check(scope["headers"], **_check_kwargs(asked, described))
        except InvalidInput as e:
            return await _error(send, 400, "invalid_request_error", str(e))
        if not decision.allowed:
            return await _refuse(send, decision)

        life = _Life(self.store, decision, asked.get("model"))
        state = {**(scope.get("state") or {}), _STATE: decision}
        scope = {**scope, "state": state}
        watcher = asyncio.create_task(life.watch(receive))
        handed = False

        async def app_receive():
            nonlocal handed
            if not handed:
                handed = True
                return {"type": "http.request", "body": body, "more_body": False}
            await life.gone.wait()
            return {"type": "http.disconnect"}

        async def app_send(message):
            if message["type"] == "http.response.start":
                message = life.started(message)
            elif message["type"] == "http.response.body":
                life.passing(message)
            await send(message)

        try:
            await self.app(scope, app_receive, app_send)
        except BaseException:
            watcher.cancel()
            await life.end(settle=False)
            raise
        watcher.cancel()
        await life.end(settle=True)

    async def _described(self, scope, body) -> dict:
        if self.describe is None:
            return {}
        found = self.describe(scope, body)
        if inspect.isawaitable(found):
            found = await found
        if found is None:
            return {}
        if not isinstance(found, dict):
            raise InvalidInput("the gate's describe hook must return a dict of check's keyword arguments")
        return found


def _check_kwargs(asked: dict, described: dict) -> dict:
    """What the gate gives KeyStore.check besides the headers: the Messages request's
    model, max_tokens and input-token estimate (`asked`; with no cost, check reserves
    the request's worst case from the price table, so a budget stays a hard cap), then
    the service's `describe` (its word wins)."""
    kwargs = {name: asked[name] for name in ("model", "max_tokens", "input_tokens") if asked.get(name) is not None}
    kwargs.update(described)
    return kwargs


# -- the request ------------------------------------------------------------------------

_TOO_LARGE = object()


async def _read_body(receive, limit: int):
    """The whole request body (bytes), None if the client left first, or _TOO_LARGE."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return _TOO_LARGE
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _asked(body: bytes) -> dict:
    """What a Messages request asks for: model, max_tokens, a rough input-token estimate
    (and the parsed body, for `describe`). A body that is not a Messages request asks
    for nothing: the app answers it (and the request is released)."""
    try:
        request = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(request, dict):
        return {}
    model, max_tokens = request.get("model"), request.get("max_tokens")
    return {"body": request,
            "model": model if isinstance(model, str) else None,
            "max_tokens": max_tokens if type(max_tokens) is int and max_tokens >= 0 else None,
            "input_tokens": estimate_input_tokens(request)}


IMAGE_TOKENS = 1600  # Anthropic's figure for a large image (about 1.15 megapixels)
CHARS_PER_TOKEN = 4  # a rough rule for English text and code; it errs high for other text


def estimate_input_tokens(request: dict) -> int:
    """A rough count of a Messages request's input tokens, from its system prompt,
    messages and tools: characters / 4, and IMAGE_TOKENS for each image or document
    given as data. Good enough to reserve against a budget; the reply's usage is exact."""
    chars = fixed = 0
    stack = [request.get(part) for part in ("system", "messages", "tools")]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            chars += len(item)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            if item.get("type") in ("base64", "url", "file"):  # an image's or document's source
                fixed += IMAGE_TOKENS
                continue
            stack.extend(item.values())
    return -(-chars // CHARS_PER_TOKEN) + fixed


# -- refusals -------------------------------------------------------------------------

async def _error(send, status: int, kind: str, message: str, headers=()) -> None:
    body = json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


def _rate_headers(decision) -> list:
    return [(name.lower().encode(), str(value).encode()) for name, value in decision.headers.items()]


async def _refuse(send, decision) -> None:
    """The Decision's refusal as Anthropic's error, with its headers as they are
    (X-RateLimit-* and Retry-After: the same as `keys verify --json` shows)."""
    error = decision.body["error"]
    await _error(send, decision.status, error["type"], error["message"], _rate_headers(decision))


# -- the reply, and the end of the request's life ------------------------------------------

class _Life:
    """An allowed request from the app's first byte to its settling or release."""

    def __init__(self, store, decision, model: str | None):
        self.store, self.decision, self.model = store, decision, model
        self.status = None
        self.usage: _Usage | None = None
        self.complete = False  # the reply's last byte was handed to the server
        self.ending = None  # the task that settles or releases it (once)
        self.gone = asyncio.Event()  # the client went away (told to the app's receive)

    def started(self, message: dict) -> dict:
        self.status = message["status"]
        headers = list(message.get("headers") or ())
        content_type, encoded = b"", False
        for name, value in headers:
            name = name.lower()
            if name == b"content-type":
                content_type = value.lower()
            elif name == b"content-encoding" and value.lower() != b"identity":
                encoded = True
        if self.status < 400:
            if encoded:  # compressed inside the gate: compress outside it (GZip(KeyGate(app)))
                log.warning("claude_keys: a compressed reply: its usage cannot be read, the request is "
                            "released; put compression outside the gate")
            else:
                self.usage = _Usage(content_type)
        present = {name.lower() for name, _ in headers}
        headers += [h for h in _rate_headers(self.decision) if h[0] not in present]
        return {**message, "headers": headers}

    def passing(self, message: dict) -> None:
        chunk = message.get("body", b"")
        if chunk and self.usage is not None:
            self.usage.feed(chunk)
        if not message.get("more_body", False):
            self.complete = True

    async def watch(self, receive) -> None:
        """Own the server's receive once the body is read: a disconnect before the reply
        is whole releases the request at once (the app hears it from its receive)."""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
        if not self.complete:
            self.gone.set()
            await self.end(settle=False)

    async def end(self, *, settle: bool) -> None:
        """Settle from the reply's usage, or release: once, whichever asks first (a
        disconnect, or the app's end). Shielded: a caller cancelled meanwhile (the
        watcher, when the app ends) does not stop it half-way."""
        if self.ending is None:
            self.ending = asyncio.ensure_future(self._end(settle))
        await asyncio.shield(self.ending)

    async def _end(self, settle: bool) -> None:
        decision = self.decision
        found = self.usage.found() if settle and self.complete and self.usage is not None else None
        try:
            if found is None:
                if decision.request_id is not None:
                    await self.store.release(decision.request_id)
                return
            model = found.pop("model", None) or self.model
            await self.store.record_usage(decision.key_id, model=model, request_id=decision.request_id,
                                          **found)
        except ClaudeKeysError as e:  # the reply is sent: the service's log says what was lost
            what = "record the usage of" if found is not None else "release"
            log.warning("claude_keys: could not %s request %s of key %s: %s", what, decision.request_id,
                        decision.key_id, e)


_TOKENS = {"input_tokens": "input_tokens", "output_tokens": "output_tokens",
           "cache_read_input_tokens": "cache_read_tokens", "cache_creation_input_tokens": "cache_write_tokens"}


class _Usage:
    """The usage of a reply, read as its chunks pass: a JSON body (kept, up to
    MAX_JSON_REPLY, to parse at its end) or an event stream (only the event being
    received is kept; message_start and message_delta events are parsed)."""

    def __init__(self, content_type: bytes):
        self.stream = content_type.startswith(b"text/event-stream")
        self.json = not self.stream and b"json" in content_type
        self.kept = bytearray()
        self.tail = b""  # an event not yet whole
        self.counts: dict = {}
        self.model = None

    def feed(self, chunk: bytes) -> None:
        if self.stream:
            self._events(chunk)
        elif self.json:
            if len(self.kept) + len(chunk) > MAX_JSON_REPLY:
                self.json = False  # too big to read: released, and logged
                log.warning("claude_keys: a JSON reply over %d bytes: its usage was not read", MAX_JSON_REPLY)
                self.kept = bytearray()
            else:
                self.kept += chunk

    def _events(self, chunk: bytes) -> None:
        data = self.tail + chunk
        held = b""
        if data.endswith(b"\r"):  # (its \n may come in the next chunk)
            data, held = data[:-1], b"\r"
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *events, tail = data.split(b"\n\n")
        self.tail = tail + held
        for event in events:
            if b"message_start" in event or b"message_delta" in event:
                self._event(event)

    def _event(self, event: bytes) -> None:
        lines = [line[5:] for line in event.split(b"\n") if line.startswith(b"data:")]
        try:
            payload = json.loads(b"\n".join(line[1:] if line.startswith(b" ") else line for line in lines))
        except (ValueError, UnicodeDecodeError):
            return
        if not isinstance(payload, dict):
            return
        if payload.get("type") == "message_start" and isinstance(payload.get("message"), dict):
            self._take(payload["message"])
        elif payload.get("type") == "message_delta":
            self._take_usage(payload.get("usage"))

    def _take(self, message: dict) -> None:
        if isinstance(message.get("model"), str):
            self.model = message["model"]
        self._take_usage(message.get("usage"))

    def _take_usage(self, usage) -> None:
        """The counts of a usage object; a later one (message_delta's, cumulative) wins."""
        if not isinstance(usage, dict):
            return
        for name, value in usage.items():
            if name in _TOKENS and type(value) is int and value >= 0:
                self.counts[name] = value
        split = usage.get("cache_creation")
        if isinstance(split, dict):
            for name in ("ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"):
                if type(split.get(name)) is int and split[name] >= 0:
                    self.counts[name] = split[name]

    def found(self) -> dict | None:
        """record_usage's keyword arguments (and "model"), or None: no usage in the reply."""
        if self.json and self.kept:
            try:
                reply = json.loads(bytes(self.kept))
            except (ValueError, UnicodeDecodeError):
                return None
            if isinstance(reply, dict) and isinstance(reply.get("usage"), dict):
                self._take(reply)
        if not self.counts:
            return None
        found = {ours: self.counts.get(theirs, 0) for theirs, ours in _TOKENS.items()}
        if "ephemeral_1h_input_tokens" in self.counts or "ephemeral_5m_input_tokens" in self.counts:
            # Writes to the 1-hour cache are priced apart from 5-minute ones.
            found["cache_write_tokens"] = self.counts.get("ephemeral_5m_input_tokens", 0)
            found["cache_write_1h_tokens"] = self.counts.get("ephemeral_1h_input_tokens", 0)
        found["model"] = self.model
        return found
